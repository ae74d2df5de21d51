import { JobStatusCheck, Uuid } from "@fieldgate/shared";
import { Type } from "@sinclair/typebox";
import type { FastifyInstance } from "fastify";
import { deviceOf, errorResponses, type RouteContext } from "./route-context.js";

const UuidParams = Type.Object({ uuid: Uuid }, { additionalProperties: false });
const JobParams = Type.Object(
  { uuid: Uuid, id: Type.String({ pattern: "^[A-Za-z0-9_-]{1,64}$" }) },
  { additionalProperties: false },
);
const CreateJobBody = Type.Object(
  { firmware: Type.String({ minLength: 3, maxLength: 200, description: "name@version" }) },
  { additionalProperties: false },
);

const Progress = Type.Union([Type.Object({ done: Type.Number(), total: Type.Number() }), Type.Null()]);
const Nullable = Type.Union([Type.String(), Type.Null()]);
const Checks = Type.Union([Type.Array(JobStatusCheck), Type.Null()], {
  description: "while CONFIRMING: the health checks that hold the confirmation back, as the device reported them",
});
const JobStep = Type.Object({
  ts: Type.String(),
  status: Type.String(),
  step: Nullable,
  progress: Progress,
  reason: Nullable,
  message: Nullable,
  checks: Checks,
});
const Job = Type.Object({
  id: Type.String(),
  device: Type.String(),
  firmware: Type.Object({ name: Nullable, version: Nullable }),
  status: Type.String({ description: "CREATED until the device reports, then its JobStatus" }),
  step: Nullable,
  progress: Progress,
  reason: Nullable,
  message: Nullable,
  checks: Checks,
  created: Type.String(),
  updated: Type.String(),
  timeoutAt: Type.String(),
  steps: Type.Optional(Type.Array(JobStep)),
});

/** Single-device firmware update jobs (issue #5): create one, list them, show one with its report. */
export function registerDeviceJobRoutes(app: FastifyInstance, ctx: RouteContext): void {
  app.post<{ Params: { uuid: string }; Body: { firmware: string } }>(
    "/api/v1/devices/:uuid/jobs",
    {
      schema: {
        tags: ["devices"],
        summary: "Update one device to an image of its organization made for its type; sent now or when it connects",

        params: UuidParams,
        body: CreateJobBody,
        response: { 201: Job, ...errorResponses },
      },
    },
    async (request, reply) => {
      const device = deviceOf(request);
      const job = await ctx.jobs.create(device, request.body.firmware);
      request.log.info({ uuid: device.uuid, jobId: job.id, firmware: request.body.firmware }, "update job created");
      return reply.status(201).send(job);
    },
  );

  app.get<{ Params: { uuid: string } }>(
    "/api/v1/devices/:uuid/jobs",
    {
      schema: {
        tags: ["devices"],
        summary: "The device's update jobs, newest first",

        params: UuidParams,
        response: { 200: Type.Object({ items: Type.Array(Job) }), ...errorResponses },
      },
    },
    async (request) => ({ items: await ctx.jobs.list(deviceOf(request)) }),
  );

  app.get<{ Params: { uuid: string; id: string } }>(
    "/api/v1/devices/:uuid/jobs/:id",
    {
      schema: {
        tags: ["devices"],
        summary: "One update job with every status the device reported (its report)",

        params: JobParams,
        response: { 200: Job, ...errorResponses },
      },
    },
    async (request) => ctx.jobs.get(deviceOf(request), request.params.id),
  );
}

import { CreateRolloutBody, RolloutDeviceList, RolloutList, RolloutView } from "@fieldgate/shared";
import { Type } from "@sinclair/typebox";
import type { FastifyInstance } from "fastify";
import { errorResponses, principalOf, type RouteContext } from "./route-context.js";

const IdParams = Type.Object({ id: Type.Integer({ minimum: 1 }) }, { additionalProperties: false });

/**
 * Phased rollouts (issue #5). Creating one needs `firmware:write` on every targeted device (the
 * target is resolved inside the caller's scope); reading or steering one needs the right on every
 * group its devices are in.
 */
export function registerRolloutRoutes(app: FastifyInstance, ctx: RouteContext): void {
  app.post<{ Body: CreateRolloutBody }>(
    "/api/v1/rollouts",
    {
      schema: {
        tags: ["rollouts"],
        summary: "Start a phased rollout of an image to a set of devices",

        body: CreateRolloutBody,
        response: { 201: RolloutView, ...errorResponses },
      },
    },
    async (request, reply) => {
      const rollout = await ctx.rollouts.create(principalOf(request), request.body);
      request.log.info({ rolloutId: rollout.id, firmware: request.body.firmware }, "rollout created");
      return reply.status(201).send(rollout);
    },
  );

  app.get(
    "/api/v1/rollouts",
    {
      schema: {
        tags: ["rollouts"],
        summary: "The rollouts the caller may read, newest first (at most 200)",

        response: { 200: RolloutList, ...errorResponses },
      },
    },
    async (request) => ({ items: await ctx.rollouts.list(principalOf(request)) }),
  );

  app.get<{ Params: { id: number } }>(
    "/api/v1/rollouts/:id",
    {
      schema: {
        tags: ["rollouts"],
        summary: "One rollout: counts per state and per phase, and the failing devices with their reasons",

        params: IdParams,
        response: { 200: RolloutView, ...errorResponses },
      },
    },
    async (request) => ctx.rollouts.show(principalOf(request).orgId, request.params.id),
  );

  app.get<{ Params: { id: number } }>(
    "/api/v1/rollouts/:id/devices",
    {
      schema: {
        tags: ["rollouts"],
        summary:
          "The rollout's devices in target order (at most 1000), each with its state and current job's status and step",

        params: IdParams,
        response: { 200: RolloutDeviceList, ...errorResponses },
      },
    },
    async (request) => ctx.rollouts.devices(principalOf(request).orgId, request.params.id),
  );

  const steer = (action: "pause" | "resume" | "abort", summary: string) =>
    app.post<{ Params: { id: number } }>(
      `/api/v1/rollouts/:id/${action}`,
      {
        schema: {
          tags: ["rollouts"],
          summary,

          params: IdParams,
          response: { 200: RolloutView, ...errorResponses },
        },
      },
      async (request) => {
        const view = await ctx.rollouts[action](principalOf(request).orgId, request.params.id);
        request.log.info({ rolloutId: request.params.id }, `rollout ${action}`);
        return view;
      },
    );
  steer("pause", "Stop starting new installs; those running go on");
  steer("resume", "Start installs again; a phase held below the success threshold goes on to the next");
  steer("abort", "Stop for good: cancel installs not yet taken, and with auto-rollback send updated devices back");
}

import { PassThrough } from "node:stream";
import { ErrorResponse, FieldgateError } from "@fieldgate/shared";
import { Type } from "@sinclair/typebox";
import type { FastifyInstance } from "fastify";
import { authenticate } from "../access-hook.js";
import { principalOf, type RouteContext } from "./route-context.js";

/**
 * `GET /api/v1/live`: Server-Sent Events naming what changed among the things the session may
 * read (`event: device`, `job`, `rollout`); the console re-reads what it shows. Works with the
 * console's cookie session (a GET, so no CSRF token) and with API credentials alike.
 */
export function registerLiveRoutes(app: FastifyInstance, ctx: RouteContext): void {
  app.get(
    "/api/v1/live",
    {
      schema: {
        tags: ["live"],
        summary:
          "Live updates as Server-Sent Events: device, job and rollout changes the caller may read, coalesced per 250 ms",
        // Streamed: the schema describes the stream; it is never serialized with it.
        response: {
          200: {
            description:
              "an endless event stream: `retry: 5000`, then `event: device` / `job` / `rollout` with JSON data, and a `: ping` comment every 15 s",
            content: {
              "text/event-stream": {
                schema: Type.String({
                  description:
                    'event: device, data {"uuid"}; event: job, data {"uuid","jobId"}; event: rollout, data {"id"}',
                }),
              },
            },
          },
          429: ErrorResponse,
        },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      // HEAD asks what GET would answer: the headers, never a stream held open.
      if (request.method === "HEAD") return reply.type("text/event-stream").header("cache-control", "no-cache").send();
      const out = new PassThrough();
      const opened = ctx.live.open(
        principal,
        async () => {
          const now = await authenticate(request, ctx);
          return now.id === principal.id ? now : undefined;
        },
        out,
      );
      if (!opened.ok) {
        out.destroy();
        void reply.header("retry-after", "60");
        throw new FieldgateError(
          "LIVE_STREAMS_EXHAUSTED",
          opened.reason === "principal"
            ? "this credential has the most live streams open it may; close a console tab"
            : "the cloud has the most live streams open it serves; retry later",
        );
      }
      // The response, not the request: a GET request "closes" as soon as it is read.
      reply.raw.once("close", opened.close);
      return reply
        .type("text/event-stream")
        .header("cache-control", "no-cache")
        .header("x-accel-buffering", "no")
        .send(out);
    },
  );
}

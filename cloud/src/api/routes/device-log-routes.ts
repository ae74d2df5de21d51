import { DeviceLogPage, DeviceLogQuery, FieldgateError, Uuid } from "@fieldgate/shared";
import { Type } from "@sinclair/typebox";
import type { FastifyInstance } from "fastify";
import { deviceOf, errorResponses, type RouteContext } from "./route-context.js";

const UuidParams = Type.Object({ uuid: Uuid }, { additionalProperties: false });

/** Log lines devices forwarded. */
export function registerDeviceLogRoutes(app: FastifyInstance, ctx: RouteContext): void {
  app.get<{ Params: { uuid: string }; Querystring: DeviceLogQuery }>(
    "/api/v1/devices/:uuid/logs",
    {
      schema: {
        tags: ["devices"],
        summary:
          "Forwarded log lines. With after or since: oldest first (follow with after=nextAfter); otherwise the newest, newest first",

        params: UuidParams,
        querystring: DeviceLogQuery,
        response: { 200: DeviceLogPage, ...errorResponses },
      },
    },
    async (request) => {
      const { since, until } = request.query;
      if (since && until && Date.parse(since) > Date.parse(until)) {
        throw new FieldgateError("VALIDATION_FAILED", "since must not be after until", "since");
      }
      return await ctx.deviceLogs.query(deviceOf(request), request.query);
    },
  );
}

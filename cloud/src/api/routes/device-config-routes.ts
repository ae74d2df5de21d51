import { checkLinks, DesiredConfig, DeviceConfigView, Uuid } from "@fieldgate/shared";
import { Type } from "@sinclair/typebox";
import type { FastifyInstance } from "fastify";
import { deviceOf, errorResponses, type RouteContext } from "./route-context.js";

const UuidParams = Type.Object({ uuid: Uuid }, { additionalProperties: false });

/** A device's desired configuration (cloud → device) and its acknowledgement. */
export function registerDeviceConfigRoutes(app: FastifyInstance, ctx: RouteContext): void {
  app.get<{ Params: { uuid: string } }>(
    "/api/v1/devices/:uuid/config",
    {
      schema: {
        tags: ["devices"],
        summary: "The desired config, what the device reported, and whether it applied the current version",

        params: UuidParams,
        response: { 200: DeviceConfigView, ...errorResponses },
      },
    },
    async (request) => ctx.deviceConfigs.view(deviceOf(request)),
  );

  app.put<{ Params: { uuid: string }; Body: DesiredConfig }>(
    "/api/v1/devices/:uuid/config",
    {
      schema: {
        tags: ["devices"],
        summary:
          "Replace the desired config (the version increments); it is sent to the device, now or when it connects",

        params: UuidParams,
        body: DesiredConfig,
        response: { 200: DeviceConfigView, ...errorResponses },
      },
      // Links are checked item by item against their own type before the body schema, so the error
      // names the field at fault (links[1].protocol.poll[0].count) and duplicate ids are refused.
      preValidation: async (request) => {
        const links = (request.body as { links?: unknown } | null)?.links;
        if (links !== undefined) checkLinks(links, "links", "VALIDATION_FAILED", { devicePaths: true });
      },
    },
    async (request) => {
      const device = deviceOf(request);
      const view = await ctx.deviceConfigs.set(device, request.body);
      request.log.info({ uuid: device.uuid, version: view.version }, "desired config set");
      return view;
    },
  );
}

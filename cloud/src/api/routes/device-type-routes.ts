import { CreateDeviceTypeBody, DeviceType, EditDeviceTypeBody, IdParams } from "@fieldgate/shared";
import { Type } from "@sinclair/typebox";
import type { FastifyInstance } from "fastify";
import type { DeviceTypeRecord } from "../../device-types/device-types.js";
import { errorResponses, groupRef, principalOf, type RouteContext, targetGroupOf } from "./route-context.js";

const errors = errorResponses;

/** Device types: keep-alive, firmware compatibility and defaults shared by devices of one kind. */
export function registerDeviceTypeRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const { types } = ctx;
  const view = async (t: DeviceTypeRecord) => ({
    id: t.id,
    name: t.name,
    description: t.description,
    group: await groupRef(ctx, t.orgId, t.groupPath),
    keepaliveMinutes: t.keepaliveMinutes,
    firmwareCompat: t.firmwareCompat,
    defaultLinks: t.defaultLinks,
    healthThresholds: t.healthThresholds,
    createdAt: new Date(t.createdAt).toISOString(),
    devices: t.devices,
  });

  app.post<{ Body: CreateDeviceTypeBody }>(
    "/api/v1/device-types",
    {
      schema: {
        tags: ["device-types"],

        body: CreateDeviceTypeBody,
        response: { 201: DeviceType, ...errors },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const group = await targetGroupOf(ctx, request, "types:write");
      const { group: _g, ...fields } = request.body;
      return reply.status(201).send(await view(await types.create(principal.orgId, group.id, fields)));
    },
  );

  app.get(
    "/api/v1/device-types",
    {
      schema: {
        tags: ["device-types"],

        response: { 200: Type.Object({ items: Type.Array(DeviceType) }), ...errors },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const items = await types.list(principal.orgId, ctx.policy.scopes(principal, "types:read"));
      return { items: await Promise.all(items.map(view)) };
    },
  );

  app.get<{ Params: { id: number } }>(
    "/api/v1/device-types/:id",
    {
      schema: {
        tags: ["device-types"],

        params: IdParams,
        response: { 200: DeviceType, ...errors },
      },
    },
    async (request) => view(await types.get(principalOf(request).orgId, request.params.id)),
  );

  app.patch<{ Params: { id: number }; Body: EditDeviceTypeBody }>(
    "/api/v1/device-types/:id",
    {
      schema: {
        tags: ["device-types"],

        params: IdParams,
        body: EditDeviceTypeBody,
        response: { 200: DeviceType, ...errors },
      },
    },
    async (request) => view(await types.edit(principalOf(request).orgId, request.params.id, request.body)),
  );

  app.delete<{ Params: { id: number } }>(
    "/api/v1/device-types/:id",
    {
      schema: {
        tags: ["device-types"],
        summary: "Delete a device type no device uses",

        params: IdParams,
        response: { 204: Type.Null(), ...errors },
      },
    },
    async (request, reply) => {
      await types.delete(principalOf(request).orgId, request.params.id);
      return reply.status(204).send();
    },
  );
}

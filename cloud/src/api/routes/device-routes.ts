import {
  CreateDeviceBody,
  Device,
  DeviceCertificateList,
  DeviceEventPage,
  DeviceHealth,
  DeviceList,
  DeviceWithToken,
  FieldgateError,
  ListDevicesQuery,
  PatchDeviceBody,
  TelemetryPage,
  TelemetryQuery,
  Uuid,
} from "@fieldgate/shared";
import { type Static, Type } from "@sinclair/typebox";
import type { FastifyInstance } from "fastify";
import type { Principal } from "../../access/access-policy.js";
import { typeNotFound } from "../../device-types/device-types.js";
import type { GroupRow } from "../../groups/group-tree.js";
import type { OpenedWindow } from "../../registry/device-registry.js";
import { telemetryCsvStream } from "../../telemetry/telemetry-export.js";
import { deviceOf, errorResponses, principalOf, type RouteContext, targetGroupOf } from "./route-context.js";

const UuidParams = Type.Object({ uuid: Uuid }, { additionalProperties: false });

/** The telemetry filters, and the answer's format: `limit` applies to JSON only, a CSV holds the whole range. */
const TelemetryRouteQuery = Type.Object(
  {
    ...TelemetryQuery.properties,
    format: Type.Optional(
      Type.Union([Type.Literal("json"), Type.Literal("csv")], {
        description: "json (default) or csv; without it, `Accept: text/csv` asks for CSV",
      }),
    ),
  },
  { additionalProperties: false },
);
type TelemetryRouteQuery = Static<typeof TelemetryRouteQuery>;

/** True when the Accept header names text/csv and not JSON before it. */
function prefersCsv(accept: string | undefined): boolean {
  if (!accept) return false;
  const types = accept.split(",").map((t) => t.split(";")[0]?.trim().toLowerCase());
  const csv = types.indexOf("text/csv");
  const json = types.indexOf("application/json");
  return csv >= 0 && (json < 0 || csv < json);
}
const errors = errorResponses;

/** Devices: registry, enrollment windows, telemetry and events. */
export function registerDeviceRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const { registry } = ctx;
  const withToken = (device: Device, window: OpenedWindow) => ({
    device,
    enrollmentToken: window.token,
    windowExpiresAt: new Date(window.expiresAt).toISOString(),
  });
  /**
   * A type may be used by devices in its own group and the groups below it. One the caller may
   * neither use there nor read is reported as unknown, so its existence stays hidden.
   */
  const typeFor = async (principal: Principal, ref: string | number, group: GroupRow, known = false) => {
    const type = await ctx.types.resolve(principal.orgId, ref);
    if (!group.path.startsWith(type.groupPath)) {
      if (!known && !ctx.policy.sees(principal, "types:read", type.groupPath, "scope-and-above"))
        throw typeNotFound(ref);
      throw new FieldgateError(
        "VALIDATION_FAILED",
        `device type ${type.name} is not defined for this group or its parents`,
        "type",
      );
    }
    return type;
  };

  app.post<{ Body: CreateDeviceBody }>(
    "/api/v1/devices",
    {
      schema: {
        tags: ["devices"],
        summary: "Register a device in a group and open its first enrollment window",

        body: CreateDeviceBody,
        response: { 201: DeviceWithToken, ...errors },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const group = await targetGroupOf(ctx, request, "devices:write");
      const type = request.body.type === undefined ? undefined : await typeFor(principal, request.body.type, group);
      const { device, window } = await registry.create(principal.orgId, request.body, {
        groupId: group.id,
        typeId: type?.id ?? null,
      });
      return reply.status(201).send(withToken(device, window));
    },
  );

  app.get<{ Querystring: ListDevicesQuery }>(
    "/api/v1/devices",
    {
      schema: {
        tags: ["devices"],

        querystring: ListDevicesQuery,
        response: { 200: DeviceList, ...errors },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const limit = request.query.limit ?? 100;
      const offset = request.query.offset ?? 0;
      const scope = ctx.policy.sqlScope(principal, "devices:read", "g.path");
      const filters = await registry.resolveFilters(principal.orgId, request.query, (path) =>
        ctx.policy.sees(principal, "devices:read", path, "scope-and-above"),
      );
      const { items, total } = await registry.list(principal.orgId, scope, filters, { limit, offset });
      return { items, total, limit, offset };
    },
  );

  app.get<{ Params: { uuid: string } }>(
    "/api/v1/devices/:uuid",
    {
      schema: {
        tags: ["devices"],

        params: UuidParams,
        response: { 200: Device, ...errors },
      },
    },
    async (request) => registry.toApi(deviceOf(request)),
  );

  app.patch<{ Params: { uuid: string }; Body: PatchDeviceBody }>(
    "/api/v1/devices/:uuid",
    {
      schema: {
        tags: ["devices"],
        summary: "Edit a device, move it to another group, or change its type; the uuid cannot change",

        params: UuidParams,
        body: PatchDeviceBody,
        response: { 200: Device, ...errors },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const row = deviceOf(request);
      const { group: _group, type: typeRef, ...fields } = request.body;
      const group = request.targetGroup ?? (await ctx.groups.get(principal.orgId, row.group_id));
      let typeId: number | null | undefined;
      if (typeRef === null) typeId = null;
      else if (typeRef !== undefined) typeId = (await typeFor(principal, typeRef, group)).id;
      else if (request.targetGroup && row.type_id !== null) {
        // Moving keeps the type only where the type is still defined.
        const current = await ctx.types.get(principal.orgId, row.type_id);
        // The device view names its type already: the refusal may name it too.
        if (!group.path.startsWith(current.groupPath)) await typeFor(principal, current.id, group, true);
      }
      return registry.patch(principal.orgId, row.uuid, fields, {
        ...(request.targetGroup && { groupId: group.id }),
        ...(typeId !== undefined && { typeId }),
      });
    },
  );

  app.delete<{ Params: { uuid: string } }>(
    "/api/v1/devices/:uuid",
    {
      schema: {
        tags: ["devices"],

        params: UuidParams,
        response: { 204: Type.Null(), ...errors },
      },
    },
    async (request, reply) => {
      await registry.delete(principalOf(request).orgId, deviceOf(request).uuid);
      return reply.status(204).send();
    },
  );

  app.post<{ Params: { uuid: string } }>(
    "/api/v1/devices/:uuid/reset-token",
    {
      schema: {
        tags: ["devices"],
        summary: "Revoke the device's certificate and open a new enrollment window",

        params: UuidParams,
        response: { 200: DeviceWithToken, ...errors },
      },
    },
    async (request) => {
      const { device, window, revoked } = await registry.resetToken(principalOf(request).orgId, deviceOf(request).uuid);
      request.log.info({ uuid: device.uuid, revokedCertificates: revoked }, "token reset");
      return { ...withToken(device, window), revokedCertificates: revoked };
    },
  );

  app.get<{ Params: { uuid: string }; Querystring: TelemetryRouteQuery }>(
    "/api/v1/devices/:uuid/telemetry",
    {
      schema: {
        tags: ["devices"],
        summary:
          "Stored readings: JSON, newest first and at most `limit`; or (format=csv, or Accept: text/csv) the whole range as a streamed CSV, oldest first",

        params: UuidParams,
        querystring: TelemetryRouteQuery,
        response: {
          200: {
            description: "the readings",
            content: {
              "application/json": { schema: TelemetryPage },
              "text/csv": {
                schema: Type.String({
                  description:
                    "header ts,name,value,unit,source,stream,seq, then one row per reading in the range, oldest first (CRLF); text cells are escaped against formula injection",
                }),
              },
            },
          },
          ...errors,
        },
      },
    },
    async (request, reply) => {
      const { from, to, format: asked, ...query } = request.query;
      if (from && to && Date.parse(from) > Date.parse(to)) {
        throw new FieldgateError("VALIDATION_FAILED", "from must not be after to", "from");
      }
      const format = asked ?? (prefersCsv(request.headers.accept) ? "csv" : "json");
      const device = deviceOf(request);
      if (format === "json") {
        return reply
          .type("application/json; charset=utf-8")
          .send(await ctx.telemetry.telemetry(device, { from, to, ...query }));
      }
      // Everything is checked before the first byte: after the headers are sent, an error can only cut the stream.
      const { limit: _limit, ...filters } = query;
      return reply
        .type("text/csv; charset=utf-8")
        .header("content-disposition", `attachment; filename="${device.uuid}-telemetry.csv"`)
        .send(telemetryCsvStream(ctx.telemetry.pages(device.id, { from, to, ...filters })));
    },
  );

  app.get<{ Params: { uuid: string } }>(
    "/api/v1/devices/:uuid/health",
    {
      schema: {
        tags: ["devices"],
        summary: "The checks of the device's latest health report, each with its status and message",

        params: UuidParams,
        response: { 200: DeviceHealth, ...errors },
      },
    },
    async (request) => registry.health(principalOf(request).orgId, deviceOf(request).uuid),
  );

  app.get<{ Params: { uuid: string } }>(
    "/api/v1/devices/:uuid/certificates",
    {
      schema: {
        tags: ["devices"],
        summary: "Every certificate issued to the device, newest first: the current one, renewals and revocations",

        params: UuidParams,
        response: { 200: DeviceCertificateList, ...errors },
      },
    },
    async (request) => registry.certificates(principalOf(request).orgId, deviceOf(request).uuid),
  );

  app.get<{ Params: { uuid: string }; Querystring: { limit?: number } }>(
    "/api/v1/devices/:uuid/events",
    {
      schema: {
        tags: ["devices"],

        params: UuidParams,
        querystring: Type.Object(
          {
            limit: Type.Optional(
              Type.Integer({
                minimum: 1,
                maximum: 10_000,
                default: 100,
                description: "at most this many events, 1 to 10000",
              }),
            ),
          },
          { additionalProperties: false },
        ),
        response: { 200: DeviceEventPage, ...errors },
      },
    },
    async (request) => {
      const device = deviceOf(request);
      return { uuid: device.uuid, ...(await ctx.events.list(device.id, request.query.limit ?? 100)) };
    },
  );
}

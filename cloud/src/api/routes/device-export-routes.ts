import { ErrorResponse, ListDevicesQuery } from "@fieldgate/shared";
import { type Static, Type } from "@sinclair/typebox";
import type { FastifyInstance } from "fastify";
import { EXPORT_COLUMNS, exportStream, MAX_EXPORT_COLUMNS, parseExportColumns } from "../../registry/device-export.js";
import { principalOf, type RouteContext } from "./route-context.js";

// The list filters and sort, without paging: an export holds every match.
const { limit: _limit, offset: _offset, ...filterProperties } = ListDevicesQuery.properties;

const ExportDevicesQuery = Type.Object(
  {
    ...filterProperties,
    format: Type.Optional(Type.Union([Type.Literal("csv"), Type.Literal("json")], { default: "csv" })),
    columns: Type.Optional(
      Type.String({
        maxLength: 512,
        description: `comma-separated, at most ${MAX_EXPORT_COLUMNS}: ${EXPORT_COLUMNS.join(", ")}`,
      }),
    ),
  },
  { additionalProperties: false },
);
type ExportDevicesQuery = Static<typeof ExportDevicesQuery>;

const errors = { 400: ErrorResponse, 401: ErrorResponse, 403: ErrorResponse, 404: ErrorResponse };

/** `GET /api/v1/devices/export`: the filtered device list as a streamed CSV or JSON file. */
export function registerDeviceExportRoutes(app: FastifyInstance, ctx: RouteContext): void {
  app.get<{ Querystring: ExportDevicesQuery }>(
    "/api/v1/devices/export",
    {
      schema: {
        tags: ["devices"],
        summary:
          "Export the filtered devices as CSV or JSON, streamed; CSV cells are escaped against formula injection",

        querystring: ExportDevicesQuery,
        // Streamed: the schemas describe the file; a stream is never serialized with them.
        response: {
          200: {
            description: "every matching device, in the chosen columns",
            content: {
              "text/csv": { schema: Type.String({ description: "a header row, then one row per device (CRLF)" }) },
              "application/json": {
                schema: Type.Array(Type.Record(Type.String(), Type.Unknown()), {
                  description: "one object per device with the chosen columns",
                }),
              },
            },
          },
          ...errors,
        },
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const { format = "csv", columns: columnText, ...query } = request.query;
      // Everything is checked before the first byte: after the headers are sent, an error can only cut the stream.
      const columns = parseExportColumns(columnText);
      const filters = await ctx.registry.resolveFilters(principal.orgId, query, (path) =>
        ctx.policy.sees(principal, "devices:read", path, "scope-and-above"),
      );
      const scope = ctx.policy.sqlScope(principal, "devices:read", "g.path");
      const pages = ctx.registry.exportPages(principal.orgId, scope, filters);
      return reply
        .type(format === "csv" ? "text/csv; charset=utf-8" : "application/json; charset=utf-8")
        .header("content-disposition", `attachment; filename="devices.${format}"`)
        .send(exportStream(pages, format, columns));
    },
  );
}

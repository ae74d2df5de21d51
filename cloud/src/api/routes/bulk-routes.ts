import {
  BULK_CSV_MAX_BYTES,
  BulkDeleteQuery,
  BulkEditQuery,
  BulkImportQuery,
  type BulkMode,
  type BulkOperation,
  BulkReplaceQuery,
  BulkReport,
  BulkTransferQuery,
} from "@fieldgate/shared";
import { type TSchema, Type } from "@sinclair/typebox";
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { Principal } from "../../access/access-policy.js";
import type { BulkOperations } from "../../bulk/bulk-operations.js";
import { errorResponses, principalOf, type RouteContext } from "./route-context.js";

/** Larger than the API's default limit of 256 KiB (see docs/cli.md: bulk files). */
const CSV_BODY_LIMIT = BULK_CSV_MAX_BYTES;
const errors = errorResponses;
const CsvBody = Type.String({
  description: "the CSV file, sent as text/csv (or text/plain; a JSON string is accepted too)",
});

type CommonQuery = { dryRun?: boolean; mode?: BulkMode };
type Runner<Q> = (
  bulk: BulkOperations,
  principal: Principal,
  csv: string,
  query: Q & Required<CommonQuery>,
) => Promise<BulkReport>;

/**
 * The bulk series: `POST /api/v1/devices/bulk/{import,edit,transfer,replace,delete}` with the CSV
 * as the body and the options in the query string. The rights check is per row (ROUTE_RIGHTS only
 * asks for devices:write somewhere), inside BulkOperations.
 */
export function registerBulkRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const { bulk } = ctx;

  // Encapsulated, so the CSV parser and the larger body limit apply to these routes only.
  void app.register(async (scope) => {
    scope.addContentTypeParser(
      ["text/csv", "text/plain"],
      { parseAs: "string", bodyLimit: CSV_BODY_LIMIT },
      (_request: FastifyRequest, body: string | Buffer, done: (err: Error | null, body?: unknown) => void) =>
        done(null, body.toString()),
    );

    const route = <Q extends CommonQuery>(
      operation: BulkOperation,
      summary: string,
      querystring: TSchema,
      runner: Runner<Q>,
    ) =>
      scope.post<{ Body: string; Querystring: Q }>(
        `/api/v1/devices/bulk/${operation}`,
        {
          bodyLimit: CSV_BODY_LIMIT,
          schema: {
            tags: ["devices", "bulk"],
            summary,

            querystring,
            body: CsvBody,
            response: { 200: BulkReport, ...errors },
          },
        },
        async (request) => {
          const given = request.query as Q;
          const query = { ...given, dryRun: given.dryRun ?? false, mode: given.mode ?? "atomic" };
          const report = await runner(bulk, principalOf(request), request.body, query);
          request.log.info(
            { operation, dryRun: report.dryRun, mode: report.mode, applied: report.applied, ...report.summary },
            "bulk operation",
          );
          return report;
        },
      );

    route<BulkImportQuery>(
      "import",
      "Register a series of devices from CSV; each gets an enrollment window, and the tokens come back once",
      BulkImportQuery,
      (b, p, csv, q) => b.import(p, csv, q),
    );
    route<BulkEditQuery>("edit", "Set name, location, comment, tags and type by uuid", BulkEditQuery, (b, p, csv, q) =>
      b.edit(p, csv, q),
    );
    route<BulkTransferQuery>(
      "transfer",
      "Move the listed devices to a group (and type), keeping or dropping their history",
      BulkTransferQuery,
      (b, p, csv, q) => b.transfer(p, csv, q),
    );
    route<BulkReplaceQuery>(
      "replace",
      "Replace old devices by new ones: the new takes over, the old is revoked and retired",
      BulkReplaceQuery,
      (b, p, csv, q) => b.replace(p, csv, q),
    );
    route<BulkDeleteQuery>("delete", "Delete the listed devices with all their data", BulkDeleteQuery, (b, p, csv, q) =>
      b.delete(p, csv, q),
    );
  });
}

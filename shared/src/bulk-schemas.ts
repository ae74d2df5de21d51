/**
 * The bulk series (issue #3, "Bulk series from CSV"): the query options of each operation and the
 * per-row report every one of them answers. The request body is the CSV file itself.
 */
import { type Static, Type } from "@sinclair/typebox";

export const BULK_OPERATIONS = ["import", "edit", "transfer", "replace", "delete"] as const;

/** The largest CSV file a bulk route takes: a 100,000-row import with factory keys fits. */
export const BULK_CSV_MAX_BYTES = 32 * 1024 * 1024;
export type BulkOperation = (typeof BULK_OPERATIONS)[number];

/** `atomic`: every row or none. `rows`: each valid row is applied on its own. */
export const BulkMode = Type.Union([Type.Literal("atomic"), Type.Literal("rows")], {
  description: "atomic (all rows or none, the default) or rows (apply each valid row)",
});
export type BulkMode = Static<typeof BulkMode>;

const common = {
  dryRun: Type.Optional(Type.Boolean({ description: "validate and report; write nothing" })),
  mode: Type.Optional(BulkMode),
};
const Ref = (description: string) => Type.String({ minLength: 1, maxLength: 512, description });

export const BulkImportQuery = Type.Object(
  {
    ...common,
    namePrefix: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 100,
        description: "rows without a name get this prefix and a number, continuing after the highest in use",
      }),
    ),
    group: Type.Optional(Ref("group of rows without a group cell (default: your own group)")),
    type: Type.Optional(Ref("device type of rows without a type cell")),
  },
  { additionalProperties: false },
);
export type BulkImportQuery = Static<typeof BulkImportQuery>;

export const BulkEditQuery = Type.Object({ ...common }, { additionalProperties: false });
export type BulkEditQuery = Static<typeof BulkEditQuery>;

export const BulkTransferQuery = Type.Object(
  {
    ...common,
    toGroup: Ref("the group every listed device moves to"),
    toType: Type.Optional(Ref("the device type they all get (defined in the target group or above)")),
    history: Type.Optional(
      Type.Union([Type.Literal("keep"), Type.Literal("drop")], {
        description: "keep (default) or drop the moved devices' telemetry, events and logs",
      }),
    ),
  },
  { additionalProperties: false },
);
export type BulkTransferQuery = Static<typeof BulkTransferQuery>;

export const BulkReplaceQuery = Type.Object(
  {
    ...common,
    keepHistory: Type.Optional(
      Type.Boolean({ description: "move the old device's telemetry, events and logs to the new one" }),
    ),
  },
  { additionalProperties: false },
);
export type BulkReplaceQuery = Static<typeof BulkReplaceQuery>;

export const BulkDeleteQuery = Type.Object({ ...common }, { additionalProperties: false });
export type BulkDeleteQuery = Static<typeof BulkDeleteQuery>;

/** One data row's outcome. `line` is the physical line of the file where the row starts (header = 1). */
export const BulkRowResult = Type.Object({
  line: Type.Integer({ minimum: 2 }),
  uuid: Type.Optional(Type.String({ description: "the device the row names (replace: the new device)" })),
  oldUuid: Type.Optional(Type.String({ description: "replace: the device that was retired" })),
  name: Type.Optional(Type.String({ description: "import: the name given, or the one numbered from namePrefix" })),
  status: Type.Union([Type.Literal("ok"), Type.Literal("error")]),
  code: Type.Optional(Type.String({ description: "the error code, from docs/error-codes.md" })),
  field: Type.Optional(Type.String({ description: "the CSV column at fault" })),
  message: Type.Optional(Type.String()),
  token: Type.Optional(Type.String({ description: "import and replace: the one-time enrollment token, shown once" })),
  windowExpiresAt: Type.Optional(Type.String({ format: "date-time" })),
});
export type BulkRowResult = Static<typeof BulkRowResult>;

/**
 * The answer of every bulk operation. `applied` is true when the rows marked ok were written: false
 * for a dry run and for an atomic run with a failed row (then nothing was written).
 */
export const BulkReport = Type.Object({
  operation: Type.Union(BULK_OPERATIONS.map((op) => Type.Literal(op))),
  dryRun: Type.Boolean(),
  mode: BulkMode,
  applied: Type.Boolean(),
  summary: Type.Object({ ok: Type.Integer(), failed: Type.Integer() }),
  rows: Type.Array(BulkRowResult),
});
export type BulkReport = Static<typeof BulkReport>;

import {
  type BulkImportQuery,
  type BulkMode,
  type BulkOperation,
  type BulkReport,
  type BulkRowResult,
  type BulkTransferQuery,
  CreateDeviceBody,
  FieldgateError,
  PatchDeviceBody,
  type SchemaValidator,
  Uuid,
} from "@fieldgate/shared";
import type Database from "better-sqlite3";
import type { AccessPolicy, Principal } from "../access/access-policy.js";
import { type DeviceTypeRecord, typeNotFound } from "../device-types/device-types.js";
import type { EmbeddedTypeLookup } from "../device-types/embedded-type-lookup.js";
import type { DeviceEventLog } from "../events/device-events.js";
import type { EmbeddedGroupLookup } from "../groups/embedded-group-lookup.js";
import { type GroupRow, groupNotFound } from "../groups/group-tree.js";
import { type DeviceRegistry, type DeviceRow, deviceNotFound } from "../registry/device-registry.js";
import { type CsvColumns, type CsvRecord, type CsvRow, parseCsvTable } from "./csv-table.js";
import { normalizeFactoryKey } from "./factory-key.js";

export interface BulkOperationsDeps {
  db: Database.Database;
  registry: DeviceRegistry;
  /** The device event history, moved or dropped with the rest of a device's history. */
  events: DeviceEventLog;
  groups: EmbeddedGroupLookup;
  types: EmbeddedTypeLookup;
  policy: AccessPolicy;
  validator: SchemaValidator;
  /** The enrollment window each imported or replacing device gets, as `registry.create` opens. */
  windowMs: number;
}

export interface BulkRunOptions {
  dryRun: boolean;
  mode: BulkMode;
}

/** The columns of each operation, as documented in docs/bulk-csv.md. */
export const BULK_COLUMNS: Readonly<Record<BulkOperation, CsvColumns>> = {
  import: {
    required: ["uuid"],
    optional: ["name", "location", "comment", "tags", "type", "group", "factory_public_key"],
  },
  edit: { required: ["uuid"], optional: ["name", "location", "comment", "tags", "type"] },
  transfer: { required: ["uuid"], optional: [] },
  replace: { required: ["old_uuid", "new_uuid"], optional: ["factory_public_key"] },
  delete: { required: ["uuid"], optional: [] },
};

/** At most this many data rows per file; 32 MiB of CSV holds about this many. */
export const MAX_BULK_ROWS = 100_000;
/** Rows mode commits in chunks of this many rows and lets the event loop (MQTT ingest) run between them. */
const CHUNK_ROWS = 1000;
/** In bulk-edit, a cell holding only this clears the field (an empty cell leaves it unchanged). */
const CLEAR = "-";

/** What a validated row will write, and what must happen once that write is committed. */
interface RowWrite {
  write: () => void;
  afterCommit?: () => void;
}

type RowValidator = (record: CsvRecord, result: BulkRowResult) => RowWrite;

interface PreparedRow {
  result: BulkRowResult;
  planned?: RowWrite;
}

/**
 * The bulk series: import, edit, transfer, replace and delete devices from a CSV file. Each row is
 * validated (including the caller's rights on every group it touches) before anything is written,
 * and each row's writes happen together or not at all. `atomic` applies all rows in one transaction
 * or none; `rows` applies each valid row, committing in chunks.
 */
export class BulkOperations {
  private readonly db: Database.Database;
  private readonly statements: ReturnType<typeof prepareStatements>;
  /** A nested better-sqlite3 transaction is a SAVEPOINT: one row's writes, all or nothing. */
  private readonly inSavepoint: (fn: () => void) => void;

  constructor(private readonly deps: BulkOperationsDeps) {
    this.db = deps.db;
    this.statements = prepareStatements(this.db);
    this.inSavepoint = this.db.transaction((fn: () => void) => fn());
  }

  /** New devices, each with its own enrollment window; the tokens are in the report, once. */
  import(principal: Principal, csv: string, options: BulkRunOptions & BulkImportQuery): Promise<BulkReport> {
    const scope = new RowScope(this.deps, principal);
    const nextName = options.namePrefix ? this.nameCounter(principal.orgId, options.namePrefix) : undefined;
    return this.run("import", csv, ["uuid"], options, (record, result) => {
      const { cells } = record;
      const uuid = cells.uuid?.toLowerCase() ?? "";
      result.uuid = uuid;
      const factoryPublicKey = cells.factory_public_key
        ? normalizeFactoryKey(cells.factory_public_key, "factory_public_key")
        : undefined;
      const body = this.deps.validator.parse(CreateDeviceBody, {
        uuid,
        ...(cells.name && { name: cells.name }),
        ...(cells.location && { location: cells.location }),
        ...(cells.comment && { comment: cells.comment }),
        ...(cells.tags && { tags: splitTags(cells.tags) }),
        ...(factoryPublicKey && { factoryPublicKey }),
      });
      this.requireFree(principal.orgId, uuid, "uuid");
      const groupRef = cells.group || options.group;
      const group = groupRef ? scope.group(groupRef, "group") : scope.defaultGroup();
      scope.requireWritable(group, "group");
      const typeRef = cells.type || options.type;
      const type = typeRef ? scope.typeFor(typeRef, group, "type") : undefined;
      const name = body.name ?? nextName?.() ?? "";
      if (name) result.name = name;
      return {
        write: () => {
          const { token, expiresAt } = this.deps.registry.embeddedRows().insert(
            principal.orgId,
            {
              uuid,
              name,
              location: body.location,
              comment: body.comment,
              tags: body.tags,
              factoryPublicKey: body.factoryPublicKey,
            },
            { groupId: group.id, typeId: type?.id ?? null },
          );
          result.token = token;
          result.windowExpiresAt = new Date(expiresAt).toISOString();
        },
      };
    });
  }

  /** Sets name, location, comment, tags and type by uuid; an empty cell keeps the value, `-` clears it. */
  edit(principal: Principal, csv: string, options: BulkRunOptions): Promise<BulkReport> {
    const scope = new RowScope(this.deps, principal);
    const hasFields = (columns: readonly string[]) => columns.some((c) => c !== "uuid");
    return this.run(
      "edit",
      csv,
      ["uuid"],
      options,
      (record, result) => {
        const { cells } = record;
        const device = scope.device(cells.uuid ?? "", "uuid");
        result.uuid = device.uuid;
        const text = (column: string) => {
          const cell = cells[column];
          return !cell ? undefined : cell === CLEAR ? "" : cell;
        };
        const tagsCell = cells.tags;
        const patch = {
          ...(text("name") !== undefined && { name: text("name") }),
          ...(text("location") !== undefined && { location: text("location") }),
          ...(text("comment") !== undefined && { comment: text("comment") }),
          ...(tagsCell && { tags: tagsCell === CLEAR ? [] : splitTags(tagsCell) }),
        };
        if (Object.keys(patch).length > 0) this.deps.validator.parse(PatchDeviceBody, patch);
        const typeCell = cells.type;
        let typeId: number | null | undefined;
        if (typeCell === CLEAR) typeId = null;
        else if (typeCell) typeId = scope.typeFor(typeCell, scope.groupOf(device), "type").id;
        return {
          write: () => {
            this.deps.registry
              .embeddedRows()
              .editFields(device.id, { ...patch, ...(typeId !== undefined && { typeId }) });
          },
        };
      },
      hasFields,
    );
  }

  /** Moves the listed devices to one group (and optionally one type), keeping or dropping their history. */
  transfer(principal: Principal, csv: string, options: BulkRunOptions & BulkTransferQuery): Promise<BulkReport> {
    const scope = new RowScope(this.deps, principal);
    const target = scope.group(options.toGroup, "toGroup");
    // The target is the same for every row, so a target outside the caller's rights fails the request.
    this.deps.policy.require(principal, "devices:write", target.path);
    const toType = options.toType ? scope.typeFor(options.toType, target, "toType") : undefined;
    const dropHistory = options.history === "drop";
    return this.run("transfer", csv, ["uuid"], options, (record, result) => {
      const device = scope.device(record.cells.uuid ?? "", "uuid");
      result.uuid = device.uuid;
      let typeId = toType?.id ?? device.type_id;
      if (!toType && device.type_id !== null) {
        const current = scope.type(String(device.type_id), "type");
        if (!target.path.startsWith(current.groupPath)) {
          throw new FieldgateError(
            "VALIDATION_FAILED",
            `device type ${current.name} is not defined for the target group or its parents; pass --to-type`,
            "type",
          );
        }
        typeId = current.id;
      }
      return {
        write: () => {
          this.deps.registry.embeddedRows().move(device.id, { groupId: target.id, typeId });
          if (dropHistory) {
            for (const statement of this.statements.dropHistory) statement.run(device.id);
            this.deps.events.deleteHistory(device.id);
            this.deps.registry.embeddedRows().resetTelemetryCount(device.id);
          }
        },
      };
    });
  }

  /**
   * New hardware takes over old: the new uuid gets the old device's name, location, comment, tags,
   * group and type (and with keepHistory its telemetry, events and logs) and a fresh enrollment
   * window. The old device is retired: it stays in the registry (with its history unless moved),
   * its certificates are revoked so the broker refuses them, its live session is dropped, and it
   * cannot get a new enrollment window.
   */
  replace(principal: Principal, csv: string, options: BulkRunOptions & { keepHistory?: boolean }): Promise<BulkReport> {
    const scope = new RowScope(this.deps, principal);
    return this.run("replace", csv, ["old_uuid", "new_uuid"], options, (record, result) => {
      const { cells } = record;
      const newUuid = this.deps.validator.parse(Uuid, cells.new_uuid ?? "", "new_uuid").toLowerCase();
      const old = scope.device(cells.old_uuid ?? "", "old_uuid");
      result.uuid = newUuid;
      result.oldUuid = old.uuid;
      if (newUuid === old.uuid) throw new FieldgateError("VALIDATION_FAILED", "new_uuid equals old_uuid", "new_uuid");
      if (old.retired_at !== null) {
        throw new FieldgateError(
          "DEVICE_RETIRED",
          `${old.uuid} was already replaced by ${old.replaced_by}`,
          "old_uuid",
        );
      }
      this.requireFree(principal.orgId, newUuid, "new_uuid");
      const factoryPublicKey = cells.factory_public_key
        ? normalizeFactoryKey(cells.factory_public_key, "factory_public_key")
        : null;
      return {
        write: () => {
          const tags = JSON.parse(old.tags) as string[];
          const { token, expiresAt } = this.deps.registry.embeddedRows().insert(
            principal.orgId,
            {
              uuid: newUuid,
              name: old.name,
              location: old.location,
              comment: old.comment,
              tags,
              factoryPublicKey: factoryPublicKey ?? undefined,
            },
            { groupId: old.group_id, typeId: old.type_id },
            options.keepHistory ? old.telemetry_count : 0,
          );
          if (options.keepHistory) {
            const newId = (this.deps.registry.embeddedRows().findByUuid(newUuid) as DeviceRow).id;
            for (const statement of this.statements.moveHistory) statement.run(newId, old.id);
            this.deps.events.moveHistory(old.id, newId);
          }
          this.deps.registry.embeddedRows().retire(old.id, newUuid, { movedHistory: options.keepHistory === true });
          result.token = token;
          result.windowExpiresAt = new Date(expiresAt).toISOString();
        },
        afterCommit: () => this.deps.registry.notifyRevoked(old.uuid, "replaced"),
      };
    });
  }

  /** Deletes the listed devices with all their data; their live sessions are dropped. */
  delete(principal: Principal, csv: string, options: BulkRunOptions): Promise<BulkReport> {
    const scope = new RowScope(this.deps, principal);
    return this.run("delete", csv, ["uuid"], options, (record, result) => {
      const device = scope.device(record.cells.uuid ?? "", "uuid");
      result.uuid = device.uuid;
      return {
        write: () => {
          this.deps.registry.embeddedRows().remove(device);
        },
        afterCommit: () => this.deps.registry.notifyRevoked(device.uuid, "device deleted"),
      };
    });
  }

  /**
   * Parses the file, checks duplicates, validates each row and applies the valid ones per `mode`.
   * Atomic runs and dry runs are synchronous from validation to commit, so no other request can
   * change a row's premises in between; rows mode validates each row right before writing it.
   */
  private async run(
    operation: BulkOperation,
    csv: string,
    uuidColumns: readonly string[],
    options: BulkRunOptions,
    validate: RowValidator,
    headerCheck?: (columns: readonly string[]) => boolean,
  ): Promise<BulkReport> {
    const table = parseCsvTable(csv, BULK_COLUMNS[operation], MAX_BULK_ROWS);
    if (headerCheck && !headerCheck(table.columns)) {
      throw new FieldgateError("CSV_INVALID", "the header names no column to change besides uuid", "header");
    }
    const firstLine = new Map<string, number>();
    const prepare = (row: CsvRow): PreparedRow => {
      const result: BulkRowResult = { line: row.line, status: "ok" };
      if (row.kind === "problem") return { result: failRow(result, row.error) };
      // Name the row's device even when it fails before validation reads it.
      const named = row.cells[uuidColumns.at(-1) ?? "uuid"];
      if (named) result.uuid = named.toLowerCase();
      try {
        checkDuplicates(row, uuidColumns, firstLine);
        return { result, planned: validate(row, result) };
      } catch (err) {
        return { result: failRow(result, err) };
      }
    };

    let applied = false;
    let results: BulkRowResult[];
    if (options.dryRun || options.mode === "atomic") {
      const prepared = table.rows.map(prepare);
      results = prepared.map((p) => p.result);
      if (!options.dryRun && results.every((r) => r.status === "ok")) applied = this.applyAtomically(prepared);
    } else {
      results = [];
      for (let start = 0; start < table.rows.length; start += CHUNK_ROWS) {
        const chunk = table.rows.slice(start, start + CHUNK_ROWS);
        const done = this.db.transaction(() =>
          chunk.map((row) => {
            const p = prepare(row);
            if (p.planned) this.applyRow(p);
            return p;
          }),
        )();
        for (const p of done) if (p.result.status === "ok") p.planned?.afterCommit?.();
        results.push(...done.map((p) => p.result));
        // Let MQTT ingest and other requests run between chunks.
        if (start + CHUNK_ROWS < table.rows.length) await new Promise((resolve) => setImmediate(resolve));
      }
      applied = true;
    }
    const failed = results.filter((r) => r.status === "error").length;
    return {
      operation,
      dryRun: options.dryRun,
      mode: options.mode,
      applied,
      summary: { ok: results.length - failed, failed },
      rows: results,
    };
  }

  /** All rows in one transaction; a row whose write fails rolls back every row. */
  private applyAtomically(prepared: PreparedRow[]): boolean {
    let current: PreparedRow | undefined;
    try {
      this.db.transaction(() => {
        for (const p of prepared) {
          current = p;
          p.planned?.write();
        }
      })();
    } catch (err) {
      if (!current || !isRowError(err)) throw err;
      failRow(current.result, err);
      // Rolled back: the tokens handed out above were never stored.
      for (const p of prepared) {
        delete p.result.token;
        delete p.result.windowExpiresAt;
      }
      return false;
    }
    for (const p of prepared) p.planned?.afterCommit?.();
    return true;
  }

  private applyRow(p: PreparedRow): void {
    try {
      this.inSavepoint(() => p.planned?.write());
    } catch (err) {
      if (!isRowError(err)) throw err;
      failRow(p.result, err);
    }
  }

  private requireFree(orgId: number, uuid: string, field: string): void {
    const existing = this.deps.registry.embeddedRows().findByUuid(uuid);
    if (!existing) return;
    // Another tenant's device: say only that the uuid is taken elsewhere, as registry.create does.
    if (existing.org_id !== orgId)
      throw new FieldgateError("DEVICE_OWNED_ELSEWHERE", `uuid ${uuid} is registered to another organization`, field);
    throw new FieldgateError("DEVICE_EXISTS", `a device with uuid ${uuid} is already registered`, field);
  }

  /** Numbers after the highest `<prefix><n>` already in the organization. */
  private nameCounter(orgId: number, prefix: string): () => string {
    let highest = 0;
    for (const name of this.deps.registry.embeddedRows().namesStartingWith(orgId, prefix)) {
      const suffix = name.slice(prefix.length);
      if (/^\d{1,9}$/.test(suffix)) highest = Math.max(highest, Number(suffix));
    }
    return () => `${prefix}${++highest}`;
  }
}

/** The statements the bulk series run per row, prepared once. */
function prepareStatements(db: Database.Database) {
  return {
    // History is telemetry, events (moved by the event log) and logs. Sequence marks (telemetry_streams)
    // stay with the device they came from: they deduplicate that device's resends and must not block the new device's.
    moveHistory: ["telemetry", "device_logs"].map((table) =>
      db.prepare(`UPDATE ${table} SET device_id = ? WHERE device_id = ?`),
    ),
    dropHistory: ["telemetry", "device_logs", "rejected_messages"].map((table) =>
      db.prepare(`DELETE FROM ${table} WHERE device_id = ?`),
    ),
  };
}

/** Per-request lookups with caches: a 10,000-row file names a handful of groups and types. */
class RowScope {
  private readonly groupsByRef = new Map<string, GroupRow | FieldgateError>();
  private readonly groupsById = new Map<number, GroupRow>();
  private readonly typesByRef = new Map<string, DeviceTypeRecord | FieldgateError>();
  private readonly writable = new Map<string, boolean>();

  constructor(
    private readonly deps: BulkOperationsDeps,
    private readonly principal: Principal,
  ) {}

  group(ref: string, field: string): GroupRow {
    let found = this.groupsByRef.get(ref);
    if (!found) {
      found = attempt(() => this.deps.groups.resolve(this.principal.orgId, ref));
      this.groupsByRef.set(ref, found);
    }
    if (found instanceof FieldgateError) throw withField(found, field);
    // A group the caller may not see reads like one that does not exist.
    if (!this.deps.policy.sees(this.principal, "devices:read", found.path, "scope-and-above"))
      throw withField(groupNotFound(ref), field);
    return found;
  }

  groupOf(device: DeviceRow): GroupRow {
    let group = this.groupsById.get(device.group_id);
    if (!group) {
      group = this.deps.groups.get(this.principal.orgId, device.group_id);
      this.groupsById.set(device.group_id, group);
    }
    return group;
  }

  /** The caller's own group, where a credential scoped to a group adds devices by default. */
  defaultGroup(): GroupRow {
    const [scope] = this.deps.policy.scopes(this.principal, "devices:write");
    if (!scope) throw new FieldgateError("FORBIDDEN", "this credential lacks devices:write everywhere");
    return this.group(String(Number(scope.split("/").filter(Boolean).pop())), "group");
  }

  requireWritable(group: GroupRow, field: string): void {
    let allowed = this.writable.get(group.path);
    if (allowed === undefined) {
      allowed = this.deps.policy.can(this.principal, "devices:write", group.path);
      this.writable.set(group.path, allowed);
    }
    if (!allowed) {
      const name = this.deps.groups.fullName(this.principal.orgId, group.path);
      throw new FieldgateError("FORBIDDEN", `this credential lacks devices:write on group ${name}`, field);
    }
  }

  /** A device of the caller's organization in a group the caller may write; others are not found. */
  device(uuid: string, field: string): DeviceRow {
    this.deps.validator.parse(Uuid, uuid, field);
    const row = this.deps.registry.embeddedRows().findByUuid(uuid);
    if (!row || row.org_id !== this.principal.orgId) throw deviceNotFound(uuid, field);
    const group = this.groupOf(row);
    // Outside what the caller may read, a device reads like one that does not exist.
    if (!this.deps.policy.sees(this.principal, "devices:read", group.path)) throw deviceNotFound(uuid, field);
    this.requireWritable(group, field);
    return row;
  }

  type(ref: string, field: string): DeviceTypeRecord {
    let found = this.typesByRef.get(ref);
    if (!found) {
      found = attempt(() => this.deps.types.resolve(this.principal.orgId, ref));
      this.typesByRef.set(ref, found);
    }
    if (found instanceof FieldgateError) throw withField(found, field);
    return found;
  }

  /** A type may be used by devices in its own group and the groups below it, as in device-routes. */
  typeFor(ref: string, group: GroupRow, field: string): DeviceTypeRecord {
    const found = this.type(ref, field);
    if (!group.path.startsWith(found.groupPath)) {
      if (!this.deps.policy.sees(this.principal, "types:read", found.groupPath, "scope-and-above"))
        throw withField(typeNotFound(ref), field);
      throw new FieldgateError(
        "VALIDATION_FAILED",
        `device type ${found.name} is not defined for group ${this.deps.groups.fullName(this.principal.orgId, group.path)} or its parents`,
        field,
      );
    }
    return found;
  }
}

/** Tags in one cell, separated by `;` or spaces. */
function splitTags(cell: string): string[] {
  return cell.split(/[;\s]+/).filter(Boolean);
}

function checkDuplicates(record: CsvRecord, columns: readonly string[], firstLine: Map<string, number>): void {
  const values = columns.map((c) => [c, record.cells[c]?.toLowerCase() ?? ""] as const).filter(([, v]) => v !== "");
  for (const [column, value] of values) {
    const seen = firstLine.get(value);
    if (seen !== undefined && seen !== record.line) {
      throw new FieldgateError("CSV_DUPLICATE_UUID", `uuid ${value} already appears on line ${seen}`, column);
    }
  }
  for (const [, value] of values) if (!firstLine.has(value)) firstLine.set(value, record.line);
}

function failRow(result: BulkRowResult, err: unknown): BulkRowResult {
  const error = err instanceof FieldgateError ? err : asRowError(err);
  result.status = "error";
  result.code = error.code;
  result.message = error.message;
  if (error.field !== undefined) result.field = error.field;
  return result;
}

/** Errors that belong to one row: coded errors, and a uuid taken by a concurrent request. */
function isRowError(err: unknown): boolean {
  return err instanceof FieldgateError || (err as { code?: string }).code === "SQLITE_CONSTRAINT_UNIQUE";
}

function asRowError(err: unknown): FieldgateError {
  if ((err as { code?: string }).code === "SQLITE_CONSTRAINT_UNIQUE")
    return new FieldgateError("DEVICE_EXISTS", "the uuid was registered meanwhile", "uuid");
  throw err;
}

function attempt<T>(fn: () => T): T | FieldgateError {
  try {
    return fn();
  } catch (err) {
    if (err instanceof FieldgateError) return err;
    throw err;
  }
}

function withField(error: FieldgateError, field: string): FieldgateError {
  return new FieldgateError(error.code, error.message, field);
}

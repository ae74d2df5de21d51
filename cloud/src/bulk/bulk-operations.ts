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
import type { ControlledTransaction, Kysely } from "kysely";
import type { AccessPolicy, Principal } from "../access/access-policy.js";
import { type DeviceTypeRecord, type DeviceTypes, typeNotFound } from "../device-types/device-types.js";
import { type GroupRow, type GroupTree, groupNotFound } from "../groups/group-tree.js";
import { type DeviceRegistry, type DeviceRow, deviceNotFound } from "../registry/device-registry.js";
import { type CloudDatabase, type Executor, isUniqueViolation } from "../storage/cloud-database.js";
import { type CsvColumns, type CsvRecord, type CsvRow, parseCsvTable } from "./csv-table.js";
import { normalizeFactoryKey } from "./factory-key.js";

export interface BulkOperationsDeps {
  database: CloudDatabase;
  registry: DeviceRegistry;
  /**
   * The owners of a device's history (telemetry, events, logs, refused messages): a replacement
   * keeping the history moves it with `moveHistory` where the owner offers it, a move dropping the
   * history deletes it; each in the run's transaction.
   */
  histories: readonly DeviceHistoryOwner[];
  groups: GroupTree;
  types: DeviceTypes;
  policy: AccessPolicy;
  validator: SchemaValidator;
  /** The enrollment window each imported or replacing device gets, as `registry.create` opens. */
  windowMs: number;
}

/** A store that keeps rows per device which follow the device on replace, or go on a transfer. */
export interface DeviceHistoryOwner {
  moveHistory?(fromDeviceId: number, toDeviceId: number, executor: Executor): Promise<void>;
  deleteHistory(deviceId: number, executor: Executor): Promise<void>;
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

/** What a validated row will write (in the run's transaction), and what must happen once that write is committed. */
interface RowWrite {
  write: (trx: Executor) => Promise<void>;
  afterCommit?: () => void;
}

/** Checks a row, reading in the run's transaction, and plans its write; throws the row's error. */
type RowValidator = (record: CsvRecord, result: BulkRowResult, trx: Executor) => Promise<RowWrite>;

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
  // Bulk owns no table: its transactions carry the writes of the stores it calls.
  private readonly db: Kysely<object>;

  constructor(private readonly deps: BulkOperationsDeps) {
    this.db = deps.database.kysely;
  }

  /** New devices, each with its own enrollment window; the tokens are in the report, once. */
  async import(principal: Principal, csv: string, options: BulkRunOptions & BulkImportQuery): Promise<BulkReport> {
    const scope = new RowScope(this.deps, principal);
    const nextName = options.namePrefix ? await this.nameCounter(principal.orgId, options.namePrefix) : undefined;
    return this.run("import", csv, ["uuid"], options, async (record, result, trx) => {
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
      await this.requireFree(principal.orgId, uuid, "uuid", trx);
      const groupRef = cells.group || options.group;
      const group = groupRef ? await scope.group(groupRef, "group", trx) : await scope.defaultGroup(trx);
      await scope.requireWritable(group, "group", trx);
      const typeRef = cells.type || options.type;
      const type = typeRef ? await scope.typeFor(typeRef, group, "type", trx) : undefined;
      const name = body.name ?? nextName?.() ?? "";
      if (name) result.name = name;
      return {
        write: async (trx) => {
          const { token, expiresAt } = await this.deps.registry.insert(
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
            0,
            trx,
          );
          result.token = token;
          result.windowExpiresAt = new Date(expiresAt).toISOString();
        },
      };
    });
  }

  /** Sets name, location, comment, tags and type by uuid; an empty cell keeps the value, `-` clears it. */
  async edit(principal: Principal, csv: string, options: BulkRunOptions): Promise<BulkReport> {
    const scope = new RowScope(this.deps, principal);
    const hasFields = (columns: readonly string[]) => columns.some((c) => c !== "uuid");
    return this.run(
      "edit",
      csv,
      ["uuid"],
      options,
      async (record, result, trx) => {
        const { cells } = record;
        const device = await scope.device(cells.uuid ?? "", "uuid", trx);
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
        else if (typeCell) typeId = (await scope.typeFor(typeCell, await scope.groupOf(device, trx), "type", trx)).id;
        return {
          write: async (trx) => {
            await this.deps.registry.editFields(device.id, { ...patch, ...(typeId !== undefined && { typeId }) }, trx);
          },
        };
      },
      hasFields,
    );
  }

  /** Moves the listed devices to one group (and optionally one type), keeping or dropping their history. */
  async transfer(principal: Principal, csv: string, options: BulkRunOptions & BulkTransferQuery): Promise<BulkReport> {
    const scope = new RowScope(this.deps, principal);
    const target = await scope.group(options.toGroup, "toGroup");
    // The target is the same for every row, so a target outside the caller's rights fails the request.
    this.deps.policy.require(principal, "devices:write", target.path);
    const toType = options.toType ? await scope.typeFor(options.toType, target, "toType") : undefined;
    const dropHistory = options.history === "drop";
    return this.run("transfer", csv, ["uuid"], options, async (record, result, trx) => {
      const device = await scope.device(record.cells.uuid ?? "", "uuid", trx);
      result.uuid = device.uuid;
      let typeId = toType?.id ?? device.type_id;
      if (!toType && device.type_id !== null) {
        const current = await scope.type(String(device.type_id), "type", trx);
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
        write: async (trx) => {
          await this.deps.registry.move(device.id, { groupId: target.id, typeId }, trx);
          if (dropHistory) {
            for (const owner of this.deps.histories) await owner.deleteHistory(device.id, trx);
            await this.deps.registry.resetTelemetryCount(device.id, trx);
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
  async replace(
    principal: Principal,
    csv: string,
    options: BulkRunOptions & { keepHistory?: boolean },
  ): Promise<BulkReport> {
    const scope = new RowScope(this.deps, principal);
    return this.run("replace", csv, ["old_uuid", "new_uuid"], options, async (record, result, trx) => {
      const { cells } = record;
      const newUuid = this.deps.validator.parse(Uuid, cells.new_uuid ?? "", "new_uuid").toLowerCase();
      const old = await scope.device(cells.old_uuid ?? "", "old_uuid", trx);
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
      await this.requireFree(principal.orgId, newUuid, "new_uuid", trx);
      const factoryPublicKey = cells.factory_public_key
        ? normalizeFactoryKey(cells.factory_public_key, "factory_public_key")
        : null;
      return {
        write: async (trx) => {
          const tags = JSON.parse(old.tags) as string[];
          const { token, expiresAt } = await this.deps.registry.insert(
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
            trx,
          );
          if (options.keepHistory) {
            const newId = ((await this.deps.registry.findByUuid(newUuid, trx)) as DeviceRow).id;
            for (const owner of this.deps.histories) await owner.moveHistory?.(old.id, newId, trx);
          }
          await this.deps.registry.retire(old.id, newUuid, { movedHistory: options.keepHistory === true }, trx);
          result.token = token;
          result.windowExpiresAt = new Date(expiresAt).toISOString();
        },
        afterCommit: () => this.deps.registry.notifyRevoked(old.uuid, "replaced"),
      };
    });
  }

  /** Deletes the listed devices with all their data; their live sessions are dropped. */
  async delete(principal: Principal, csv: string, options: BulkRunOptions): Promise<BulkReport> {
    const scope = new RowScope(this.deps, principal);
    return this.run("delete", csv, ["uuid"], options, async (record, result, trx) => {
      const device = await scope.device(record.cells.uuid ?? "", "uuid", trx);
      result.uuid = device.uuid;
      return {
        write: async (trx) => {
          await this.deps.registry.remove(device, trx);
        },
        afterCommit: () => this.deps.registry.notifyRevoked(device.uuid, "device deleted"),
      };
    });
  }

  /**
   * Parses the file, checks duplicates, validates each row and applies the valid ones per `mode`.
   * Atomic runs and dry runs validate and write in one transaction, so the rows' premises are read
   * where they are written; rows mode validates each row right before writing it, in its chunk's.
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
    const prepare = async (row: CsvRow, trx: Executor): Promise<PreparedRow> => {
      const result: BulkRowResult = { line: row.line, status: "ok" };
      if (row.kind === "problem") return { result: failRow(result, row.error) };
      // Name the row's device even when it fails before validation reads it.
      const named = row.cells[uuidColumns.at(-1) ?? "uuid"];
      if (named) result.uuid = named.toLowerCase();
      try {
        checkDuplicates(row, uuidColumns, firstLine);
        return { result, planned: await validate(row, result, trx) };
      } catch (err) {
        return { result: failRow(result, err) };
      }
    };

    let applied = false;
    let results: BulkRowResult[];
    if (options.dryRun || options.mode === "atomic") {
      const trx = await this.db.startTransaction().execute();
      let prepared: PreparedRow[];
      try {
        prepared = [];
        for (const row of table.rows) prepared.push(await prepare(row, trx));
        results = prepared.map((p) => p.result);
        if (!options.dryRun && results.every((r) => r.status === "ok"))
          applied = await this.applyAtomically(trx, prepared);
        // A dry run wrote nothing; ending it by rollback keeps that true whatever validation touched.
        if (applied) await trx.commit().execute();
        else await trx.rollback().execute();
      } catch (err) {
        await trx.rollback().execute();
        throw err;
      }
      if (applied) for (const p of prepared) p.planned?.afterCommit?.();
      else clearTokens(prepared);
    } else {
      results = [];
      for (let start = 0; start < table.rows.length; start += CHUNK_ROWS) {
        const chunk = table.rows.slice(start, start + CHUNK_ROWS);
        const trx = await this.db.startTransaction().execute();
        const done: PreparedRow[] = [];
        try {
          for (const row of chunk) {
            const p = await prepare(row, trx);
            if (p.planned) await this.applyRow(trx, p);
            done.push(p);
          }
          await trx.commit().execute();
        } catch (err) {
          await trx.rollback().execute();
          throw err;
        }
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

  /** Writes every row in `trx`; false (the caller rolls back) when a row's write fails. */
  private async applyAtomically(trx: Executor, prepared: PreparedRow[]): Promise<boolean> {
    for (const p of prepared) {
      try {
        await p.planned?.write(trx);
      } catch (err) {
        if (!isRowError(err)) throw err;
        failRow(p.result, err);
        return false;
      }
    }
    return true;
  }

  /** One row's writes in a savepoint: all of them, or (a row error) none, the chunk going on. */
  private async applyRow(trx: ChunkTransaction, p: PreparedRow): Promise<void> {
    const row = await trx.savepoint("bulk_row").execute();
    try {
      await p.planned?.write(row);
    } catch (err) {
      if (!isRowError(err)) throw err;
      await row.rollbackToSavepoint("bulk_row").execute();
      failRow(p.result, err);
      // The row wrote nothing, so its one-time token was never stored.
      delete p.result.token;
      delete p.result.windowExpiresAt;
      return;
    }
    await row.releaseSavepoint("bulk_row").execute();
  }

  private async requireFree(orgId: number, uuid: string, field: string, trx: Executor): Promise<void> {
    const existing = await this.deps.registry.findByUuid(uuid, trx);
    if (!existing) return;
    // Another tenant's device: say only that the uuid is taken elsewhere, as registry.create does.
    if (existing.org_id !== orgId)
      throw new FieldgateError("DEVICE_OWNED_ELSEWHERE", `uuid ${uuid} is registered to another organization`, field);
    throw new FieldgateError("DEVICE_EXISTS", `a device with uuid ${uuid} is already registered`, field);
  }

  /** Numbers after the highest `<prefix><n>` already in the organization. */
  private async nameCounter(orgId: number, prefix: string): Promise<() => string> {
    let highest = 0;
    for (const name of await this.deps.registry.namesStartingWith(orgId, prefix)) {
      const suffix = name.slice(prefix.length);
      if (/^\d{1,9}$/.test(suffix)) highest = Math.max(highest, Number(suffix));
    }
    return () => `${prefix}${++highest}`;
  }
}

/** A chunk's transaction, which per-row savepoints need. */
// biome-ignore lint/suspicious/noExplicitAny: the rows' writes cross owners, as Executor does.
type ChunkTransaction = ControlledTransaction<any>;

/** A run that was rolled back stored none of the tokens its rows were handed. */
function clearTokens(prepared: readonly PreparedRow[]): void {
  for (const p of prepared) {
    delete p.result.token;
    delete p.result.windowExpiresAt;
  }
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

  /** `trx`: the run's transaction, when the lookup happens inside it. */
  async group(ref: string, field: string, trx?: Executor): Promise<GroupRow> {
    let found = this.groupsByRef.get(ref);
    if (!found) {
      found = await attempt(() => this.deps.groups.resolve(this.principal.orgId, ref, trx));
      this.groupsByRef.set(ref, found);
    }
    if (found instanceof FieldgateError) throw withField(found, field);
    // A group the caller may not see reads like one that does not exist.
    if (!this.deps.policy.sees(this.principal, "devices:read", found.path, "scope-and-above"))
      throw withField(groupNotFound(ref), field);
    return found;
  }

  async groupOf(device: DeviceRow, trx: Executor): Promise<GroupRow> {
    let group = this.groupsById.get(device.group_id);
    if (!group) {
      group = await this.deps.groups.get(this.principal.orgId, device.group_id, trx);
      this.groupsById.set(device.group_id, group);
    }
    return group;
  }

  /** The caller's own group, where a credential scoped to a group adds devices by default. */
  defaultGroup(trx: Executor): Promise<GroupRow> {
    const [scope] = this.deps.policy.scopes(this.principal, "devices:write");
    if (!scope) throw new FieldgateError("FORBIDDEN", "this credential lacks devices:write everywhere");
    return this.group(String(Number(scope.split("/").filter(Boolean).pop())), "group", trx);
  }

  async requireWritable(group: GroupRow, field: string, trx: Executor): Promise<void> {
    let allowed = this.writable.get(group.path);
    if (allowed === undefined) {
      allowed = this.deps.policy.can(this.principal, "devices:write", group.path);
      this.writable.set(group.path, allowed);
    }
    if (!allowed) {
      const name = await this.deps.groups.fullName(this.principal.orgId, group.path, trx);
      throw new FieldgateError("FORBIDDEN", `this credential lacks devices:write on group ${name}`, field);
    }
  }

  /** A device of the caller's organization in a group the caller may write; others are not found. */
  async device(uuid: string, field: string, trx: Executor): Promise<DeviceRow> {
    this.deps.validator.parse(Uuid, uuid, field);
    const row = await this.deps.registry.findByUuid(uuid, trx);
    if (!row || row.org_id !== this.principal.orgId) throw deviceNotFound(uuid, field);
    const group = await this.groupOf(row, trx);
    // Outside what the caller may read, a device reads like one that does not exist.
    if (!this.deps.policy.sees(this.principal, "devices:read", group.path)) throw deviceNotFound(uuid, field);
    await this.requireWritable(group, field, trx);
    return row;
  }

  async type(ref: string, field: string, trx?: Executor): Promise<DeviceTypeRecord> {
    let found = this.typesByRef.get(ref);
    if (!found) {
      found = await attempt(() => this.deps.types.resolve(this.principal.orgId, ref, trx));
      this.typesByRef.set(ref, found);
    }
    if (found instanceof FieldgateError) throw withField(found, field);
    return found;
  }

  /** A type may be used by devices in its own group and the groups below it, as in device-routes. */
  async typeFor(ref: string, group: GroupRow, field: string, trx?: Executor): Promise<DeviceTypeRecord> {
    const found = await this.type(ref, field, trx);
    if (!group.path.startsWith(found.groupPath)) {
      if (!this.deps.policy.sees(this.principal, "types:read", found.groupPath, "scope-and-above"))
        throw withField(typeNotFound(ref), field);
      const name = await this.deps.groups.fullName(this.principal.orgId, group.path, trx);
      throw new FieldgateError(
        "VALIDATION_FAILED",
        `device type ${found.name} is not defined for group ${name} or its parents`,
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
  return err instanceof FieldgateError || isUniqueViolation(err);
}

function asRowError(err: unknown): FieldgateError {
  if (isUniqueViolation(err)) return new FieldgateError("DEVICE_EXISTS", "the uuid was registered meanwhile", "uuid");
  throw err;
}

async function attempt<T>(fn: () => T | Promise<T>): Promise<T | FieldgateError> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof FieldgateError) return err;
    throw err;
  }
}

function withField(error: FieldgateError, field: string): FieldgateError {
  return new FieldgateError(error.code, error.message, field);
}

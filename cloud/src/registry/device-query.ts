import { DEVICE_SORT_COLUMNS, FieldgateError, type HealthStatus } from "@fieldgate/shared";
import { type RawBuilder, sql } from "kysely";
import { subtreeEnd } from "../access/access-policy.js";
import type { SqlDialect } from "../storage/cloud-database.js";
import { NATURAL_SORT_FUNCTION } from "../storage/natural-sort.js";
import { currentCertificateNotAfterSql } from "./certificate-store.js";

/** A value bound to an SQL placeholder. */
export type SqlValue = string | number | null;

/** SQL text with its parameters; user input only ever travels in `params`. */
export interface SqlStatement {
  sql: string;
  params: SqlValue[];
}

/** An access condition on `g.path`, as `AccessPolicy.sqlScope(…, "g.path")` makes it. */
export interface SqlScope {
  clause: string;
  params: string[];
}

export type DeviceSortColumn = (typeof DEVICE_SORT_COLUMNS)[number];

/** Device filters, already resolved (group to its row, times to milliseconds). */
export interface DeviceFilters {
  /** uuid or its beginning, any case. */
  uuid?: string;
  name?: string;
  location?: string;
  /** Every tag listed must be present. */
  tags?: readonly string[];
  /** Type id (a number) or name (a string). */
  type?: number | string;
  group?: { id: number; path: string; includeSubgroups: boolean };
  status?: HealthStatus;
  online?: boolean;
  lastSeenFrom?: number;
  lastSeenTo?: number;
  firmwareVersion?: string;
  /** true: only retired devices; otherwise only active ones. */
  retired?: boolean;
  q?: string;
  /** A column of DEVICE_SORT_COLUMNS, "-" prefixed for descending. Default: createdAt. */
  sort?: string;
}

/** Where the previous page of a keyset walk ended: its last row's sort key and id. */
export interface DeviceCursor {
  key: SqlValue;
  id: number;
}

/** The statements of one device query. Rows carry `d.*`, `group_path`, `type_name`, `certificate_not_after`, `sort_key`. */
export interface DeviceQuery {
  count: SqlStatement;
  /** The rows in order; append `LIMIT ? OFFSET ?`. */
  select: SqlStatement;
  /** The next `limit` rows after `cursor` (keyset paging: stable and O(page) however deep the walk). */
  page(cursor: DeviceCursor | undefined, limit: number): SqlStatement;
}

/**
 * The sort whitelist: API column → SQL expression. Nullable columns are coalesced so a keyset
 * cursor can compare them; text columns a person reads sort naturally (meter-9 before meter-10)
 * and without regard to case, through the function every connection registers.
 */
const SORT_EXPRESSIONS: Readonly<Record<DeviceSortColumn, string>> = {
  uuid: "d.uuid",
  name: `${NATURAL_SORT_FUNCTION}(d.name)`,
  location: `${NATURAL_SORT_FUNCTION}(d.location)`,
  group: "g.path",
  type: `${NATURAL_SORT_FUNCTION}(coalesce(t.name, ''))`,
  // Worst first when descending, like the health colours.
  status: "(CASE d.health WHEN 'critical' THEN 3 WHEN 'warning' THEN 2 WHEN 'ok' THEN 1 ELSE 0 END)",
  online: "d.online",
  lastSeen: "coalesce(d.last_seen, -1)",
  firmwareVersion: "coalesce(d.firmware_version, '')",
  createdAt: "d.created_at",
};

const FROM = `FROM devices d JOIN groups g ON g.id = d.group_id LEFT JOIN device_types t ON t.id = d.type_id`;

/** "The device's tags (a JSON array of strings) include ?", in each dialect. */
const HAS_TAG: Readonly<Record<SqlDialect, string>> = {
  sqlite: "EXISTS (SELECT 1 FROM json_each(d.tags) WHERE value = ?)",
  postgres: "EXISTS (SELECT 1 FROM jsonb_array_elements_text(d.tags::jsonb) AS tag(value) WHERE tag.value = ?)",
};

/** Substring pattern for LIKE, with the user's own wildcards made literal. */
export function likePattern(text: string): string {
  return `%${text.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/**
 * Builds the device list query of one organization: always inside the caller's access scope,
 * then every given filter. A pure function; values are bound, never spliced into the SQL.
 * Case-insensitive matches compare `lower()` on both sides, so they mean the same on both backends
 * (PostgreSQL's LIKE is case-sensitive) and use the `lower(name)`/`lower(location)` indexes there.
 */
export function buildDeviceQuery(
  orgId: number,
  scope: SqlScope,
  filters: DeviceFilters,
  dialect: SqlDialect = "sqlite",
): DeviceQuery {
  const where: string[] = ["d.org_id = ?", scope.clause];
  const params: SqlValue[] = [orgId, ...scope.params];
  const add = (clause: string, ...values: SqlValue[]) => {
    where.push(clause);
    params.push(...values);
  };

  if (filters.uuid !== undefined) {
    // uuids are stored lower-case in [0-9a-f-]; "~" sorts after all of them, so this range is the prefix.
    const prefix = filters.uuid.toLowerCase();
    add("d.uuid >= ? AND d.uuid < ?", prefix, `${prefix}~`);
  }
  if (filters.name !== undefined) add("lower(d.name) LIKE ? ESCAPE '\\'", likePattern(filters.name));
  if (filters.location !== undefined) add("lower(d.location) LIKE ? ESCAPE '\\'", likePattern(filters.location));
  for (const tag of filters.tags ?? []) add(HAS_TAG[dialect], tag);
  if (typeof filters.type === "number") add("d.type_id = ?", filters.type);
  else if (filters.type !== undefined)
    add("d.type_id IN (SELECT id FROM device_types WHERE org_id = ? AND name = ?)", orgId, filters.type);
  if (filters.group) {
    if (filters.group.includeSubgroups)
      add("g.path >= ? AND g.path < ?", filters.group.path, subtreeEnd(filters.group.path));
    else add("d.group_id = ?", filters.group.id);
  }
  if (filters.status !== undefined) add("d.health = ?", filters.status);
  if (filters.online !== undefined) add("d.online = ?", filters.online ? 1 : 0);
  // A device never seen has no last_seen and so matches neither bound.
  if (filters.lastSeenFrom !== undefined) add("d.last_seen >= ?", filters.lastSeenFrom);
  if (filters.lastSeenTo !== undefined) add("d.last_seen < ?", filters.lastSeenTo);
  if (filters.firmwareVersion !== undefined) add("d.firmware_version = ?", filters.firmwareVersion);
  add(filters.retired ? "d.retired_at IS NOT NULL" : "d.retired_at IS NULL");
  if (filters.q) {
    const like = likePattern(filters.q);
    add(
      `(${["d.uuid", "d.name", "d.location", "d.comment", "d.tags"].map((c) => `lower(${c}) LIKE ? ESCAPE '\\'`).join(" OR ")})`,
      like,
      like,
      like,
      like,
      like,
    );
  }

  const { expression, descending } = sortOf(filters.sort);
  const direction = descending ? "DESC" : "ASC";
  const orderBy = `ORDER BY ${expression} ${direction}, d.id ${direction}`;
  const columns = `d.*, g.path AS group_path, t.name AS type_name, ${currentCertificateNotAfterSql(dialect)} AS certificate_not_after, ${expression} AS sort_key`;
  const condition = where.map((w) => `(${w})`).join(" AND ");
  return {
    count: { sql: `SELECT count(*) AS n ${FROM} WHERE ${condition}`, params: [...params] },
    select: { sql: `SELECT ${columns} ${FROM} WHERE ${condition} ${orderBy}`, params: [...params] },
    page(cursor, limit) {
      if (!cursor)
        return { sql: `SELECT ${columns} ${FROM} WHERE ${condition} ${orderBy} LIMIT ?`, params: [...params, limit] };
      const cmp = descending ? "<" : ">";
      return {
        sql: `SELECT ${columns} ${FROM} WHERE ${condition} AND (${expression} ${cmp} ? OR (${expression} = ? AND d.id ${cmp} ?)) ${orderBy} LIMIT ?`,
        params: [...params, cursor.key, cursor.key, cursor.id, limit],
      };
    },
  };
}

/** Looks the sort up in the whitelist; nothing else ever reaches the SQL. */
function sortOf(sort: string | undefined): { expression: string; descending: boolean } {
  const descending = sort?.startsWith("-") ?? false;
  const column = (descending ? sort?.slice(1) : sort) ?? "createdAt";
  if (!Object.hasOwn(SORT_EXPRESSIONS, column))
    throw new FieldgateError(
      "VALIDATION_FAILED",
      `sort must be one of ${DEVICE_SORT_COLUMNS.join(", ")}, optionally prefixed with -`,
      "sort",
    );
  return { expression: SORT_EXPRESSIONS[column as DeviceSortColumn], descending };
}

/** A statement of this module as a Kysely query, its `?` placeholders bound in the executor's dialect. */
export function asKyselySql<Row>(statement: SqlStatement): RawBuilder<Row> {
  const fragments = statement.sql.split("?");
  return sql<Row>(Object.assign(fragments, { raw: fragments }), ...statement.params);
}

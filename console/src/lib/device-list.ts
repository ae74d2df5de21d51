import type { Device } from "@fieldgate/shared";
import type { Query } from "./api";
import { formatTime } from "./format";

/**
 * The device list's state, kept in the URL query so a reload or a shared link shows the same
 * list: the filters (named as the API's ListDevicesQuery), the sort, the page and the columns.
 */
export interface DeviceListState {
  q: string;
  uuid: string;
  name: string;
  location: string;
  tags: string[];
  type: string;
  group: string;
  includeSubgroups: boolean;
  status: string;
  /** "", "true" or "false". */
  online: string;
  /** ISO times. */
  lastSeenFrom: string;
  lastSeenTo: string;
  firmwareVersion: string;
  retired: boolean;
  /** A sortable column id, "-" prefixed for descending; "" is the API's default (newest first). */
  sort: string;
  offset: number;
  limit: number;
  columns: ColumnId[];
}

export const PAGE_SIZES = [25, 50, 100] as const;
export const MAX_COLUMNS = 8;

export type ColumnId =
  | "status"
  | "name"
  | "uuid"
  | "group"
  | "type"
  | "tags"
  | "location"
  | "lastSeen"
  | "firmwareVersion"
  | "certificateExpiry"
  | "online"
  | "comment"
  | "createdAt";

export interface Column {
  id: ColumnId;
  label: string;
  /** The API's sort column (DEVICE_SORT_COLUMNS), when it sorts by this one. */
  sort?: string;
  /** The text shown in a cell and written to the CSV. */
  text(device: Device): string;
  /** A time column: the cell shows local time, the CSV the ISO time. */
  time?(device: Device): string | null;
}

/** What the health badge says, as words: the CSV's status column. */
export function statusText(device: Device): string {
  const words: Record<string, string> = { ok: "OK", warning: "Warning", critical: "Critical" };
  const word = words[device.health ?? ""] ?? "Unknown";
  if (!device.lastSeen && !device.online) return "Never connected";
  return device.online ? word : `Offline (last: ${word})`;
}

export const COLUMNS: readonly Column[] = [
  { id: "status", label: "Status", sort: "status", text: statusText },
  { id: "name", label: "Name", sort: "name", text: (d) => d.name },
  { id: "uuid", label: "UUID", sort: "uuid", text: (d) => d.uuid },
  { id: "group", label: "Group", sort: "group", text: (d) => d.group.fullName },
  { id: "type", label: "Type", sort: "type", text: (d) => d.type?.name ?? "" },
  { id: "tags", label: "Tags", text: (d) => d.tags.join(" ") },
  { id: "location", label: "Location", sort: "location", text: (d) => d.location },
  {
    id: "lastSeen",
    label: "Last seen",
    sort: "lastSeen",
    text: (d) => formatTime(d.lastSeen),
    time: (d) => d.lastSeen,
  },
  { id: "firmwareVersion", label: "Firmware", sort: "firmwareVersion", text: (d) => d.firmwareVersion ?? "" },
  {
    id: "certificateExpiry",
    label: "Certificate expiry",
    text: (d) => (d.certificate ? formatTime(d.certificate.notAfter) : ""),
    time: (d) => d.certificate?.notAfter ?? null,
  },
  { id: "online", label: "Online", sort: "online", text: (d) => (d.online ? "online" : "offline") },
  { id: "comment", label: "Comment", text: (d) => d.comment },
  {
    id: "createdAt",
    label: "Added",
    sort: "createdAt",
    text: (d) => formatTime(d.createdAt),
    time: (d) => d.createdAt,
  },
];

export const DEFAULT_COLUMNS: ColumnId[] = [
  "status",
  "name",
  "uuid",
  "group",
  "type",
  "tags",
  "lastSeen",
  "firmwareVersion",
];

const COLUMN_IDS = new Set<string>(COLUMNS.map((c) => c.id));

export function columnOf(id: ColumnId): Column {
  return COLUMNS.find((c) => c.id === id) as Column;
}

/** The state a URL query describes; unknown or malformed values fall back to the defaults. */
export function stateFromSearch(search: string): DeviceListState {
  const p = new URLSearchParams(search);
  const text = (key: string) => p.get(key) ?? "";
  const int = (key: string, fallback: number) => {
    const n = Number(p.get(key));
    return Number.isInteger(n) && n >= 0 && p.get(key) !== null ? n : fallback;
  };
  const limit = int("limit", PAGE_SIZES[0]);
  const columns = (p.get("cols") ?? "")
    .split(",")
    .filter((c, i, all) => COLUMN_IDS.has(c) && all.indexOf(c) === i)
    .slice(0, MAX_COLUMNS) as ColumnId[];
  return {
    q: text("q"),
    uuid: text("uuid"),
    name: text("name"),
    location: text("location"),
    tags: p.getAll("tag").filter(Boolean),
    type: text("type"),
    group: text("group"),
    includeSubgroups: p.get("includeSubgroups") === "true",
    status: text("status"),
    online: p.get("online") === "true" || p.get("online") === "false" ? text("online") : "",
    lastSeenFrom: text("lastSeenFrom"),
    lastSeenTo: text("lastSeenTo"),
    firmwareVersion: text("firmwareVersion"),
    retired: p.get("retired") === "true",
    sort: text("sort"),
    offset: int("offset", 0),
    limit: (PAGE_SIZES as readonly number[]).includes(limit) ? limit : PAGE_SIZES[0],
    columns: columns.length > 0 ? columns : [...DEFAULT_COLUMNS],
  };
}

/** The URL query of a state: only what differs from the defaults, so links stay short. */
export function searchOf(state: DeviceListState): string {
  const p = new URLSearchParams();
  const set = (key: string, value: string | boolean | number, skip: string | boolean | number) => {
    if (value !== skip) p.set(key, String(value));
  };
  set("q", state.q, "");
  set("uuid", state.uuid, "");
  set("name", state.name, "");
  set("location", state.location, "");
  for (const tag of state.tags) p.append("tag", tag);
  set("type", state.type, "");
  set("group", state.group, "");
  if (state.group) set("includeSubgroups", state.includeSubgroups, false);
  set("status", state.status, "");
  set("online", state.online, "");
  set("lastSeenFrom", state.lastSeenFrom, "");
  set("lastSeenTo", state.lastSeenTo, "");
  set("firmwareVersion", state.firmwareVersion, "");
  set("retired", state.retired, false);
  set("sort", state.sort, "");
  set("offset", state.offset, 0);
  set("limit", state.limit, PAGE_SIZES[0]);
  const cols = state.columns.join(",");
  if (cols !== DEFAULT_COLUMNS.join(",")) p.set("cols", cols);
  const text = p.toString();
  return text ? `?${text}` : "";
}

/** The API query (GET /api/v1/devices) of the state's filters and sort, without paging. */
export function apiQueryOf(state: DeviceListState): Query {
  const group = state.group ? Number(state.group) || state.group : undefined;
  return {
    q: state.q.trim() || undefined,
    uuid: state.uuid.trim() || undefined,
    name: state.name.trim() || undefined,
    location: state.location.trim() || undefined,
    tag: state.tags.length ? state.tags : undefined,
    type: state.type || undefined,
    group,
    includeSubgroups: group !== undefined && state.includeSubgroups ? true : undefined,
    status: state.status || undefined,
    online: state.online || undefined,
    lastSeenFrom: state.lastSeenFrom || undefined,
    lastSeenTo: state.lastSeenTo || undefined,
    firmwareVersion: state.firmwareVersion.trim() || undefined,
    retired: state.retired ? true : undefined,
    sort: state.sort || undefined,
  };
}

/** True when any filter (not the sort, page or columns) is set. */
export function hasFilter(state: DeviceListState): boolean {
  const query = apiQueryOf(state);
  return Object.entries(query).some(([key, value]) => key !== "sort" && value !== undefined);
}

/** The CSV rows of `devices` in `columns`: the cells as shown, times as ISO 8601. */
export function csvRows(devices: readonly Device[], columns: readonly ColumnId[]): string[][] {
  return devices.map((device) =>
    columns.map((id) => {
      const column = columnOf(id);
      // Times as ISO 8601 (a spreadsheet reads them); "never" and blanks as shown.
      return column.time?.(device) ?? column.text(device);
    }),
  );
}

// ---- saved filters: in localStorage, per user and organization ------------------------------

export interface SavedFilter {
  name: string;
  /** The URL query it restores (filters, sort and columns; always page 1). */
  search: string;
}

export function savedFiltersKey(organization: string, email: string): string {
  return `fieldgate.devices.savedFilters:${organization}:${email}`;
}

export function readSavedFilters(key: string): SavedFilter[] {
  try {
    const parsed = JSON.parse(localStorage.getItem(key) ?? "[]") as unknown;
    if (!Array.isArray(parsed)) return [];
    return parsed.filter(
      (f): f is SavedFilter =>
        typeof f === "object" && f !== null && typeof f.name === "string" && typeof f.search === "string",
    );
  } catch {
    return [];
  }
}

export function writeSavedFilters(key: string, filters: readonly SavedFilter[]): void {
  localStorage.setItem(key, JSON.stringify(filters));
}

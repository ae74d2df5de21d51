import { Readable } from "node:stream";
import { FieldgateError } from "@fieldgate/shared";

/** One device as an export shows it: flat values, one per column. */
export interface DeviceExportRecord {
  uuid: string;
  name: string;
  location: string;
  comment: string;
  tags: string[];
  /** The group's full name, "default/plant-a/line-1". */
  group: string;
  type: string | null;
  /** The health status: ok, warning, critical, or null before the first report. */
  status: string | null;
  online: boolean;
  lastSeen: string | null;
  firmwareVersion: string | null;
  certificateExpires: string | null;
  createdAt: string;
}

export type ExportColumn = keyof DeviceExportRecord;
export type ExportFormat = "csv" | "json";

export const EXPORT_COLUMNS: readonly ExportColumn[] = [
  "uuid",
  "name",
  "location",
  "comment",
  "tags",
  "group",
  "type",
  "status",
  "online",
  "lastSeen",
  "firmwareVersion",
  "certificateExpires",
  "createdAt",
];

/** At most this many columns per export, as Sigfox allows. */
export const MAX_EXPORT_COLUMNS = 8;

export const DEFAULT_EXPORT_COLUMNS: readonly ExportColumn[] = [
  "uuid",
  "name",
  "group",
  "type",
  "status",
  "online",
  "lastSeen",
  "firmwareVersion",
];

/** Parses `uuid,name,…`: known columns, no repeats, at most MAX_EXPORT_COLUMNS; else VALIDATION_FAILED on `columns`. */
export function parseExportColumns(text: string | undefined): ExportColumn[] {
  if (text === undefined) return [...DEFAULT_EXPORT_COLUMNS];
  const names = text
    .split(",")
    .map((c) => c.trim())
    .filter(Boolean);
  const unknown = names.filter((n) => !(EXPORT_COLUMNS as readonly string[]).includes(n));
  if (unknown.length > 0) {
    throw new FieldgateError(
      "VALIDATION_FAILED",
      `columns: unknown column ${unknown.join(", ")}; choose from ${EXPORT_COLUMNS.join(", ")}`,
      "columns",
    );
  }
  if (names.length === 0) throw new FieldgateError("VALIDATION_FAILED", "columns: name at least one column", "columns");
  if (new Set(names).size !== names.length)
    throw new FieldgateError("VALIDATION_FAILED", "columns: a column is named twice", "columns");
  if (names.length > MAX_EXPORT_COLUMNS) {
    throw new FieldgateError(
      "VALIDATION_FAILED",
      `columns: at most ${MAX_EXPORT_COLUMNS} columns, got ${names.length}`,
      "columns",
    );
  }
  return names as ExportColumn[];
}

/**
 * One CSV cell. A cell a spreadsheet would read as a formula (it starts with = + - @, tab or CR)
 * gets a leading apostrophe (OWASP ASVS 1.2.10, CSV injection); then RFC 4180 quoting.
 */
export function csvCell(value: string): string {
  const safe = /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

/** One CSV record, CRLF-terminated as RFC 4180 says. */
export function csvLine(cells: readonly string[]): string {
  return `${cells.map(csvCell).join(",")}\r\n`;
}

/** The text of one value in a CSV cell: tags space-separated (tags never contain spaces), null empty. */
export function csvText(value: DeviceExportRecord[ExportColumn]): string {
  if (value === null) return "";
  if (Array.isArray(value)) return value.join(" ");
  return String(value);
}

/** The chunks of an export: one per page, so memory holds one page whatever the fleet size. */
export async function* exportChunks(
  pages: AsyncIterable<DeviceExportRecord[]> | Iterable<DeviceExportRecord[]>,
  format: ExportFormat,
  columns: readonly ExportColumn[],
): AsyncGenerator<string> {
  let first = true;
  yield format === "csv" ? csvLine(columns) : "[";
  for await (const page of pages) {
    let chunk = "";
    for (const record of page) {
      if (format === "csv") chunk += csvLine(columns.map((c) => csvText(record[c])));
      else {
        const picked = Object.fromEntries(columns.map((c) => [c, record[c]]));
        chunk += `${first ? "\n" : ",\n"}${JSON.stringify(picked)}`;
      }
      first = false;
    }
    if (chunk) yield chunk;
  }
  if (format === "json") yield first ? "]\n" : "\n]\n";
}

/** The export as a byte stream; pages are read only as fast as the client takes them. */
export function exportStream(
  pages: AsyncIterable<DeviceExportRecord[]> | Iterable<DeviceExportRecord[]>,
  format: ExportFormat,
  columns: readonly ExportColumn[],
): Readable {
  return Readable.from(exportChunks(pages, format, columns), { objectMode: false });
}

import { Readable } from "node:stream";
import { csvCell } from "../registry/device-export.js";
import type { StoredReading } from "./telemetry-reader.js";

/** The columns of a telemetry CSV, in order. */
export const TELEMETRY_CSV_COLUMNS = ["ts", "name", "value", "unit", "source", "stream", "seq"] as const;

/**
 * One reading as a CSV record (CRLF, RFC 4180). Text a device chose (name, unit, source, stream, a
 * string value) goes through the export's formula guard; numbers, booleans and times are written as
 * they are, so a negative reading stays a number.
 */
export function telemetryCsvLine(r: StoredReading): string {
  const value = typeof r.value === "string" ? csvCell(r.value) : String(r.value);
  return `${[r.ts, csvCell(r.name), value, csvCell(r.unit ?? ""), csvCell(r.source ?? ""), csvCell(r.stream), String(r.seq)].join(",")}\r\n`;
}

/** The chunks of the CSV: the header, then one chunk per page. */
export async function* telemetryCsvChunks(pages: AsyncIterable<StoredReading[]>): AsyncGenerator<string> {
  yield `${TELEMETRY_CSV_COLUMNS.join(",")}\r\n`;
  for await (const page of pages) {
    let chunk = "";
    for (const reading of page) chunk += telemetryCsvLine(reading);
    yield chunk;
  }
}

/** The CSV as a byte stream; pages are read only as fast as the client takes them. */
export function telemetryCsvStream(pages: AsyncIterable<StoredReading[]>): Readable {
  return Readable.from(telemetryCsvChunks(pages), { objectMode: false });
}

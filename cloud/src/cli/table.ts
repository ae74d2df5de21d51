import { visibleText } from "@fieldgate/shared";

/**
 * Renders rows as an aligned table for terminals. Cells hold stored text (device-sent names, units,
 * messages): their control characters are shown as escapes (visibleText), never sent to the
 * terminal. `paint` may wrap a padded cell in colour codes; it runs after padding and escaping, so
 * the codes never upset the alignment and are the only ones that reach the terminal.
 */
export function renderTable(
  headers: string[],
  cells: string[][],
  paint?: (row: number, column: number, padded: string) => string,
): string {
  const rows = cells.map((r) => r.map(visibleText));
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[], row: number) =>
    cells
      .map((c, i) => {
        const padded = c.padEnd(widths[i] ?? 0);
        return row >= 0 && paint ? paint(row, i, padded) : padded;
      })
      .join("  ")
      .trimEnd();
  return [line(headers, -1), ...rows.map((r, i) => line(r, i))].join("\n");
}

/** A field value the CLI built itself (colour codes included), printed as it is. */
export interface OwnText {
  own: string;
}

/** Renders key/value pairs, one per line, keys aligned; values' control characters shown as escapes. */
export function renderFields(fields: [string, string | OwnText][]): string {
  const width = Math.max(...fields.map(([k]) => k.length));
  return fields
    .map(([k, v]) => `${`${k}:`.padEnd(width + 2)}${typeof v === "string" ? visibleText(v) : v.own}`)
    .join("\n");
}

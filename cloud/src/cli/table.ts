/**
 * Renders rows as an aligned table for terminals. `paint` may wrap a padded cell in colour codes;
 * it runs after padding, so the codes never upset the alignment.
 */
export function renderTable(
  headers: string[],
  rows: string[][],
  paint?: (row: number, column: number, padded: string) => string,
): string {
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

/** Renders key/value pairs, one per line, keys aligned. */
export function renderFields(fields: [string, string][]): string {
  const width = Math.max(...fields.map(([k]) => k.length));
  return fields.map(([k, v]) => `${`${k}:`.padEnd(width + 2)}${v}`).join("\n");
}

/**
 * Readers of rows devices wrote. Ingest bounds every value it stores, but rows written before those
 * bounds (or by hand) may hold what no reader can show: a reader skips such a row and counts it
 * (`skipped` in the page), never failing the whole answer on one row.
 */

/** The ISO text of a stored millisecond time, or `undefined` when it is not a time a Date can hold. */
export function storedIso(ms: unknown): string | undefined {
  if (typeof ms !== "number" || !Number.isFinite(ms)) return undefined;
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

/** Maps rows with `read`, leaving out (and counting) those it cannot read. */
export function readRows<R, T>(rows: readonly R[], read: (row: R) => T | undefined): { items: T[]; skipped: number } {
  const items: T[] = [];
  for (const row of rows) {
    const item = read(row);
    if (item !== undefined) items.push(item);
  }
  return { items, skipped: rows.length - items.length };
}

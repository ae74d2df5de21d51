import type Database from "better-sqlite3";

/** The SQL function that orders text as people read it; registered on every connection. */
export const NATURAL_SORT_FUNCTION = "natural_key";

/**
 * A key whose plain (binary) order is the natural order of `text`, without regard to case:
 * `meter-9` < `meter-10`. Each run of digits becomes its length (three digits) and then the digits
 * without leading zeros, so a shorter number sorts first and equal lengths compare digit by digit.
 * A string key, so keyset paging can compare it like any other sort key.
 */
export function naturalSortKey(text: string | null): string {
  return (text ?? "").toLowerCase().replace(/\d+/g, (run) => {
    const digits = run.replace(/^0+(?=\d)/, "");
    return `${String(Math.min(digits.length, 999)).padStart(3, "0")}${digits}`;
  });
}

export function registerNaturalSort(db: Database.Database): void {
  db.function(NATURAL_SORT_FUNCTION, { deterministic: true }, (text: unknown) =>
    naturalSortKey(typeof text === "string" ? text : text === null ? null : String(text)),
  );
}

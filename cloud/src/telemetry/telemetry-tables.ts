import type { Generated } from "kysely";

/**
 * The tables of the telemetry capability. `telemetry` differs by backend: SQLite keeps one `value`
 * column of any type and orders by its rowid; PostgreSQL keeps `value_number`/`value_text` and an
 * identity `id` (storage/postgres-schema.ts explains why).
 */
export type TelemetryTables = {
  telemetry: {
    id: Generated<number>;
    device_id: number;
    ts: number;
    name: string;
    /** SQLite only. */
    value: number | string | null;
    /** PostgreSQL only, with value_text. */
    value_number: number | null;
    value_text: string | null;
    /** 0 number, 1 string, 2 boolean (stored 0/1). */
    kind: number;
    unit: string | null;
    stream: string;
    seq: number;
    source: string | null;
  };
  telemetry_streams: { device_id: number; stream: string; high_seq: number };
  telemetry_seq_gaps: { device_id: number; stream: string; from_seq: number; to_seq: number };
  /** PostgreSQL only: the dated partitions the cloud created. */
  telemetry_partitions: { name: string; from_ts: number; to_ts: number };
};

/** A reading's value as stored: the number or text, and its kind. */
export function storedValue(value: number | string | boolean): { value: number | string; kind: number } {
  if (typeof value === "boolean") return { value: value ? 1 : 0, kind: 2 };
  if (typeof value === "string") return { value, kind: 1 };
  // The schema lets only these through; anything else fails the commit on both backends alike.
  if (typeof value !== "number") throw new TypeError(`a reading's value must be a number, string or boolean`);
  return { value, kind: 0 };
}

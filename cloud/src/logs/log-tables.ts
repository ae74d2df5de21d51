import type { Generated } from "kysely";

/** The tables of the logs capability: forwarded lines, and the keys of named batches already stored. */
export type LogTables = {
  device_logs: { id: Generated<number>; device_id: number; ts: number; level: string; msg: string };
  log_batches: { device_id: number; stream: string; seq: number; received_at: number };
};

import path from "node:path";
import Database from "better-sqlite3";
import { expect } from "vitest";
import { agentCli } from "./agent-process.js";
import type { CloudProcess } from "./cloud-process.js";

type Page = { count: number; items: { name: string; value: number; seq: number; stream: string }[] };

/** The last synthetic counter value the agent committed to its outbox. */
export function producedCount(dataDir: string): number {
  const db = new Database(path.join(dataDir, "agent.db"), { readonly: true });
  try {
    const row = db.prepare("SELECT value FROM meta WHERE key = 'counter:synthetic.counter'").get() as
      | { value: string }
      | undefined;
    return Number(row?.value ?? 0);
  } finally {
    db.close();
  }
}

export async function backlogRows(configFile: string): Promise<number> {
  const status = await agentCli(["status", "--config", configFile, "--json"]);
  return (JSON.parse(status.stdout) as { outbox: { rows: number } }).outbox.rows;
}

/** Every synthetic reading stored exactly once, and the batches of the stream numbered without gaps. */
export async function expectExactlyOnce(cloud: CloudProcess, uuid: string, produced: number): Promise<void> {
  const page = await cloud.api<Page>("GET", `/api/v1/devices/${uuid}/telemetry?name=synthetic.counter&limit=10000`);
  const values = page.body.items.map((r) => r.value).sort((a, b) => a - b);
  expect(values.length).toBe(produced);
  expect(values).toEqual(Array.from({ length: produced }, (_, i) => i + 1));
  const all = await cloud.api<Page>("GET", `/api/v1/devices/${uuid}/telemetry?limit=10000`);
  const seqs = [...new Set(all.body.items.map((r) => r.seq))].sort((a, b) => a - b);
  expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
  expect(all.body.count).toBe(all.body.items.length);
}

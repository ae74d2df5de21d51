import { join } from "node:path";
import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { SqliteOutboxStore } from "../../src/outbox/sqlite-outbox-store.js";
import { tempDir } from "../helpers/tmp.js";
import { outboxStoreConformance } from "./outbox-store-conformance.js";

outboxStoreConformance("SqliteOutboxStore", () => {
  const tmp = tempDir();
  const path = join(tmp.dir, "agent.db");
  return { open: (o) => new SqliteOutboxStore(path, o), cleanup: tmp.cleanup };
});

describe("SqliteOutboxStore", () => {
  it("uses WAL with synchronous=FULL and the documented tables", () => {
    const tmp = tempDir();
    const path = join(tmp.dir, "agent.db");
    const store = new SqliteOutboxStore(path, { maxRows: 10 });
    store.close();
    const db = new Database(path, { readonly: true });
    expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all();
    expect(tables).toEqual(expect.arrayContaining(["batches", "meta", "outbox_set_aside", "readings"]));
    db.close();
    tmp.cleanup();
  });

  it("peeks at the backlog from another connection", () => {
    const tmp = tempDir();
    const path = join(tmp.dir, "agent.db");
    expect(SqliteOutboxStore.peek(path)).toBeUndefined();
    const store = new SqliteOutboxStore(path, { maxRows: 10 });
    store.append([{ name: "x", ts: 5, value: 1 }]);
    expect(SqliteOutboxStore.peek(path)).toEqual({ rows: 1, batches: 0, oldestTs: 5, droppedTotal: 0, setAside: 0 });
    store.close();
    tmp.cleanup();
  });
});

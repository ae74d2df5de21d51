import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { GroupTree } from "../../src/groups/group-tree.js";
import { DeviceRegistry } from "../../src/registry/device-registry.js";
import { telemetryCsvLine, telemetryCsvStream } from "../../src/registry/telemetry-export.js";
import { openDatabase } from "../../src/storage/database.js";

/** The telemetry CSV is read from SQLite page by page, only as fast as its reader takes it. */
describe("telemetry CSV export", () => {
  let dir: string;
  let db: Database.Database;
  let registry: DeviceRegistry;
  let deviceId: number;
  const BASE = Date.parse("2026-03-01T00:00:00Z");
  let insert: Database.Statement;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "fieldgate-telemetry-csv-"));
    db = openDatabase(path.join(dir, "cloud.db"));
    const groups = new GroupTree(db);
    registry = new DeviceRegistry(db, groups, 600_000);
    const orgId = registry.ensureDefaultOrganization();
    registry.create(orgId, { uuid: "0f0e0d0c-0b0a-4908-8706-050403020100" }, { groupId: groups.root(orgId).id });
    deviceId = registry.row(orgId, "0f0e0d0c-0b0a-4908-8706-050403020100").id;
    insert = db.prepare(
      "INSERT INTO telemetry (device_id, ts, name, value, kind, unit, source, stream, seq) VALUES (?, ?, 'temp', ?, 0, 'C', NULL, 'main', ?)",
    );
    db.transaction(() => {
      for (let i = 0; i < 5_000; i++) insert.run(deviceId, BASE + i, i, i + 1);
    })();
  });
  afterEach(() => {
    db.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("sends its first bytes before the last row is read, and frees the connection between pages", async () => {
    const stream = telemetryCsvStream(registry.telemetryPages(deviceId, {}, 100));
    const chunks = stream[Symbol.asyncIterator]();
    const first = await chunks.next();
    expect(first.value.toString()).toBe("ts,name,value,unit,source,stream,seq\r\n");
    // Rows written after the first bytes went out are still in the range, so the range was not read yet;
    // and the connection takes other statements meanwhile (an open iterate() would make it busy).
    insert.run(deviceId, BASE + 10_000, -1, 5_001);
    let text = "";
    for (let next = await chunks.next(); !next.done; next = await chunks.next()) text += next.value.toString();
    const lines = text.split("\r\n").filter(Boolean);
    expect(lines).toHaveLength(5_001);
    expect(lines[0]).toBe(`${new Date(BASE).toISOString()},temp,0,C,,main,1`);
    expect(lines.at(-1)).toBe(`${new Date(BASE + 10_000).toISOString()},temp,-1,C,,main,5001`);
  });

  it("keeps readings that share a time in insertion order across a page boundary", () => {
    db.prepare("DELETE FROM telemetry").run();
    db.transaction(() => {
      for (let i = 0; i < 250; i++) insert.run(deviceId, BASE, i, i + 1);
    })();
    const seqs = [...registry.telemetryPages(deviceId, {}, 100)].flat().map((r) => r.seq);
    expect(seqs).toEqual(Array.from({ length: 250 }, (_, i) => i + 1));
  });

  it("guards text cells against formulas but leaves numbers as numbers", () => {
    const base = { ts: "2026-03-01T00:00:00.000Z", unit: null, source: null, stream: "main", seq: 1 };
    expect(telemetryCsvLine({ ...base, name: "@sum", value: "+1" })).toBe(
      "2026-03-01T00:00:00.000Z,'@sum,'+1,,,main,1\r\n",
    );
    expect(telemetryCsvLine({ ...base, name: "t", value: -3 })).toBe("2026-03-01T00:00:00.000Z,t,-3,,,main,1\r\n");
    expect(telemetryCsvLine({ ...base, name: "on", value: false })).toBe(
      "2026-03-01T00:00:00.000Z,on,false,,,main,1\r\n",
    );
  });
});

import { rmSync } from "node:fs";
import { join } from "node:path";
import { FieldgateError, type Reading } from "@fieldgate/shared";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mountSmallFilesystem, type SmallFilesystem } from "../../../test/support/small-filesystem.js";
import { SqliteLogBuffer } from "../../src/logs/sqlite-log-buffer.js";
import { FULL_DROP_MIN, SqliteOutboxStore } from "../../src/outbox/sqlite-outbox-store.js";
import { StorageGuard } from "../../src/storage/storage-full.js";
import { memoryLogger } from "../helpers/logger.js";

const readings = (n: number, from = 0): Reading[] =>
  Array.from({ length: n }, (_, i) => ({ name: "test.value", ts: 1_700_000_000_000 + from + i, value: from + i }));

/** Appends until the store answers STORAGE_FULL; returns that error. */
function appendUntilFull(store: SqliteOutboxStore): FieldgateError {
  for (let i = 0; i < 20_000; i++) {
    try {
      store.append(readings(100, 100_000 + i * 100));
    } catch (err) {
      return err as FieldgateError;
    }
  }
  throw new Error("the filesystem never filled up");
}

describe("the outbox on a full filesystem (a real tmpfs)", () => {
  let fs: SmallFilesystem | undefined;
  let skipped = "";
  beforeAll(() => {
    const mounted = mountSmallFilesystem(4);
    if ("skipped" in mounted) {
      skipped = mounted.skipped;
      console.warn(`skipping the full-disk store tests: ${skipped}`);
    } else fs = mounted;
  });
  afterAll(() => fs?.unmount());

  it("answers STORAGE_FULL, drops the oldest unsent readings, keeps delivering, and recovers when space returns", (ctx) => {
    if (!fs) return ctx.skip();
    const { logger, lines } = memoryLogger();
    const guard = new StorageGuard({ reservePath: join(fs.dir, "storage.reserve"), reserveBytes: 512 * 1024, logger });
    expect(guard.ensureReserve()).toBe(true);
    const store = new SqliteOutboxStore(join(fs.dir, "agent.db"), { maxRows: 1_000_000, storage: guard });
    const logs = new SqliteLogBuffer(join(fs.dir, "agent.db"), { maxWaiting: 10_000, storage: guard });
    store.append(readings(5000));
    const filler = fs.fill();

    const error = appendUntilFull(store);
    expect(error).toBeInstanceOf(FieldgateError);
    expect(error.code).toBe("STORAGE_FULL");
    expect(error.status).toBe(503);
    expect(error.message).toMatch(/filesystem is full: 100 readings could not be stored; free space/);
    expect(guard.isFull).toBe(true);
    expect(lines.some((l) => l.code === "STORAGE_FULL")).toBe(true);
    const check = guard.check().run() as { status: string; message: string };
    expect(check.status).toBe("critical");
    expect(check.message).toMatch(/^STORAGE_FULL: /);

    // The drop policy made room: the next append fits, and the drops are counted like the cap's.
    const before = store.backlog();
    expect(before.droppedTotal).toBeGreaterThanOrEqual(FULL_DROP_MIN);
    expect(store.append(readings(100, 9_000_000)).appended).toBe(100);

    // Delivery continues: batches form and their acks delete rows on the full disk.
    const batch = store.nextBatch(500);
    expect(batch?.readings).toHaveLength(500);
    store.ack(batch?.seq as number);
    expect(store.backlog().rows).toBe(before.rows + 100 - 500);
    // Log lines do not take the room readings need: refused (the forwarder keeps them staged), counts intact.
    expect(() => logs.append([{ ts: Date.now(), level: "info", msg: "still logging" }])).toThrow(
      expect.objectContaining({ code: "STORAGE_FULL" }),
    );
    expect(logs.waiting).toBe(0);

    // Space returns: the alarm clears by itself and appends are accepted again.
    rmSync(filler);
    expect(guard.check().run()).toMatchObject({ status: "ok" });
    expect(guard.isFull).toBe(false);
    expect(store.append(readings(1000, 10_000_000)).appended).toBe(1000);
    expect(logs.append([{ ts: Date.now(), level: "info", msg: "logging again" }]).appended).toBe(1);
    logs.close();
    store.close();
  });

  it("refuses with STORAGE_FULL when nothing unsent is left to drop, and never throws anything else", (ctx) => {
    if (!fs) return ctx.skip();
    const { logger } = memoryLogger();
    const dir = join(fs.dir, "all-batched");
    const guard = new StorageGuard({ reservePath: join(dir, "storage.reserve"), reserveBytes: 64 * 1024, logger });
    const store = new SqliteOutboxStore(join(dir, "agent.db"), { maxRows: 1_000_000, storage: guard });
    store.append(readings(200));
    const formed = store.nextBatch(1000);
    const filler = fs.fill("filler-2");
    let last: unknown;
    for (let i = 0; i < 5000 && !(last instanceof FieldgateError); i++) {
      try {
        store.append(readings(100, i * 100));
      } catch (err) {
        last = err;
      }
    }
    expect((last as FieldgateError).code).toBe("STORAGE_FULL");
    // The batched rows are promised to the cloud: the drop policy never takes them.
    expect(store.pendingBatches()[0]?.readings).toEqual(formed?.readings);
    rmSync(filler);
    store.close();
  });
});

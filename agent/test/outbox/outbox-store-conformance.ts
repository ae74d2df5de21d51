import type { Reading } from "@fieldgate/shared";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { OutboxStore } from "../../src/outbox/outbox-store.js";

/** Opens a store; `reopen` must return a store over the same durable state (a restart). */
export interface StoreHarness {
  open(options: { maxRows: number }): OutboxStore;
  cleanup(): void;
}

const reading = (i: number): Reading => ({ name: "test.value", ts: 1_700_000_000_000 + i, value: i, unit: "u" });
const readings = (from: number, count: number): Reading[] => Array.from({ length: count }, (_, k) => reading(from + k));

/** One behavioural suite for every OutboxStore implementation (MQTT.js abstract-store style). */
export function outboxStoreConformance(name: string, makeHarness: () => StoreHarness): void {
  describe(`OutboxStore conformance: ${name}`, () => {
    let harness: StoreHarness;
    let open: OutboxStore[];
    const openStore = (maxRows = 1_000_000): OutboxStore => {
      const s = harness.open({ maxRows });
      open.push(s);
      return s;
    };
    beforeEach(() => {
      harness = makeHarness();
      open = [];
    });
    afterEach(() => {
      for (const s of open) s.close();
      harness.cleanup();
    });

    it("has a 32-hex-char stream id that survives reopening", () => {
      const a = openStore();
      expect(a.stream).toMatch(/^[0-9a-f]{32}$/);
      const stream = a.stream;
      a.close();
      expect(openStore().stream).toBe(stream);
    });

    it("appends and reports the backlog", () => {
      const s = openStore();
      expect(s.backlog()).toEqual({ rows: 0, batches: 0, oldestTs: null, droppedTotal: 0, setAside: 0 });
      expect(s.append(readings(1, 3))).toEqual({ appended: 3, dropped: 0 });
      expect(s.backlog()).toMatchObject({ rows: 3, batches: 0, oldestTs: reading(1).ts });
    });

    it("sets a batch aside: out of the outbox and never resent, counted across reopening", () => {
      const s = openStore();
      s.append(readings(1, 4));
      const first = s.nextBatch(2);
      const second = s.nextBatch(2);
      expect(s.setAside(first?.seq ?? 0, { code: "VALIDATION_FAILED", field: "readings[0].ts", message: "m" })).toBe(
        true,
      );
      expect(s.setAside(first?.seq ?? 0, { code: "X", message: "again" })).toBe(false);
      expect(s.setAside(999, { code: "X", message: "unknown" })).toBe(false);
      expect(s.pendingBatches().map((b) => b.seq)).toEqual([second?.seq]);
      expect(s.backlog()).toMatchObject({ rows: 2, batches: 1, setAside: 1 });
      s.close();
      const reopened = openStore();
      expect(reopened.backlog()).toMatchObject({ rows: 2, batches: 1, setAside: 1 });
      expect(reopened.pendingBatches().map((b) => b.seq)).toEqual([second?.seq]);
    });

    it("keeps values of every type and an absent unit", () => {
      const s = openStore();
      const mixed: Reading[] = [
        { name: "a", ts: 1, value: 1.5 },
        { name: "b", ts: 2, value: "text" },
        { name: "c", ts: 3, value: false, unit: "bool" },
      ];
      s.append(mixed);
      expect(s.nextBatch(10)?.readings).toEqual(mixed);
    });

    it("rejects an invalid reading and stores none of the append", () => {
      const s = openStore();
      const bad = [reading(1), { name: "bad name with spaces", ts: 2, value: 1 }] as Reading[];
      expect(() => s.append(bad)).toThrow(/readings\[1\]\.name/);
      expect(s.backlog().rows).toBe(0);
    });

    it("forms batches in id order with consecutive seq starting at 1", () => {
      const s = openStore();
      s.append(readings(1, 5));
      const b1 = s.nextBatch(2);
      const b2 = s.nextBatch(2);
      const b3 = s.nextBatch(2);
      expect([b1?.seq, b2?.seq, b3?.seq]).toEqual([1, 2, 3]);
      expect(b1?.readings).toEqual(readings(1, 2));
      expect(b2?.readings).toEqual(readings(3, 2));
      expect(b3?.readings).toEqual(readings(5, 1));
      expect(s.nextBatch(2)).toBeUndefined();
      expect(s.backlog()).toMatchObject({ rows: 5, batches: 3 });
    });

    it("deletes a batch and its rows only on ack, and ignores unknown acks", () => {
      const s = openStore();
      s.append(readings(1, 4));
      const b1 = s.nextBatch(2);
      s.nextBatch(2);
      s.ack(b1?.seq ?? 0);
      s.ack(99);
      expect(s.backlog()).toMatchObject({ rows: 2, batches: 1, oldestTs: reading(3).ts });
      expect(s.pendingBatches().map((b) => b.seq)).toEqual([2]);
    });

    it("redelivers unacknowledged batches after reopening, with the same seq and rows", () => {
      const a = openStore();
      a.append(readings(1, 6));
      const b1 = a.nextBatch(3);
      const b2 = a.nextBatch(2);
      a.ack(b1?.seq ?? 0);
      a.close();
      const b = openStore();
      expect(b.pendingBatches()).toEqual([b2]);
      // seq continues after the last formed batch; never reused.
      const b3 = b.nextBatch(10);
      expect(b3).toEqual({ seq: 3, readings: readings(6, 1) });
    });

    it("caps the rows by dropping the oldest unbatched readings and counts the drops", () => {
      const s = openStore(5);
      s.append(readings(1, 2));
      const batch = s.nextBatch(2);
      expect(s.append(readings(3, 3))).toEqual({ appended: 3, dropped: 0 });
      // 2 batched + 3 unbatched = 5 = cap; two more drop the two oldest unbatched (3 and 4).
      expect(s.append(readings(6, 2))).toEqual({ appended: 2, dropped: 2 });
      expect(s.backlog()).toMatchObject({ rows: 5, droppedTotal: 2 });
      expect(s.pendingBatches()).toEqual([batch]);
      expect(s.nextBatch(10)?.readings).toEqual([reading(5), reading(6), reading(7)]);
    });

    it("keeps the drop count across reopening", () => {
      const a = openStore(1);
      a.append(readings(1, 3));
      a.close();
      expect(openStore(1).backlog()).toMatchObject({ rows: 1, droppedTotal: 2 });
    });

    it("continues a persisted counter across reopening without gaps", () => {
      const a = openStore();
      a.appendCounter("synthetic.counter", 3, 10);
      a.close();
      const b = openStore();
      b.appendCounter("synthetic.counter", 2, 11);
      expect(b.nextBatch(10)?.readings.map((r) => r.value)).toEqual([1, 2, 3, 4, 5]);
    });
  });
}

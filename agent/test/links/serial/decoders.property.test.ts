import { EventEmitter } from "node:events";
import { checkLinks, type ModbusPoll, type SerialLinkConfig } from "@fieldgate/shared";
import fc from "fast-check";
import ModbusRTUModule from "modbus-serial";
import { describe, expect, it } from "vitest";
import type { LinkSink } from "../../../src/links/link.js";
import { LineDecoder, LineSplitter } from "../../../src/links/serial/line-protocol.js";
import { decodePollAnswer } from "../../../src/links/serial/modbus-values.js";
import { MAX_RTU_BUFFER, RtuFramer } from "../../../src/links/serial/rtu-framer.js";
import { RtuPort } from "../../../src/links/serial/rtu-port.js";
import { SerialLink, type SerialPortHandle } from "../../../src/links/serial/serial-link.js";
import { memoryLogger } from "../../helpers/logger.js";

const bytes = fc.uint8Array({ maxLength: 600 }).map((a) => Buffer.from(a));
/** Random bytes with plenty of newlines and JSON-ish and key=value-ish text mixed in. */
const noisy = fc.array(
  fc.oneof(
    bytes,
    fc.constantFrom("\n", "\r\n", '{"t":1}\n', "a=1 b=x\n", "{", "=", "T=12.5\n").map((s) => Buffer.from(s)),
    fc.string({ maxLength: 200 }).map((s) => Buffer.from(s)),
  ),
  { maxLength: 40 },
);

describe("line decoding under random input", () => {
  it("never throws, keeps its buffer within maxLineLength, and yields only valid readings", () => {
    const NAME = /^[A-Za-z0-9_.:/-]{1,128}$/;
    fc.assert(
      fc.property(
        noisy,
        fc.constantFrom("json", "kv", "regex"),
        fc.integer({ min: 16, max: 256 }),
        (chunks, format, max) => {
          const splitter = new LineSplitter(max);
          const decoder = new LineDecoder({
            type: "lines",
            format: format as "json",
            ...(format === "regex" && { regex: "T=(?<temp>[-0-9.]+)" }),
          });
          for (const chunk of chunks) {
            for (const line of splitter.push(chunk)) {
              // Bytes, not characters, are bounded; a decoded character takes at least one byte.
              expect(line.length).toBeLessThanOrEqual(max);
              for (const r of decoder.decode(line).readings) {
                expect(r.name).toMatch(NAME);
                if (typeof r.value === "number") expect(Number.isFinite(r.value)).toBe(true);
                if (typeof r.value === "string") expect(r.value.length).toBeLessThanOrEqual(1024);
              }
            }
            expect(splitter.buffered).toBeLessThanOrEqual(max);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it("feeds random bytes through a whole lines link without a throw, counting what it drops", async () => {
    await fc.assert(
      fc.asyncProperty(noisy, async (chunks) => {
        const port = new EventEmitter() as EventEmitter & SerialPortHandle;
        Object.assign(port, { isOpen: true, write: () => true, close: (cb?: () => void) => cb?.() });
        let delivered = 0;
        const sink: LinkSink = {
          readings: (_id, _ts, list) => {
            delivered += list.length;
          },
          stateChanged: () => {},
        };
        const config = checkLinks([
          {
            id: "fuzz",
            type: "serial",
            path: "/dev/ttyFUZZ",
            protocol: { type: "lines", format: "kv", maxLineLength: 64 },
          },
        ])[0] as SerialLinkConfig;
        const link = new SerialLink(
          config,
          { sink, logger: memoryLogger("fatal").logger },
          {
            openPort: async () => port,
            pathExists: () => true,
          },
        );
        link.start();
        await new Promise((r) => setImmediate(r));
        expect(link.status().state).toBe("connected");
        for (const chunk of chunks) port.emit("data", chunk);
        const status = link.status();
        expect(status.counters.readings).toBe(delivered);
        expect(status.state).toBe("connected");
        await link.stop();
      }),
      { numRuns: 100 },
    );
  });
});

describe("Modbus decoding under random input", () => {
  const request = fc
    .record({
      unit: fc.integer({ min: 1, max: 247 }),
      fc: fc.integer({ min: 1, max: 4 }),
      qty: fc.integer({ min: 1, max: 125 }),
    })
    .map(({ unit, fc: code, qty }) => {
      const b = Buffer.alloc(8);
      b.writeUInt8(unit, 0);
      b.writeUInt8(code, 1);
      b.writeUInt16BE(0, 2);
      b.writeUInt16BE(qty, 4);
      return b;
    });

  it("the RTU framer never throws, never holds more than 256 bytes, and emits at most one frame per request", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.option(request), fc.array(bytes, { maxLength: 5 })), { maxLength: 30 }),
        (steps) => {
          const framer = new RtuFramer();
          for (const [req, chunks] of steps) {
            if (req) framer.request(req);
            let frames = 0;
            for (const chunk of chunks) {
              frames += framer.push(chunk).length;
              expect(framer.buffered).toBeLessThanOrEqual(MAX_RTU_BUFFER);
            }
            expect(frames).toBeLessThanOrEqual(1);
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it("register decoding never throws and yields finite numbers or reports an error", () => {
    const entry = fc.record({
      unitId: fc.constant(1),
      function: fc.constantFrom("holding", "input", "coil", "discrete"),
      address: fc.constant(0),
      count: fc.integer({ min: 1, max: 10 }),
      name: fc.constant("v"),
      scale: fc.option(fc.double(), { nil: undefined }),
      offset: fc.option(fc.double(), { nil: undefined }),
    });
    fc.assert(
      fc.property(
        entry,
        fc.constantFrom("int16", "uint16", "int32", "uint32", "float32"),
        fc.constantFrom("big", "little"),
        fc.array(fc.integer({ min: -1, max: 0x1ffff }), { maxLength: 30 }),
        fc.array(fc.boolean(), { maxLength: 30 }),
        (e, type, wordOrder, registers, bits) => {
          const bitsOnly = e.function === "coil" || e.function === "discrete";
          const poll = { ...e, ...(!bitsOnly && { type, wordOrder }) } as ModbusPoll;
          const out = decodePollAnswer(poll, { registers, bits });
          for (const r of out.readings) if (typeof r.value === "number") expect(Number.isFinite(r.value)).toBe(true);
          expect(out.readings.length).toBeLessThanOrEqual(e.count);
        },
      ),
      { numRuns: 500 },
    );
  });

  it("modbus-serial behind the RTU port answers every request (value, error or timeout) whatever the line says", async () => {
    const ModbusRTU = ModbusRTUModule.default;
    await fc.assert(
      fc.asyncProperty(fc.array(bytes, { maxLength: 4 }), fc.integer({ min: 1, max: 4 }), async (answer, code) => {
        const raw = new EventEmitter() as EventEmitter & { isOpen: boolean; write: (d: Buffer) => void };
        raw.isOpen = true;
        raw.write = () => {
          for (const chunk of answer) setImmediate(() => raw.emit("data", chunk));
        };
        const port = new RtuPort(raw, new RtuFramer());
        const client = new ModbusRTU(port);
        client.on("error", () => {});
        client.setTimeout(15);
        await new Promise<void>((resolve) => client.open(() => resolve()));
        const calls = await new Promise<number>((resolve) => {
          let n = 0;
          const next = () => {
            n += 1;
            setTimeout(() => resolve(n), 30);
          };
          const method = [client.writeFC1, client.writeFC2, client.writeFC3, client.writeFC4][code - 1] as (
            unit: number,
            addr: number,
            len: number,
            cb: () => void,
          ) => void;
          method.call(client, 1, 0, 2, next);
        });
        expect(calls).toBe(1);
        await new Promise<void>((resolve) => client.close(() => resolve()));
      }),
      { numRuns: 60 },
    );
  });
});

import { EventEmitter } from "node:events";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { ClockSkew } from "../../src/health/clock-skew.js";
import { MqttTimeSync } from "../../src/health/mqtt-time-sync.js";

const UUID = "0b6a2f0e-1c3d-4e5f-8a9b-0c1d2e3f4a5b";

class FakeTransport extends EventEmitter {
  connected = true;
  sent: { topic: string; payload: string }[] = [];
  async publish(topic: string, payload: string): Promise<void> {
    this.sent.push({ topic, payload });
  }
}

describe("MqttTimeSync", () => {
  it("estimates the skew from a round trip: serverTs + rtt/2 − arrival", () => {
    let now = 1_000_000;
    const clockSkew = new ClockSkew({
      cloudUrl: "https://127.0.0.1:9",
      intervalMs: 60_000,
      logger: pino({ level: "silent" }),
    });
    const sync = new MqttTimeSync({
      uuid: UUID,
      clockSkew,
      intervalMs: 60_000,
      logger: pino({ level: "silent" }),
      now: () => now,
    });
    const transport = new FakeTransport();
    sync.attach(transport);
    expect(transport.sent[0]?.topic).toBe(`fieldgate/v1/${UUID}/time`);
    const { t0 } = JSON.parse(transport.sent[0]?.payload ?? "{}") as { t0: number };
    expect(t0).toBe(1_000_000);
    // The cloud's clock is 5 s ahead; the trip takes 100 ms, 50 ms each way.
    now += 100;
    transport.emit(
      "message",
      `fieldgate/v1/${UUID}/commands/time`,
      Buffer.from(JSON.stringify({ v: 1, t0, serverTs: t0 + 50 + 5000 })),
    );
    expect(clockSkew.latest()).toMatchObject({ skewMs: 5000, rttMs: 100, source: "mqtt-round-trip" });
    sync.detach();
  });

  it("ignores malformed answers, other topics, and answers that cannot belong to a request", () => {
    const clockSkew = new ClockSkew({
      cloudUrl: "https://127.0.0.1:9",
      intervalMs: 60_000,
      logger: pino({ level: "silent" }),
    });
    const sync = new MqttTimeSync({
      uuid: UUID,
      clockSkew,
      intervalMs: 60_000,
      logger: pino({ level: "silent" }),
      now: () => 5000,
    });
    const transport = new FakeTransport();
    sync.attach(transport);
    transport.emit("message", `fieldgate/v1/${UUID}/commands/time`, Buffer.from("{bad"));
    transport.emit(
      "message",
      `fieldgate/v1/${UUID}/commands/time`,
      Buffer.from(JSON.stringify({ v: 1, t0: 9000, serverTs: 1 })),
    );
    transport.emit(
      "message",
      `fieldgate/v1/${UUID}/commands/other`,
      Buffer.from(JSON.stringify({ v: 1, t0: 4000, serverTs: 1 })),
    );
    expect(clockSkew.latest()).toBeUndefined();
    sync.detach();
  });
});

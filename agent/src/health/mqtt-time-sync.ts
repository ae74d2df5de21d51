import { deviceTopic, SchemaValidator, TimeResponse } from "@fieldgate/shared";
import type { Logger } from "pino";
import type { ClockSkew } from "./clock-skew.js";

/** The part of the MQTT session this needs. */
export interface TimeSyncTransport {
  readonly connected: boolean;
  publish(topic: string, payload: string, options?: { qos?: 0 | 1 }): Promise<void>;
  on(event: "connected", listener: () => void): unknown;
  on(event: "message", listener: (topic: string, payload: Buffer) => void): unknown;
  off(event: "connected", listener: () => void): unknown;
  off(event: "message", listener: (topic: string, payload: Buffer) => void): unknown;
}

export interface MqttTimeSyncOptions {
  uuid: string;
  clockSkew: ClockSkew;
  intervalMs: number;
  logger: Logger;
  now?: () => number;
}

const validator = new SchemaValidator();

/**
 * Clock skew from MQTT round trips: publish our clock on `time`, and when the cloud's answer on
 * `commands/time` arrives, skew = serverTs + rtt/2 − arrival. Milliseconds, where the HTTPS Date
 * header gives seconds. Sent on every connect and every interval.
 */
export class MqttTimeSync {
  private timer: NodeJS.Timeout | undefined;
  private transport: TimeSyncTransport | undefined;
  private readonly now: () => number;
  private readonly requestTopic: string;
  private readonly answerTopic: string;
  private readonly onConnected = () => this.send();
  private readonly onMessage = (topic: string, payload: Buffer) => {
    if (topic === this.answerTopic) this.receive(payload);
  };

  constructor(private readonly options: MqttTimeSyncOptions) {
    this.now = options.now ?? Date.now;
    this.requestTopic = deviceTopic(options.uuid, { kind: "time" });
    this.answerTopic = deviceTopic(options.uuid, { kind: "commands", commandId: "time" });
  }

  /** Attaches to a (new) session; the previous one, if any, is let go. */
  attach(transport: TimeSyncTransport): void {
    this.detach();
    this.transport = transport;
    transport.on("connected", this.onConnected);
    transport.on("message", this.onMessage);
    this.timer = setInterval(() => this.send(), this.options.intervalMs);
    this.timer.unref?.();
    if (transport.connected) this.send();
  }

  detach(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.transport?.off("connected", this.onConnected);
    this.transport?.off("message", this.onMessage);
    this.transport = undefined;
  }

  private send(): void {
    const transport = this.transport;
    if (!transport?.connected) return;
    // QoS 0: a lost request is simply not answered; the next interval tries again.
    transport.publish(this.requestTopic, JSON.stringify({ v: 1, t0: this.now() }), { qos: 0 }).catch(() => undefined);
  }

  private receive(payload: Buffer): void {
    const arrival = this.now();
    let answer: TimeResponse;
    try {
      answer = validator.parse(TimeResponse, JSON.parse(payload.toString("utf8")));
    } catch (err) {
      this.options.logger.debug({ err: (err as Error).message }, "ignoring a malformed clock-sync answer");
      return;
    }
    const rtt = arrival - answer.t0;
    if (rtt < 0 || rtt > 60_000) return; // not an answer to a request of ours, or far too late to trust
    this.options.clockSkew.record({
      skewMs: Math.round(answer.serverTs + rtt / 2 - arrival),
      rttMs: rtt,
      at: arrival,
      source: "mqtt-round-trip",
    });
  }
}

import { EventEmitter } from "node:events";
import type { MessageSink } from "../../src/transport/mqtt-session.js";

/** An in-memory MessageSink: records publishes; `failNext` makes the next ones reject. */
export class FakeSink extends EventEmitter implements MessageSink {
  connected = true;
  failNext = 0;
  readonly published: { topic: string; payload: unknown }[] = [];

  async publish(topic: string, payload: string | Buffer): Promise<void> {
    if (!this.connected) throw new Error("not connected");
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error("connection lost before PUBACK");
    }
    this.published.push({ topic, payload: JSON.parse(payload.toString()) });
  }

  goOnline(): void {
    this.connected = true;
    this.emit("connected");
  }
}

import { type DeviceState, deviceTopic } from "@fieldgate/shared";
import type { Logger } from "pino";
import type { MessageSink } from "../transport/mqtt-session.js";

/** What the state message is made of; each is read at send time. */
export interface DeviceStateSource {
  agentVersion: string;
  /** The installed firmware version, or undefined before the first install. */
  firmwareVersion(): string | undefined;
  uptimeS(): number;
}

/**
 * Sends `state` (agent and firmware versions, uptime) on every connect. The cloud keeps the
 * firmware version per device: device lists filter on it, and a rollout's auto-rollback needs the
 * version each device had before.
 */
export class DeviceStateReporter {
  constructor(
    private readonly uuid: string,
    private readonly source: DeviceStateSource,
    private readonly logger: Logger,
  ) {}

  async send(sink: MessageSink, now = Date.now()): Promise<void> {
    let firmwareVersion: string | undefined;
    try {
      firmwareVersion = this.source.firmwareVersion();
    } catch (err) {
      // A damaged record is reported by the update machine; the state goes out without it.
      this.logger.warn({ err: (err as Error).message }, "installed firmware version unreadable");
    }
    const state: DeviceState = {
      v: 1,
      ts: now,
      agentVersion: this.source.agentVersion,
      ...(firmwareVersion !== undefined && { firmwareVersion }),
      uptimeS: Math.round(this.source.uptimeS()),
    };
    await sink
      .publish(deviceTopic(this.uuid, { kind: "state" }), JSON.stringify(state), { qos: 1 })
      .catch((err: Error) =>
        this.logger.debug({ err: err.message }, "state not sent; it goes out on the next connect"),
      );
  }
}

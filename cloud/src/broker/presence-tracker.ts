import type { Client } from "aedes";
import type { EventRecorder } from "../events/device-events.js";
import type { DeviceRegistry } from "../registry/device-registry.js";

/** Why a device went offline; recorded on the device and in its event history. */
export type OfflineReason =
  | "clean-disconnect"
  | "keepalive-timeout"
  | "last-will"
  | "revoked"
  | "packet-too-large"
  | "cloud-stopped";

const REASON_TEXT: Record<OfflineReason, string> = {
  "clean-disconnect": "disconnected cleanly",
  "keepalive-timeout": "missed its MQTT keepalive",
  "last-will": "connection lost; the last will was published",
  revoked: "its certificate was revoked",
  "packet-too-large": "it sent a packet over the size limit",
  "cloud-stopped": "the cloud stopped",
};

const CONFLICT_WINDOW_MS = 60_000;
const CONFLICT_TAKEOVERS = 3;
const CONFLICT_REPORT_EVERY_MS = 10 * 60_000;

/**
 * Online/offline, last seen and the reason for going offline, from the broker's connection events.
 * A device that reconnects takes over its old session; the old connection's disconnect must not
 * mark it offline. Every change is an event in the device's history.
 */
export class PresenceTracker {
  private readonly live = new Map<number, Client>();
  private readonly reasons = new WeakMap<Client, OfflineReason>();
  /** Recent takeovers per device, and when a conflict was last reported. */
  private readonly takeovers = new Map<number, { at: number[]; reportedAt: number }>();
  /**
   * Each device's latest presence write: the next one waits for it, so a quick reconnect cannot
   * be stored before the disconnect it followed (PostgreSQL runs queries side by side).
   */
  private readonly writes = new Map<number, Promise<void>>();

  constructor(
    private readonly registry: DeviceRegistry,
    private readonly events: EventRecorder,
    private readonly clock: () => number = Date.now,
  ) {}

  /** Settles when the presence is stored; rejects when storing failed. */
  connected(deviceId: number, client: Client): Promise<void> {
    const previous = this.live.get(deviceId);
    if (previous && previous !== client) this.tookOver(deviceId);
    this.live.set(deviceId, client);
    const at = this.clock();
    return this.inOrder(deviceId, async () => {
      if (await this.registry.setPresence(deviceId, true, at, null)) {
        await this.events.record(deviceId, "DEVICE_ONLINE", "info", "connected");
      }
    });
  }

  private inOrder(deviceId: number, write: () => Promise<void>): Promise<void> {
    const next = (this.writes.get(deviceId) ?? Promise.resolve()).then(write);
    const settled = next.catch(() => undefined);
    this.writes.set(deviceId, settled);
    void settled.then(() => {
      if (this.writes.get(deviceId) === settled) this.writes.delete(deviceId);
    });
    return next;
  }

  /**
   * A new connection took the session of a live one. Now and then that is a reconnect racing its
   * own dead socket; several a minute means two gateways share one identity (AWS IoT Device
   * Defender's "conflicting client ids" audit), reported at most every 10 minutes.
   */
  private tookOver(deviceId: number): void {
    const now = this.clock();
    const entry = this.takeovers.get(deviceId) ?? { at: [], reportedAt: Number.NEGATIVE_INFINITY };
    entry.at = [...entry.at.filter((t) => now - t < CONFLICT_WINDOW_MS), now];
    this.takeovers.set(deviceId, entry);
    if (entry.at.length >= CONFLICT_TAKEOVERS && now - entry.reportedAt > CONFLICT_REPORT_EVERY_MS) {
      entry.reportedAt = now;
      noted(
        this.events.record(
          deviceId,
          "CLIENT_ID_CONFLICT",
          "warning",
          `${entry.at.length} connections took over this device's session within a minute: two gateways may share one certificate`,
        ),
      );
    }
  }

  /** Remembers why a connection is about to end, when the broker knows better than the socket. */
  markReason(client: Client, reason: OfflineReason): void {
    if (!this.reasons.has(client)) this.reasons.set(client, reason);
  }

  /** Settles when the presence is stored; rejects when storing failed. */
  async disconnected(deviceId: number, client: Client): Promise<void> {
    if (this.live.get(deviceId) !== client) return;
    this.live.delete(deviceId);
    // aedes sets _disconnected only for a valid DISCONNECT packet; otherwise it publishes the will.
    const clean = (client as unknown as { _disconnected?: boolean })._disconnected === true;
    const reason = this.reasons.get(client) ?? (clean ? "clean-disconnect" : "last-will");
    const at = this.clock();
    await this.inOrder(deviceId, async () => {
      // A deleted device has no row left to mark, nor a history to add to.
      if (!(await this.registry.setPresence(deviceId, false, at, reason))) return;
      const severity = reason === "clean-disconnect" ? "info" : "warning";
      await this.events.record(deviceId, "DEVICE_OFFLINE", severity, `offline: ${REASON_TEXT[reason]}`);
    });
  }

  /** Marks every live device offline and waits for every presence write still running. */
  async stop(): Promise<void> {
    const at = this.clock();
    for (const deviceId of this.live.keys()) {
      void this.inOrder(deviceId, async () => {
        if (await this.registry.setPresence(deviceId, false, at, "cloud-stopped")) {
          await this.events.record(deviceId, "DEVICE_OFFLINE", "info", `offline: ${REASON_TEXT["cloud-stopped"]}`);
        }
      }).catch(() => undefined);
    }
    this.live.clear();
    await Promise.all([...this.writes.values()]);
  }
}

/**
 * Presence changes are answered at once and their events stored meanwhile: a failure to store one
 * must not crash the broker (the device row already holds the presence), so it is dropped.
 */
function noted(recorded: Promise<void>): Promise<void> {
  return recorded.catch(() => undefined);
}

import type { Client } from "aedes";
import type { DeviceRegistry } from "../registry/device-registry.js";

/**
 * Online/offline and last seen, from the broker's connection events. A device that reconnects
 * takes over its old session; the old connection's disconnect must not mark it offline.
 */
export class PresenceTracker {
  private readonly live = new Map<number, Client>();

  constructor(
    private readonly registry: DeviceRegistry,
    private readonly clock: () => number = Date.now,
  ) {}

  connected(deviceId: number, client: Client): void {
    this.live.set(deviceId, client);
    this.registry.setPresence(deviceId, true, this.clock());
  }

  disconnected(deviceId: number, client: Client): void {
    if (this.live.get(deviceId) !== client) return;
    this.live.delete(deviceId);
    this.registry.setPresence(deviceId, false, this.clock());
  }

  stop(): void {
    for (const deviceId of this.live.keys()) this.registry.setPresence(deviceId, false, this.clock());
    this.live.clear();
  }
}

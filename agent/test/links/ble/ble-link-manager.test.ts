import { checkLinks, type Reading } from "@fieldgate/shared";
import { afterEach, describe, expect, it, vi } from "vitest";
import { bleLinkFactory } from "../../../src/links/ble/ble-link.js";
import { LinkManager } from "../../../src/links/link-manager.js";
import { memoryLogger } from "../../helpers/logger.js";
import { EmulatedAdapter } from "./emulated-adapter.js";

describe("BLE links under the link manager", () => {
  afterEach(() => vi.useRealTimers());

  it("builds BLE links from checked config, shares one noble, and stores readings with the link id", async () => {
    vi.useFakeTimers();
    const emulated = new EmulatedAdapter();
    for (const [address, name, value] of [
      ["aa:bb:cc:00:00:01", "Greenhouse", 87],
      ["aa:bb:cc:00:00:02", "Cellar", 42],
    ] as const)
      emulated.addPeripheral({
        address,
        localName: name,
        services: [{ uuid: "180f", characteristics: [{ uuid: "2a19", value: Buffer.from([value]) }] }],
      });
    let loads = 0;
    const stored: Reading[] = [];
    const { logger } = memoryLogger();
    const manager = new LinkManager({
      factories: {
        ble: bleLinkFactory({
          loadNoble: async () => {
            loads += 1;
            return emulated.noble();
          },
        }),
      },
      sink: {
        append: (rows) => {
          stored.push(...rows);
          return { appended: rows.length, dropped: 0 };
        },
      },
      logger,
    });
    const battery = (id: string, localName: string) => ({
      id,
      type: "ble",
      match: { localName },
      characteristics: [
        {
          service: "180F",
          characteristic: "00002a19-0000-1000-8000-00805f9b34fb",
          mode: "read",
          interval: "1s",
          decode: { type: "uint8", name: "battery", unit: "%" },
        },
      ],
    });
    await manager.apply(checkLinks([battery("greenhouse", "Greenhouse"), battery("cellar", "Cellar")]));
    await vi.advanceTimersByTimeAsync(2500);

    expect(loads).toBe(1);
    expect(manager.list().map((l) => [l.id, l.state])).toEqual([
      ["greenhouse", "connected"],
      ["cellar", "connected"],
    ]);
    expect(stored.find((r) => r.source === "greenhouse")).toMatchObject({ name: "battery", value: 87, unit: "%" });
    expect(stored.find((r) => r.source === "cellar")).toMatchObject({ name: "battery", value: 42, unit: "%" });

    const stopping = manager.stop();
    await vi.advanceTimersByTimeAsync(100);
    await stopping;
    emulated.close();
  });
});

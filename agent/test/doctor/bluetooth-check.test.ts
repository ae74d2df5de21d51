import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { checkBluetooth } from "../../src/doctor/bluetooth-check.js";
import { Doctor } from "../../src/doctor/doctor.js";
import { tempDir } from "../helpers/tmp.js";

describe("doctor: bluetooth", () => {
  it("says nothing when no enabled BLE link is configured", async () => {
    const probe = () => Promise.reject(new Error("must not be probed"));
    expect(await checkBluetooth([], { probe })).toBeUndefined();
    expect(await checkBluetooth([{ type: "serial" }, { type: "ble", enabled: false }], { probe })).toBeUndefined();
  });

  it("names the fix for what the adapter reports", async () => {
    const off = await checkBluetooth([{ type: "ble" }], {
      probe: async () => ({ state: "unavailable", reason: "the Bluetooth adapter is powered off (state poweredOff)" }),
    });
    expect(off).toMatchObject({
      check: "bluetooth",
      status: "fail",
      fix: expect.stringMatching(/bluetoothctl power on/),
    });
    const ok = await checkBluetooth([{ type: "ble" }, { type: "ble" }], { probe: async () => ({ state: "ready" }) });
    expect(ok).toEqual({
      check: "bluetooth",
      status: "ok",
      message: "the Bluetooth adapter is powered on (2 BLE links configured)",
    });
  });

  it("probes this host's real adapter", async () => {
    const importError = await import("@abandonware/noble").then(
      () => undefined,
      (err: NodeJS.ErrnoException) => err.code,
    );
    const result = await checkBluetooth([{ type: "ble" }], { timeoutMs: 2000 });
    if (importError === "EAFNOSUPPORT")
      expect(result).toMatchObject({
        status: "fail",
        message: expect.stringMatching(
          /^no Bluetooth adapter on this host \(EAFNOSUPPORT.*\(1 BLE link configured; they stay unavailable\)$/,
        ),
        fix: expect.stringMatching(/attach a Bluetooth adapter/),
      });
    else expect(result?.check).toBe("bluetooth"); // a host with an adapter: ok, or a precise failure
  });

  it("is one of the doctor's lines when the config has a BLE link", async () => {
    const tmp = tempDir();
    try {
      const file = join(tmp.dir, "agent.json");
      const ble = {
        id: "env",
        type: "ble",
        match: { localName: "EnvSensor" },
        characteristics: [
          { service: "180f", characteristic: "2a19", mode: "read", decode: { type: "uint8", name: "battery" } },
        ],
      };
      writeFileSync(
        file,
        JSON.stringify({
          uuid: "7f1c7a36-3d8b-4a39-9f51-2a1f4f1b8e01",
          dataDir: join(tmp.dir, "data"),
          cloud: { url: "https://127.0.0.1:9" }, // nothing listens: the network checks fail fast
          links: [ble],
        }),
      );
      const results = await new Doctor({ configFile: file, env: {}, timeoutMs: 1000 }).run();
      const bluetooth = results.find((r) => r.check === "bluetooth");
      expect(bluetooth?.message).toMatch(/\(1 BLE link configured/);
      expect(results.map((r) => r.check).slice(-2)).toEqual(["bluetooth", "disk"]);
    } finally {
      tmp.cleanup();
    }
  });
});

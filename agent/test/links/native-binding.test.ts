import { checkLinks, type LinkConfig } from "@fieldgate/shared";
import { afterEach, describe, expect, it } from "vitest";
import { eventually } from "../../../test/support/cloud-process.js";
import { checkBluetooth } from "../../src/doctor/bluetooth-check.js";
import { checkSerialDriver } from "../../src/doctor/serial-check.js";
import { BleAdapter } from "../../src/links/ble/ble-adapter.js";
import { bleLinkFactory } from "../../src/links/ble/ble-link.js";
import type { Link, LinkSink } from "../../src/links/link.js";
import { isNativeLoadFailure, nativeBindingReason, SERIAL_BINDING } from "../../src/links/native-binding.js";
import { SerialLink } from "../../src/links/serial/serial-link.js";
import { memoryLogger } from "../helpers/logger.js";

// What the loaders throw when a native addon has no compiled binding, or one that does not load.
const noPrebuild = new Error(
  "No native build was found for platform=linux arch=riscv64 runtime=node abi=115 uv=1 libc=glibc node=20.20.2\n    loaded from: /opt/agent/node_modules/@serialport/bindings-cpp",
);
const badElf = Object.assign(
  new Error(
    "/opt/agent/node_modules/@abandonware/bluetooth-hci-socket/lib/binding/bluetooth_hci_socket.node: invalid ELF header",
  ),
  { code: "ERR_DLOPEN_FAILED" },
);

const sink: LinkSink = { readings: () => {}, stateChanged: () => {} };
const links: Link[] = [];
afterEach(async () => {
  for (const link of links.splice(0)) await link.stop();
});

function link<T extends LinkConfig["type"]>(
  raw: { type: T } & Record<string, unknown>,
): Extract<LinkConfig, { type: T }> {
  return checkLinks([raw])[0] as Extract<LinkConfig, { type: T }>;
}

const serialConfig = link({
  type: "serial",
  id: "meter",
  path: "/dev/ttyUSB0",
  protocol: { type: "lines", format: "json" },
});
const bleConfig = link({
  type: "ble",
  id: "env",
  match: { localName: "EnvSensor" },
  characteristics: [{ service: "180f", characteristic: "2a19", mode: "read", decode: { type: "uint8", name: "b" } }],
});

describe("a missing native binding", () => {
  it("is told apart from other failures", () => {
    expect(isNativeLoadFailure(noPrebuild)).toBe(true);
    expect(isNativeLoadFailure(badElf)).toBe(true);
    expect(isNativeLoadFailure(Object.assign(new Error("Error: No such file or directory"), { code: "ENOENT" }))).toBe(
      false,
    );
    expect(nativeBindingReason(SERIAL_BINDING, new Error("Permission denied, cannot open /dev/ttyUSB0"))).toBe(
      undefined,
    );
  });

  it("makes a serial link unavailable, naming the feature and the build command, logged once", async () => {
    const { logger, lines } = memoryLogger();
    let loads = 0;
    const serial = new SerialLink(
      serialConfig,
      { sink, logger },
      {
        loadSerialPort: async () => {
          loads += 1;
          throw noPrebuild;
        },
        pathExists: () => true,
      },
    );
    links.push(serial);
    serial.start();
    const status = await eventually(() => (serial.status().state === "unavailable" ? serial.status() : undefined));
    expect(status.reason).toMatch(
      /^serial links are unavailable: the native binding @serialport\/bindings-cpp is missing or does not load on this host \(No native build was found for platform=linux arch=riscv64 .*\); fix: build it with `cd \S+\/node_modules\/@serialport\/bindings-cpp && npx node-gyp rebuild` \(needs python3, make and g\+\+\), then restart the agent$/,
    );
    expect(status.lastError).toMatchObject({ code: "LINK_DRIVER_UNAVAILABLE", message: status.reason });
    // It does not retry a load that cannot succeed before a restart, nor log it again.
    await new Promise((r) => setTimeout(r, 50));
    expect(loads).toBe(1);
    expect(lines.filter((l) => l.code === "LINK_DRIVER_UNAVAILABLE")).toHaveLength(1);
  });

  it("makes BLE links unavailable with the hci-socket build command", async () => {
    const { logger } = memoryLogger();
    const ble = bleLinkFactory({ loadNoble: () => Promise.reject(badElf) })(bleConfig, { sink, logger });
    links.push(ble);
    ble.start();
    const status = await eventually(() => (ble.status().state === "unavailable" ? ble.status() : undefined));
    expect(status.reason).toMatch(
      /^BLE links are unavailable: the native binding @abandonware\/bluetooth-hci-socket is missing or does not load on this host \(.*invalid ELF header\); fix: build it with `cd \S+\/node_modules\/@abandonware\/bluetooth-hci-socket && npx node-gyp rebuild`/,
    );
    expect(status.lastError?.code).toBe("LINK_BLE_UNAVAILABLE");
  });

  it("is a doctor failure whose fix is the build command, for serial and for BLE", async () => {
    const serial = await checkSerialDriver([serialConfig], { load: () => Promise.reject(noPrebuild) });
    expect(serial).toMatchObject({
      check: "serial",
      status: "fail",
      message: expect.stringMatching(
        /^serial links are unavailable: the native binding @serialport\/bindings-cpp .*\(1 serial link configured; they stay unavailable\)$/,
      ),
      fix: expect.stringMatching(/^build it with `cd \S+bindings-cpp && npx node-gyp rebuild`/),
    });
    const probe = async (timeoutMs: number) => {
      const adapter = new BleAdapter({ loadNoble: () => Promise.reject(badElf), log: memoryLogger().logger });
      try {
        return await adapter.probe(timeoutMs);
      } finally {
        adapter.stop();
      }
    };
    const bluetooth = await checkBluetooth([bleConfig], { probe });
    expect(bluetooth).toMatchObject({
      check: "bluetooth",
      status: "fail",
      message: expect.stringMatching(/^BLE links are unavailable: .*\(1 BLE link configured; they stay unavailable\)$/),
      fix: expect.stringMatching(/^build it with `cd \S+bluetooth-hci-socket && npx node-gyp rebuild`/),
    });
  });

  it("is not what this host has: serialport's real binding loads", async () => {
    expect(await checkSerialDriver([serialConfig])).toEqual({
      check: "serial",
      status: "ok",
      message: "the serial port driver loads (1 serial link configured)",
    });
  });
});

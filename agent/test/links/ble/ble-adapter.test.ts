import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { BleAdapter, type BleAvailability, describeLoadError } from "../../../src/links/ble/ble-adapter.js";
import { memoryLogger } from "../../helpers/logger.js";
import { EmulatedAdapter } from "./emulated-adapter.js";

describe("BleAdapter: one noble instance shared by every BLE link", () => {
  let emulated: EmulatedAdapter;
  let adapter: BleAdapter;

  beforeEach(() => vi.useFakeTimers());
  afterEach(() => {
    adapter.stop();
    emulated.close();
    vi.useRealTimers();
  });

  function start(options: ConstructorParameters<typeof EmulatedAdapter>[0] = {}) {
    emulated = new EmulatedAdapter(options);
    const { logger, lines } = memoryLogger();
    let loads = 0;
    adapter = new BleAdapter({
      loadNoble: async () => {
        loads += 1;
        return emulated.noble();
      },
      log: logger,
    });
    return { lines, loads: () => loads };
  }

  it("loads noble once, on first use, and scans only while a watch is open", async () => {
    const { loads } = start();
    emulated.addPeripheral({ address: "aa:bb:cc:00:00:01", localName: "A", services: [] });
    await vi.advanceTimersByTimeAsync(10);
    expect(loads()).toBe(0); // nothing asked for Bluetooth yet

    const seen: string[] = [];
    const closeA = adapter.watch(
      () => true,
      (p) => seen.push(`a:${p.advertisement.localName}`),
    );
    const closeB = adapter.watch(
      (p) => p.advertisement.localName === "B",
      () => seen.push("b"),
    );
    await vi.advanceTimersByTimeAsync(250);
    expect(loads()).toBe(1);
    expect(emulated.scanStarts).toBe(1);
    expect(seen).toEqual(["a:A", "a:A"]); // every advertisement, to the watches it matches

    // Closing and reopening at once: the late scanStop of the first stop must not confuse the state.
    closeA();
    closeB();
    const closeC = adapter.watch(
      () => true,
      () => {},
    );
    await vi.advanceTimersByTimeAsync(50);
    expect(emulated.scanning).toBe(true);
    closeC();
    await vi.advanceTimersByTimeAsync(3000);
    expect(emulated.scanning).toBe(false);
  });

  it("scans again when the adapter stops a scan by itself", async () => {
    start();
    adapter.watch(
      () => true,
      () => {},
    );
    await vi.advanceTimersByTimeAsync(50);
    emulated.stopScanning(); // the controller's own doing
    await vi.advanceTimersByTimeAsync(50);
    expect(emulated.scanning).toBe(false);
    await vi.advanceTimersByTimeAsync(1000);
    expect(emulated.scanning).toBe(true);
  });

  it("turns a bindings init failure (no permission) into unavailable with the fix", async () => {
    const err = Object.assign(new Error("EPERM, Operation not permitted"), { code: "EPERM" });
    start({ initError: err });
    const seen: BleAvailability[] = [];
    adapter.onAvailability((a) => seen.push(a));
    await vi.advanceTimersByTimeAsync(10);
    expect(seen.at(-1)).toEqual({
      state: "unavailable",
      reason:
        "no permission to use the Bluetooth adapter (EPERM); run the agent as root or grant node CAP_NET_RAW and CAP_NET_ADMIN",
    });
  });

  it("says why the driver could not load", () => {
    const err = (code: string, message = code) => Object.assign(new Error(message), { code });
    expect(describeLoadError(err("EAFNOSUPPORT", "EAFNOSUPPORT, Address family not supported by protocol"))).toBe(
      "no Bluetooth adapter on this host (EAFNOSUPPORT: the kernel offers no Bluetooth sockets)",
    );
    expect(describeLoadError(err("EACCES"))).toMatch(/^no permission .*\(EACCES\)/);
    expect(describeLoadError(err("ENODEV"))).toBe("no Bluetooth adapter on this host (ENODEV)");
    expect(describeLoadError(new Error("Cannot find module 'bluetooth-hci-socket'"))).toBe(
      "the Bluetooth driver could not start: Cannot find module 'bluetooth-hci-socket'",
    );
  });
});

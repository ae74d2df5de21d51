/**
 * The doctor's Bluetooth line, asked only when BLE links are configured: loads noble the way the
 * agent would and waits briefly for the adapter to settle, then names the fix for what it found.
 */
import { pino } from "pino";
import { BleAdapter, type BleAvailability, loadSystemNoble } from "../links/ble/ble-adapter.js";
import { splitFix } from "../links/native-binding.js";
import type { DoctorResult } from "./doctor-result.js";

export interface BluetoothCheckOptions {
  /** Default: the system's noble. */
  probe?: (timeoutMs: number) => Promise<BleAvailability>;
  timeoutMs?: number;
}

/** `undefined` when no enabled BLE link is configured: then Bluetooth does not matter. */
export async function checkBluetooth(
  links: readonly { type: string; enabled?: boolean }[],
  options: BluetoothCheckOptions = {},
): Promise<DoctorResult | undefined> {
  const count = links.filter((l) => l.type === "ble" && l.enabled !== false).length;
  if (count === 0) return undefined;
  const probe = options.probe ?? probeSystemAdapter;
  const availability = await probe(options.timeoutMs ?? 3000);
  const links_ = `${count} BLE link${count === 1 ? "" : "s"} configured`;
  switch (availability.state) {
    case "ready":
      return { check: "bluetooth", status: "ok", message: `the Bluetooth adapter is powered on (${links_})` };
    case "unavailable": {
      const { problem, fix } = splitFix(availability.reason);
      return {
        check: "bluetooth",
        status: "fail",
        message: `${problem} (${links_}; they stay unavailable)`,
        fix: fix ?? fixFor(problem),
      };
    }
    default:
      return {
        check: "bluetooth",
        status: "warning",
        message: `${"reason" in availability ? availability.reason : "the adapter did not answer"} (${links_})`,
        fix: "check the adapter with `bluetoothctl show`, then run doctor again",
      };
  }
}

async function probeSystemAdapter(timeoutMs: number): Promise<BleAvailability> {
  const adapter = new BleAdapter({ loadNoble: loadSystemNoble, log: pino({ level: "silent" }) });
  try {
    return await adapter.probe(timeoutMs);
  } finally {
    adapter.stop();
  }
}

function fixFor(reason: string): string {
  if (/permission/.test(reason))
    return "run the agent as root, or: sudo setcap cap_net_raw,cap_net_admin+eip $(readlink -f $(command -v node))";
  if (/powered off/.test(reason)) return "power the adapter on: bluetoothctl power on (or rfkill unblock bluetooth)";
  if (/does not support Bluetooth Low Energy/.test(reason))
    return "use a Bluetooth 4.0+ adapter, or pick another with NOBLE_HCI_DEVICE_ID";
  if (/in use/.test(reason)) return "stop the program holding the adapter, or give the agent another one";
  if (/no Bluetooth adapter/.test(reason))
    return "attach a Bluetooth adapter (and load the bluetooth/btusb kernel modules), or remove the BLE links";
  return "check the adapter with `bluetoothctl show` and the agent's log";
}

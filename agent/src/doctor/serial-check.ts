/**
 * The doctor's serial line, asked only when serial links are configured: loads serialport's
 * native binding the way a serial link would, and names the fix when it is missing.
 */

import { nativeBindingReason, SERIAL_BINDING, splitFix } from "../links/native-binding.js";
import type { SerialPortModule } from "../links/serial/serial-link.js";
import type { DoctorResult } from "./doctor-result.js";

export interface SerialCheckOptions {
  /** Default: `import("serialport")`. */
  load?: () => Promise<SerialPortModule>;
}

/** `undefined` when no enabled serial link is configured. */
export async function checkSerialDriver(
  links: readonly { type: string; enabled?: boolean }[],
  options: SerialCheckOptions = {},
): Promise<DoctorResult | undefined> {
  const count = links.filter((l) => l.type === "serial" && l.enabled !== false).length;
  if (count === 0) return undefined;
  const configured = `${count} serial link${count === 1 ? "" : "s"} configured`;
  try {
    await (options.load ?? (() => import("serialport")))();
    return { check: "serial", status: "ok", message: `the serial port driver loads (${configured})` };
  } catch (err) {
    const reason = nativeBindingReason(SERIAL_BINDING, err) ?? `the serial port driver does not load: ${String(err)}`;
    const { problem, fix } = splitFix(reason);
    return {
      check: "serial",
      status: "fail",
      message: `${problem} (${configured}; they stay unavailable)`,
      fix: fix ?? "reinstall the agent's dependencies, then restart the agent",
    };
  }
}

/**
 * Serial and BLE links run on native addons (docs/links.md, "Native bindings"). When an addon's
 * compiled binding is missing (no prebuilt one for this platform, an install script that did not
 * run) or does not load (built for another Node.js or libc), the link is `unavailable` with a
 * reason that names the feature, the package and the command that fixes it, instead of a bare
 * module-not-found message repeated on every retry.
 */
import { createRequire } from "node:module";
import { dirname } from "node:path";

/** A native addon a link feature needs. */
export interface NativeBinding {
  /** The package whose compiled binding is loaded, e.g. `@serialport/bindings-cpp`. */
  readonly pkg: string;
  /** What does not work without it, e.g. `serial links`. */
  readonly feature: string;
}

export const SERIAL_BINDING: NativeBinding = { pkg: "@serialport/bindings-cpp", feature: "serial links" };
export const BLUETOOTH_BINDING: NativeBinding = {
  pkg: "@abandonware/bluetooth-hci-socket",
  feature: "BLE links",
};

/** Whether `err` says a native binding is missing or cannot be loaded (not a runtime failure). */
export function isNativeLoadFailure(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const message = err instanceof Error ? err.message : String(err);
  if (code === "ERR_DLOPEN_FAILED") return true;
  // node-gyp-build (serialport) and node-pre-gyp (hci-socket) when no compiled binding exists.
  if (/No native build was found|Cannot find module .*\.node\b/.test(message)) return true;
  return code === "MODULE_NOT_FOUND" || code === "ERR_MODULE_NOT_FOUND";
}

/**
 * The reason a link shows when `binding` failed to load with `err`, or `undefined` when `err` is
 * something else. `resolveDir` finds the package's directory (a seam for tests).
 */
export function nativeBindingReason(
  binding: NativeBinding,
  err: unknown,
  resolveDir: (pkg: string) => string | undefined = packageDir,
): string | undefined {
  if (!isNativeLoadFailure(err)) return undefined;
  const detail = (err instanceof Error ? err.message : String(err)).split("\n")[0];
  const dir = resolveDir(binding.pkg);
  const fix = dir
    ? `build it with \`cd ${dir} && npx node-gyp rebuild\` (needs python3, make and g++), then restart the agent`
    : "install the agent's dependencies (`npm install` in its directory), then restart the agent";
  return `${binding.feature} are unavailable: the native binding ${binding.pkg} is missing or does not load on this host (${detail}); fix: ${fix}`;
}

/** Splits a reason from `nativeBindingReason` into the problem and its fix, for `doctor`. */
export function splitFix(reason: string): { problem: string; fix?: string } {
  const at = reason.lastIndexOf("; fix: ");
  return at < 0 ? { problem: reason } : { problem: reason.slice(0, at), fix: reason.slice(at + "; fix: ".length) };
}

function packageDir(pkg: string): string | undefined {
  try {
    return dirname(createRequire(import.meta.url).resolve(`${pkg}/package.json`));
  } catch {
    return undefined;
  }
}

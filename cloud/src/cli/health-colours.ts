import type { Device } from "@fieldgate/shared";

/** The word for a device's status, always shown: its health, or offline with the last health kept. */
export function statusWord(d: Pick<Device, "online" | "health">): string {
  const health = d.health ?? "unknown";
  return d.online ? health : `offline (last: ${health})`;
}

const ANSI: Record<string, string> = {
  ok: "\u001b[97m", // white
  warning: "\u001b[33m", // yellow
  critical: "\u001b[31m", // red
  offline: "\u001b[90m", // grey
  unknown: "\u001b[90m",
};
const RESET = "\u001b[0m";

const COLOUR_NAMES: Record<string, string> = {
  ok: "white",
  warning: "yellow",
  critical: "red",
  offline: "grey",
  unknown: "grey",
};

/** The status colour by name, for output without colour codes (a pipe, NO_COLOR, JSON readers). */
export function colourName(d: Pick<Device, "online" | "health">): string {
  return COLOUR_NAMES[d.online ? (d.health ?? "unknown") : "offline"] ?? "grey";
}

/** Whether to colour: only on a terminal, and never when NO_COLOR is set (no-color.org). */
export function useColour(stream: { isTTY?: boolean } = process.stdout, env: NodeJS.ProcessEnv = process.env): boolean {
  return stream.isTTY === true && env.NO_COLOR === undefined;
}

/** Paints an already padded cell in the colour of the device's status (Proficloud's white, yellow, red, grey). */
export function paintStatus(d: Pick<Device, "online" | "health">, text: string): string {
  const key = d.online ? (d.health ?? "unknown") : "offline";
  const code = ANSI[key];
  return code ? `${code}${text}${RESET}` : text;
}

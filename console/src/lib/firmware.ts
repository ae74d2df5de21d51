/** Firmware images as `GET /api/v1/firmware` lists them. */
export interface FirmwareImage {
  name: string;
  version: string;
  compatible: string[];
  size: number;
  sha256: string;
  minAgentVersion?: string;
  keyId: string;
  created: string;
  inUse: boolean;
}

/** 1.2 MB, 340 kB, 12 B: decimal units, as file managers show sizes. */
export function formatBytes(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`;
  const units = ["kB", "MB", "GB", "TB"];
  let value = bytes / 1000;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${value >= 100 ? value.toFixed(0) : value.toFixed(1)} ${units[unit]}`;
}

/** The fields an offline-signed manifest (`firmware sign-manifest`) fills in, or an error. */
export function manifestFields(
  text: string,
): { name: string; version: string; compatible: string; minAgentVersion: string } | { error: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { error: "The signed manifest is not JSON: choose the file `firmware sign-manifest` wrote." };
  }
  const manifest = (parsed as { manifest?: Record<string, unknown> } | null)?.manifest;
  if (!manifest || typeof manifest !== "object") {
    return { error: "The file has no manifest: choose the signed manifest `firmware sign-manifest` wrote." };
  }
  const text_ = (v: unknown) => (typeof v === "string" ? v : "");
  return {
    name: text_(manifest.name),
    version: text_(manifest.version),
    compatible: Array.isArray(manifest.compatible) ? manifest.compatible.map(String).join(",") : "",
    minAgentVersion: text_(manifest.minAgentVersion),
  };
}

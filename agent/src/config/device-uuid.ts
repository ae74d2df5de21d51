import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import { FieldgateError } from "@fieldgate/shared";

export const MACHINE_ID_FILE = "/etc/machine-id";
const UUID_CONTEXT = "fieldgate-agent-uuid";

/**
 * Derives a stable device uuid from a machine id: HMAC-SHA256(key = machine id trimmed,
 * data = "fieldgate-agent-uuid"), first 16 bytes, version nibble 8 (RFC 9562 custom) and
 * variant bits 10. The machine id is never revealed, since the HMAC is one-way.
 */
export function uuidFromMachineId(machineId: string): string {
  const b = createHmac("sha256", machineId.trim()).update(UUID_CONTEXT).digest().subarray(0, 16);
  b[6] = ((b[6] as number) & 0x0f) | 0x80;
  b[8] = ((b[8] as number) & 0x3f) | 0x80;
  const h = b.toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

/** Reads the machine id file and derives the uuid; `CONFIG_INVALID` on `uuid` if it cannot. */
export function deriveDeviceUuid(machineIdFile = MACHINE_ID_FILE): string {
  let text: string;
  try {
    text = readFileSync(machineIdFile, "utf8");
  } catch (err) {
    throw new FieldgateError(
      "CONFIG_INVALID",
      `is not set and ${machineIdFile} cannot be read (${(err as NodeJS.ErrnoException).code ?? "error"}); set uuid in the config or FIELDGATE_AGENT_UUID`,
      "uuid",
    );
  }
  if (text.trim().length === 0) {
    throw new FieldgateError("CONFIG_INVALID", `is not set and ${machineIdFile} is empty`, "uuid");
  }
  return uuidFromMachineId(text);
}

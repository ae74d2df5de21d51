/**
 * The topic map shared by agent and cloud. Every device topic lives under
 * `fieldgate/v1/{uuid}/`; the direction of each topic is fixed here and enforced by the broker.
 */
export const TOPIC_ROOT = "fieldgate/v1";

/** Topics a device publishes (device → cloud). */
export const DEVICE_TO_CLOUD = [
  "telemetry",
  "health",
  "logs",
  "state",
  "events",
  "config/reported",
  "presence",
  "time",
  "jobs/+/status",
] as const;

/**
 * Topics a device subscribes to (cloud → device). `telemetry/refused` tells the device that a batch
 * was acknowledged but refused (it would never be stored), before its PUBACK, so the device sets it aside.
 */
export const CLOUD_TO_DEVICE = ["jobs/notify", "config/desired", "commands/+", "telemetry/refused"] as const;

export type DeviceTopic =
  | { kind: "telemetry" }
  | { kind: "health" }
  | { kind: "logs" }
  | { kind: "state" }
  | { kind: "events" }
  | { kind: "config/reported" }
  | { kind: "presence" }
  | { kind: "time" }
  | { kind: "jobs/status"; jobId: string }
  | { kind: "jobs/notify" }
  | { kind: "telemetry/refused" }
  | { kind: "config/desired" }
  | { kind: "commands"; commandId: string };

export type DeviceTopicKind = DeviceTopic["kind"];

export const UUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";
const uuidRegex = new RegExp(UUID_PATTERN);
/** Job and command ids: a topic level, so no wildcards, slashes or `$`. */
const idRegex = /^[A-Za-z0-9_.:-]{1,64}$/;

export function isUuid(value: string): boolean {
  return uuidRegex.test(value);
}

/** Builds the topic string for a device; throws on a uuid or id that could escape its level. */
export function deviceTopic(uuid: string, topic: DeviceTopic): string {
  if (!isUuid(uuid)) throw new TypeError(`not a uuid: ${JSON.stringify(uuid)}`);
  const base = `${TOPIC_ROOT}/${uuid.toLowerCase()}`;
  switch (topic.kind) {
    case "jobs/status":
      assertId(topic.jobId);
      return `${base}/jobs/${topic.jobId}/status`;
    case "commands":
      assertId(topic.commandId);
      return `${base}/commands/${topic.commandId}`;
    default:
      return `${base}/${topic.kind}`;
  }
}

export interface ParsedTopic {
  uuid: string;
  topic: DeviceTopic;
  direction: "device-to-cloud" | "cloud-to-device";
}

/** Parses a concrete topic (no wildcards) back to its device and kind; `undefined` if it is not one of ours. */
export function parseDeviceTopic(topic: string): ParsedTopic | undefined {
  const parts = topic.split("/");
  if (parts.length < 4 || `${parts[0]}/${parts[1]}` !== TOPIC_ROOT) return undefined;
  const uuid = parts[2] ?? "";
  if (!isUuid(uuid) || uuid !== uuid.toLowerCase()) return undefined;
  const rest = parts.slice(3);
  const up = (t: DeviceTopic): ParsedTopic => ({ uuid, topic: t, direction: "device-to-cloud" });
  const down = (t: DeviceTopic): ParsedTopic => ({ uuid, topic: t, direction: "cloud-to-device" });
  const [a, b, c] = rest;
  if (rest.length === 1) {
    switch (a) {
      case "telemetry":
      case "health":
      case "logs":
      case "state":
      case "events":
      case "presence":
      case "time":
        return up({ kind: a });
    }
    return undefined;
  }
  if (rest.length === 2) {
    if (a === "config" && b === "reported") return up({ kind: "config/reported" });
    if (a === "config" && b === "desired") return down({ kind: "config/desired" });
    if (a === "jobs" && b === "notify") return down({ kind: "jobs/notify" });
    if (a === "telemetry" && b === "refused") return down({ kind: "telemetry/refused" });
    if (a === "commands" && b !== undefined && idRegex.test(b)) return down({ kind: "commands", commandId: b });
    return undefined;
  }
  if (rest.length === 3 && a === "jobs" && c === "status" && b !== undefined && idRegex.test(b) && b !== "notify") {
    return up({ kind: "jobs/status", jobId: b });
  }
  return undefined;
}

/** The subscription filters an agent needs: exactly its own cloud-to-device topics. */
export function deviceSubscriptions(uuid: string): string[] {
  return CLOUD_TO_DEVICE.map((t) => `${TOPIC_ROOT}/${uuid.toLowerCase()}/${t}`);
}

function assertId(id: string): void {
  if (!idRegex.test(id)) throw new TypeError(`not a valid topic id: ${JSON.stringify(id)}`);
}

import { parseDeviceTopic, TOPIC_ROOT } from "@fieldgate/shared";

/** The outcome of an ACL decision; `code` says why a request was refused. */
export type AclDecision = { allowed: true } | { allowed: false; code: "TOPIC_NOT_ALLOWED"; reason: string };

const ALLOW: AclDecision = { allowed: true };
const deny = (reason: string): AclDecision => ({ allowed: false, code: "TOPIC_NOT_ALLOWED", reason });

/** A device may publish only to its own device-to-cloud topics (never to `telemetry/refused`, the cloud's notice). */
export function authorizeDevicePublish(uuid: string, topic: string): AclDecision {
  if (topic.startsWith("$")) return deny("$-topics are reserved");
  if (topic.includes("+") || topic.includes("#")) return deny("wildcards are not allowed in a publish topic");
  const parsed = parseDeviceTopic(topic);
  if (!parsed || parsed.uuid !== uuid) return deny(`topic is outside ${TOPIC_ROOT}/${uuid}/`);
  if (parsed.direction !== "device-to-cloud") return deny("topic is cloud-to-device");
  return ALLOW;
}

/**
 * A device may subscribe only to its own cloud-to-device topics: each exactly, or `commands/+`.
 * No other wildcard is allowed, so no filter can reach another device, the whole tree or `$SYS`.
 */
export function authorizeDeviceSubscribe(uuid: string, filter: string): AclDecision {
  if (filter.startsWith("$")) return deny("$-topics are reserved");
  if (filter.includes("#")) return deny("multi-level wildcards are not allowed");
  const root = `${TOPIC_ROOT}/${uuid}/`;
  if (filter === `${root}commands/+`) return ALLOW;
  if (filter.includes("+")) return deny("single-level wildcards are allowed only in commands/+");
  const parsed = parseDeviceTopic(filter);
  if (!parsed || parsed.uuid !== uuid) return deny(`filter is outside ${root}`);
  if (parsed.direction !== "cloud-to-device") return deny("topic is device-to-cloud");
  return ALLOW;
}

/** Defence in depth: whatever was subscribed, a device receives only its own cloud-to-device messages. */
export function mayDeliverToDevice(uuid: string, topic: string): boolean {
  const parsed = parseDeviceTopic(topic);
  return parsed !== undefined && parsed.uuid === uuid && parsed.direction === "cloud-to-device";
}

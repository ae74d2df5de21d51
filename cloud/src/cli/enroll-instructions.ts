import os from "node:os";
import path from "node:path";
import type { DeviceWithToken } from "@fieldgate/shared";
import type { ApiClient } from "./api-client.js";

/** Where the printed command expects the agent's files on the gateway (the agent's defaults). */
export const GATEWAY_CA_FILE = "/etc/fieldgate/ca.crt";
export const GATEWAY_CONFIG_FILE = "/etc/fieldgate/agent.json";

const LOOPBACK = new Set(["localhost", "127.0.0.1", "[::1]", "::1"]);

/**
 * The gateway's enrollment command, ready to paste: the cloud URL the CLI used, with a loopback
 * name replaced by this host's name (which the server certificate always lists), the uuid, the
 * token, and the CA file, which the operator copies over first.
 */
export function enrollInstructions(result: DeviceWithToken, api: ApiClient): string[] {
  const url = new URL(api.url);
  const loopback = LOOPBACK.has(url.hostname);
  if (loopback) url.hostname = os.hostname();
  const cloud = url.origin;
  const command = [
    "fieldgate-agent enroll",
    `--cloud ${shellWord(cloud)}`,
    `--uuid ${result.device.uuid}`,
    `--token ${shellWord(result.enrollmentToken)}`,
    ...(api.caFile ? [`--ca-file ${GATEWAY_CA_FILE}`] : []),
    `--config ${GATEWAY_CONFIG_FILE}`,
  ].join(" ");
  const lines = ["on the gateway:"];
  if (api.caFile)
    lines.push(`  1. copy ${path.resolve(api.caFile)} from this host to ${GATEWAY_CA_FILE} on the gateway`);
  lines.push(`  ${api.caFile ? "2. " : ""}${command}`);
  if (loopback) {
    lines.push(
      `  (${cloud} is this host's name; if the gateway cannot resolve it, use a name or address given to \`serve --hostname\`)`,
    );
  }
  lines.push(
    `  enroll writes ${GATEWAY_CONFIG_FILE}; then start the agent: fieldgate-agent run --config ${GATEWAY_CONFIG_FILE}`,
  );
  return lines;
}

/** Quotes a word for a POSIX shell unless it is plainly safe. */
function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

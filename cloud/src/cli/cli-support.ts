import readline from "node:readline/promises";
import { FieldgateError } from "@fieldgate/shared";
import type { Command } from "commander";
import { ApiClient, type ConnectionOptions } from "./api-client.js";

/** Options every operator command understands. */
export interface OutputOptions extends ConnectionOptions {
  json?: boolean;
}

/** Adds --url/--credential/--token/--ca-file/--data-dir/--json to a command. */
export function withConnection(command: Command): Command {
  return command
    .option("--url <url>", "cloud API URL (env FIELDGATE_URL; default: the logged-in cloud, or the one on this host)")
    .option("--credential <id:secret>", "API credential (env FIELDGATE_CREDENTIAL)")
    .option("--token <token>", "session token from login (env FIELDGATE_TOKEN)")
    .option("--ca-file <file>", "CA certificate to trust (env FIELDGATE_CA_FILE; default: <data-dir>/pki/ca.crt)")
    .option("--data-dir <dir>", "the local cloud's data directory (env FIELDGATE_DATA_DIR; default ./data)")
    .option("--json", "print JSON instead of tables");
}

export const clientOf = (cmd: Command): ApiClient => ApiClient.fromOptions(cmd.optsWithGlobals<OutputOptions>());
export const wantsJson = (cmd: Command): boolean => cmd.optsWithGlobals<OutputOptions>().json === true;

/** Resolves a group given as an id or a name path ("plant-a/line-1") to its id. */
export async function groupId(client: ApiClient, ref: string): Promise<number> {
  if (/^\d+$/.test(ref)) return Number(ref);
  const { items } = await client.request<{ items: { id: number }[] }>(
    "GET",
    `/api/v1/groups?name=${encodeURIComponent(ref)}`,
  );
  const first = items[0];
  if (!first) throw new FieldgateError("GROUP_NOT_FOUND", `no group ${JSON.stringify(ref)} in your scope`, "group");
  return first.id;
}

/** Asks for confirmation on a terminal; refuses when not on one. */
export async function confirm(question: string, expected: string, flag = "yes"): Promise<void> {
  if (!process.stdin.isTTY) {
    throw new FieldgateError("VALIDATION_FAILED", `refusing without --${flag} when not on a terminal`, flag);
  }
  const rl = readline.createInterface({ input: process.stdin, output: process.stderr });
  const answer = (await rl.question(question)).trim();
  rl.close();
  if (answer !== expected) throw new FieldgateError("VALIDATION_FAILED", "not confirmed; nothing was changed", flag);
}

/** Reads a secret from stdin (piped) or from the terminal without echoing it. */
export async function readSecret(prompt: string): Promise<string> {
  if (!process.stdin.isTTY) {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks)
      .toString("utf8")
      .replace(/\r?\n$/, "");
  }
  process.stderr.write(prompt);
  const rl = readline.createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  // Echo nothing while the secret is typed.
  (rl as unknown as { _writeToOutput: (s: string) => void })._writeToOutput = () => {};
  const answer = await rl.question("");
  rl.close();
  process.stderr.write("\n");
  return answer;
}

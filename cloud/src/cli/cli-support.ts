import fs from "node:fs";
import readline from "node:readline/promises";
import { FieldgateError } from "@fieldgate/shared";
import type { Command } from "commander";
import { ApiClient, type ConnectionOptions } from "./api-client.js";

/** Where the operator CLI reads and writes; `main.ts` passes the process's, tests their own. */
export interface CliIo {
  /** One line of output. */
  out: (text: string) => void;
  /** One line for the operator on stderr: errors, prompts' context. */
  err: (text: string) => void;
  env: NodeJS.ProcessEnv;
  /** Streamed output (exports), written as it arrives. */
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  /** Prompts and progress bars. */
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  /** Secrets piped in, and answers to confirmations on a terminal. */
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
}

/** Options every operator command understands. */
export interface OutputOptions extends ConnectionOptions {
  json?: boolean;
}

/** Thrown by a command that printed its own report and only needs a non-zero exit (a bulk row failed). */
export class ExitCode extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

/** The connection flags, also accepted in front of the subcommand (`fieldgate-cloud --url U devices list`). */
export function withConnection(command: Command): Command {
  return command
    .option("--url <url>", "cloud API URL (env FIELDGATE_URL; default: the logged-in cloud, or the one on this host)")
    .option("--credential <id:secret>", "API credential (env FIELDGATE_CREDENTIAL)")
    .option("--token <token>", "session token from login (env FIELDGATE_TOKEN)")
    .option("--ca-file <file>", "CA certificate to trust (env FIELDGATE_CA_FILE; default: <data-dir>/pki/ca.crt)")
    .option("--data-dir <dir>", "the local cloud's data directory (env FIELDGATE_DATA_DIR; default ./data)")
    .option("--json", "print JSON instead of tables");
}

/** `clientOf(cmd)`: an API client from the command's flags and the io's environment. */
export const clientFor =
  (io: Pick<CliIo, "env">) =>
  (cmd: Command): ApiClient =>
    ApiClient.fromOptions(cmd.optsWithGlobals<OutputOptions>(), io.env);
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
export async function confirm(io: CliIo, question: string, expected: string, flag = "yes"): Promise<void> {
  if (!io.stdin.isTTY) {
    throw new FieldgateError("VALIDATION_FAILED", `refusing without --${flag} when not on a terminal`, flag);
  }
  const rl = readline.createInterface({ input: io.stdin, output: io.stderr });
  const answer = (await rl.question(question)).trim();
  rl.close();
  if (answer !== expected) throw new FieldgateError("VALIDATION_FAILED", "not confirmed; nothing was changed", flag);
}

/** Reads a secret from stdin (piped) or from the terminal without echoing it. */
export async function readSecret(io: CliIo, prompt: string): Promise<string> {
  if (!io.stdin.isTTY) {
    const chunks: Buffer[] = [];
    for await (const chunk of io.stdin) chunks.push(Buffer.from(chunk));
    return Buffer.concat(chunks)
      .toString("utf8")
      .replace(/\r?\n$/, "");
  }
  io.stderr.write(prompt);
  const rl = readline.createInterface({ input: io.stdin, output: io.stderr, terminal: true });
  // Echo nothing while the secret is typed.
  (rl as unknown as { _writeToOutput: (s: string) => void })._writeToOutput = () => {};
  const answer = await rl.question("");
  rl.close();
  io.stderr.write("\n");
  return answer;
}

/** Reads a file a flag names; a missing or unreadable one is CONFIG_INVALID naming the flag, not a stack trace. */
export function readFlagFile(file: string, flag: string, expected: string): string {
  try {
    return fs.readFileSync(file, "utf8");
  } catch (err) {
    throw new FieldgateError(
      "CONFIG_INVALID",
      `--${flag} ${JSON.stringify(file)}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); expected ${expected}`,
      flag,
    );
  }
}

/** Writes a file a flag names (`--out`); a missing directory is CONFIG_INVALID naming the flag. */
export function writeFlagFile(file: string, flag: string, text: string, mode = 0o644): void {
  try {
    fs.writeFileSync(file, text, { mode });
  } catch (err) {
    throw new FieldgateError(
      "CONFIG_INVALID",
      `--${flag} ${JSON.stringify(file)}: cannot write it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); expected a file path in an existing, writable directory`,
      flag,
    );
  }
}

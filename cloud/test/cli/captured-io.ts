import { PassThrough, Readable } from "node:stream";
import type { CliIo } from "../../src/cli/cli-support.js";

/** A CliIo that records every line and streamed chunk; stdin is empty and not a terminal. */
export function capturedIo(env: NodeJS.ProcessEnv = {}): { io: CliIo; out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  const stdout = new PassThrough();
  stdout.on("data", (c: Buffer) => out.push(c.toString()));
  const io: CliIo = {
    out: (t) => void out.push(t),
    err: (t) => void err.push(t),
    env,
    stdout,
    stderr: new PassThrough(),
    stdin: Readable.from([]),
  };
  return { io, out, err };
}

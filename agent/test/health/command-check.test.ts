import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CommandCheck } from "../../src/health/command-check.js";
import { tempDir } from "../helpers/tmp.js";

const tmp = tempDir("fieldgate-cmdcheck-");
afterAll(() => tmp.cleanup());

let n = 0;
/** A real executable shell script in the temp dir. */
function script(body: string): string {
  const file = join(tmp.dir, `check-${++n}.sh`);
  writeFileSync(file, `#!/bin/sh\n${body}\n`);
  chmodSync(file, 0o755);
  return file;
}

const check = (command: string[], timeoutMs = 5_000) =>
  new CommandCheck({ name: "command.test", command, intervalMs: 60_000, timeoutMs });

describe("CommandCheck (Nagios plugin exit codes)", () => {
  it.each([
    [0, "ok"],
    [1, "warning"],
    [2, "critical"],
    [3, "unknown"],
    [4, "unknown"],
    [127, "unknown"],
  ] as const)("exit %i is %s, with the first output line as the message", async (code, status) => {
    const file = script(`echo "disk fine"; echo "second line"; exit ${code}`);
    const result = await check([file]).run();
    expect(result.name).toBe("command.test");
    expect(result.status).toBe(status);
    expect(result.message).toBe(code <= 3 ? "disk fine" : `exit code ${code}: disk fine`);
  });

  it("cuts Nagios performance data and trims the line", async () => {
    const result = await check([script(`echo "  DISK WARNING - 12% free | free=12%;15;5  "; exit 1`)]).run();
    expect(result).toEqual({ name: "command.test", status: "warning", message: "DISK WARNING - 12% free" });
  });

  it("passes arguments without a shell", async () => {
    const result = await check([script('echo "$1 and $2"; exit 0'), "a b", "$HOME;rm -rf /"]).run();
    expect(result.message).toBe("a b and $HOME;rm -rf /");
  });

  it("keeps at most 1024 characters of the message", async () => {
    const result = await check([script(`printf '%02000d\\n' 0; exit 2`)]).run();
    expect(result.status).toBe("critical");
    expect(result.message.length).toBe(1024);
  });

  it("says the exit code when the command prints nothing", async () => {
    expect(await check([script("exit 2")]).run()).toEqual({
      name: "command.test",
      status: "critical",
      message: "exit code 2",
    });
  });

  it("is unknown when it runs past its timeout, and kills what the script started", async () => {
    const marker = join(tmp.dir, "survived");
    const started = Date.now();
    const result = await check([script(`echo "starting"; sleep 5; touch ${marker}; exit 0`)], 300).run();
    expect(result).toEqual({ name: "command.test", status: "unknown", message: "timed out after 300ms" });
    expect(Date.now() - started).toBeLessThan(2_000);
    await new Promise((r) => setTimeout(r, 200));
    const { existsSync } = await import("node:fs");
    expect(existsSync(marker)).toBe(false);
  });

  it("is unknown when the program cannot be started", async () => {
    const result = await check([join(tmp.dir, "does-not-exist")]).run();
    expect(result.status).toBe("unknown");
    expect(result.message).toMatch(/^cannot run .*does-not-exist: .*ENOENT/);
  });

  it("is unknown when the command is killed by a signal", async () => {
    const result = await check([script("kill -TERM $$")]).run();
    expect(result).toMatchObject({ status: "unknown", message: "killed by SIGTERM" });
  });
});

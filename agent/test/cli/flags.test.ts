import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Command, Option } from "commander";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildProgram } from "../../src/cli/program.js";
import { resolveSimOptions, type SimFlags } from "../../src/sim/sim-options.js";
import { buildSimProgram } from "../../src/sim/sim-program.js";
import { createTestPki } from "../helpers/pki.js";
import { tempDir } from "../helpers/tmp.js";

const UUID = "0f1e2d3c-4b5a-4968-8776-655443322110";
const DOCUMENTED = new Set(
  [
    ...readFileSync(new URL("../../../docs/error-codes.md", import.meta.url), "utf8").matchAll(/`([A-Z][A-Z0-9_]+)`/g),
  ].map((m) => m[1]),
);
const STACK = /^\s+at .+[(:]\d+/m;

/** Every leaf command with the options that take a value, from the commander program itself. */
function valueFlags(program: Command): { command: string; flag: string }[] {
  const walk = (cmd: Command, prefix: string[]): { command: string; flag: string }[] => {
    const path = [...prefix, cmd.name()];
    const own = cmd.options
      .filter((o: Option) => o.required || o.optional)
      .map((o: Option) => ({ command: path.slice(1).join(" "), flag: o.long as string }));
    return [...own, ...cmd.commands.flatMap((c) => walk(c, path))];
  };
  return walk(program, []);
}

describe("no flag value produces a stack trace: each is CONFIG_INVALID naming the flag", () => {
  const tmp = tempDir();
  const dir = join(tmp.dir, "a-directory");
  const file = (name: string, text: string) => {
    const path = join(tmp.dir, name);
    writeFileSync(path, text);
    return path;
  };
  let files: Record<string, string>;
  beforeAll(async () => {
    const { mkdirSync } = await import("node:fs");
    mkdirSync(dir);
    files = {
      ca: file("ca.crt", (await createTestPki()).caPem),
      notCert: file("not-a-cert.crt", "hello\n"),
      badJson: file("bad.json", '{ "uuid": '),
      aFile: file("plain-file", "x"),
    };
  });
  afterAll(() => tmp.cleanup());

  /** Malformed values per `command --flag`; a flag missing here fails the completeness test below. */
  const cases = (): Record<string, string[]> => {
    const config = ["", join(tmp.dir, "none.json"), dir, files.badJson as string];
    const dataDir = ["", files.aFile as string];
    return {
      "run --config": config,
      "run --log-format": ["fancy", ""],
      "enroll --cloud": ["http://cloud.example:8443", "localhost:9443", "https://", "not a url", ""],
      "enroll --uuid": ["nope", "0f1e2d3c4b5a49688776655443322110", ""],
      "enroll --token": ["", "two words", "x".repeat(300)],
      "enroll --ca-file": ["", files.notCert as string, join(tmp.dir, "none.crt")],
      "enroll --data-dir": dataDir,
      "enroll --config": ["", dir, files.badJson as string],
      "status --config": config,
      "status --data-dir": dataDir,
      "links --config": config,
      "links --data-dir": dataDir,
      "doctor --config": [""],
      "reset --config": config,
      "reset --data-dir": dataDir,
      "factory-key generate --out": ["", dir, join(tmp.dir, "no-such-dir", "factory.key")],
    };
  };
  /** Valid values for the other flags a command needs, so the error is about the flag under test. */
  const others = (command: string, flag: string): string[] => {
    const valid: Record<string, Record<string, string>> = {
      enroll: {
        "--cloud": "https://127.0.0.1:1",
        "--uuid": UUID,
        "--token": "fgt_example",
        "--ca-file": files.ca as string,
        "--data-dir": join(tmp.dir, "data"),
        "--config": join(tmp.dir, "written.json"),
      },
    };
    const extra = command === "reset" ? ["--yes"] : [];
    return [...extra, ...Object.entries(valid[command] ?? {}).flatMap(([f, v]) => (f === flag ? [] : [f, v]))];
  };

  const io = () => {
    const out: string[] = [];
    const err: string[] = [];
    const program = buildProgram({
      out: (t) => out.push(t),
      err: (t) => err.push(t),
      env: {},
      waitForStop: async () => "SIGTERM",
    });
    return { program, out, err };
  };

  it("has malformed values for every flag of every fieldgate-agent command", () => {
    const declared = valueFlags(io().program.program).map((f) => `${f.command} ${f.flag}`);
    expect(declared.sort()).toEqual(Object.keys(cases()).sort());
  });

  it("fieldgate-agent: each malformed value exits 2 with `error CONFIG_INVALID: --flag: …` and the value", async () => {
    for (const [key, values] of Object.entries(cases())) {
      const [command, flag] = [key.slice(0, key.lastIndexOf(" ")), key.slice(key.lastIndexOf(" ") + 1)];
      for (const value of values) {
        const c = io();
        const argv = [...command.split(" "), flag, value, ...others(command, flag)];
        const code = await c.program.run(argv);
        const text = [...c.out, ...c.err].join("\n");
        const what = `${argv.join(" ")}\n${text}`;
        expect(text, what).not.toMatch(STACK);
        expect(text, what).not.toContain("error INTERNAL");
        expect(code, what).toBe(2);
        const [, errorCode, field] = /^error ([A-Z_]+): (--[a-z-]+):/m.exec(text) ?? [];
        expect(errorCode, what).toBe("CONFIG_INVALID");
        expect(DOCUMENTED.has(errorCode), what).toBe(true);
        expect(field, what).toBe(flag);
        // The value is shown, except a token's, which is a secret.
        if (flag !== "--token" && value !== "") expect(text, what).toContain(value);
        if (flag === "--token") expect(text, what).not.toContain(value.slice(0, 20) || "\0");
      }
    }
  });

  it("doctor reports a config file it cannot use as a failed check with the code, exit 1", async () => {
    for (const value of [join(tmp.dir, "none.json"), dir, files.badJson as string]) {
      const c = io();
      expect(await c.program.run(["doctor", "--config", value]), value).toBe(1);
      const text = c.out.join("\n");
      expect(text).not.toMatch(STACK);
      expect(text).toMatch(/^FAIL\s+config\s+CONFIG_INVALID: /m);
      expect(text).toContain(value);
    }
  });

  it("docs/cli.md lists every flag of every fieldgate-agent command in that command's row", () => {
    const docs = readFileSync(new URL("../../../docs/cli.md", import.meta.url), "utf8");
    const section = docs.slice(docs.indexOf("## fieldgate-agent"), docs.indexOf("## fieldgate-sim"));
    const flags = valueFlags(io().program.program);
    for (const cmd of io().program.program.commands.flatMap((c) =>
      c.commands.length ? c.commands.map((s) => `${c.name()} ${s.name()}`) : [c.name()],
    )) {
      const row = section
        .split("\n")
        .find((l) => l.startsWith(`| \`fieldgate-agent ${cmd} `) || l.startsWith(`| \`fieldgate-agent ${cmd}\``));
      expect(row, `docs/cli.md has no row for fieldgate-agent ${cmd}`).toBeDefined();
      for (const f of flags.filter((x) => x.command === cmd)) expect(row, `${cmd} ${f.flag}`).toContain(f.flag);
    }
    const sim = docs.slice(docs.indexOf("## fieldgate-sim"));
    for (const f of valueFlags(buildSimProgram())) expect(sim, `fieldgate-sim ${f.flag}`).toContain(f.flag);
  });

  describe("fieldgate-sim", () => {
    const simCases = (): Record<string, string[]> => ({
      "--url": ["http://localhost:8443", "localhost:8443", "https://h/path"],
      "--ca-file": [files.notCert as string, join(tmp.dir, "none.crt")],
      "--credential": ["no-colon"],
      "--cloud-data-dir": [join(tmp.dir, "no-cloud-here")],
      "--fleet-dir": ["", files.aFile as string],
      "--devices": ["many", "0", "1.5", ""],
      "--rate": ["fast", "-1"],
      "--batch": ["0", "big"],
      "--max-in-flight": ["0"],
      "--type": [""],
      "--fail-updates": ["lots", "150%"],
      "--kill-downloads": ["-5%"],
      "--duration": ["forever", ""],
      "--backlog": ["-1"],
      "--expect-jobs": ["some"],
      "--concurrency": ["0"],
      "--drain-timeout": ["later"],
      "--progress-interval": ["often"],
      "--log-level": ["loud"],
    });

    it("has malformed values for every flag", () => {
      const declared = valueFlags(buildSimProgram()).map((f) => f.flag);
      expect(declared.sort()).toEqual(Object.keys(simCases()).sort());
    });

    it("each malformed value is CONFIG_INVALID naming the flag and the value", () => {
      for (const [flag, values] of Object.entries(simCases())) {
        for (const value of values) {
          const base = flag === "--url" || flag === "--cloud-data-dir" ? [] : ["--url", "https://localhost:8443"];
          const ca = flag === "--ca-file" ? [] : ["--ca-file", files.ca as string];
          const argv = [...base, ...ca, flag, value];
          const program = buildSimProgram();
          program.parse(argv, { from: "user" });
          const what = argv.join(" ");
          let error: unknown;
          try {
            resolveSimOptions(program.opts<SimFlags>(), {});
          } catch (err) {
            error = err;
          }
          expect(error, what).toMatchObject({ code: "CONFIG_INVALID", field: flag.slice(2) });
          const message = (error as Error).message;
          if (flag !== "--credential") expect(message, what).toContain(JSON.stringify(value));
          expect(message, what).toMatch(/expected /);
        }
      }
    });
  });
});

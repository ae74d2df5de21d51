import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { ERROR_CODES } from "@fieldgate/shared";
import type { Command, Option } from "commander";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CloudProcess, cloudBin, startCloud, tempDir } from "../../../test/support/cloud-process.js";
import { newUuid } from "../../../test/support/device-identity.js";
import { allCommands, buildProgram, commandPath } from "../../src/cli/program.js";
import { capturedIo } from "./captured-io.js";

/**
 * Every command of fieldgate-cloud, with a malformed value for each of its flags: the answer is
 * always a documented error code, never a stack trace or INTERNAL. The commands and flags come
 * from the commander program, so a new flag without a malformed case below fails this test.
 */

const tmp = tempDir("cli-flags");
const textFile = path.join(tmp, "not-a-certificate.txt");
const missing = path.join(tmp, "missing", "file");
const underAFile = path.join(textFile, "sub");
const csv = path.join(tmp, "devices.csv");
const image = path.join(tmp, "image.bin");

/** Malformed values by flag: wrong shape, wrong range, a file that is missing or not what is expected. */
const MALFORMED: Record<string, string[]> = {
  "--url": ["http://127.0.0.1:9", "localhost:9443", "not a url", "https://"],
  "--credential": ["no-colon", "id: secret"],
  "--token": ["two words"],
  "--ca-file": [missing, textFile],
  "--data-dir": [underAFile],
  "--host": ["not a host!"],
  "--http-port": ["http", "70000", "-1"],
  "--mqtt-port": ["mqtt", "70000"],
  "--hostname": ["bad name!"],
  "--enroll-window": ["soon", "0s"],
  "--cert-lifetime": ["forever"],
  "--mqtt-url": ["http://x:1"],
  "--log-level": ["loud"],
  "--log-format": ["fancy"],
  "--keepalive-unit": ["minute"],
  "--keepalive-check": ["2h"],
  "--log-retention": ["week"],
  "--telemetry-retention": ["forever"],
  "--job-timeout": ["0"],
  "--rollout-tick": ["5m"],
  "--tls-handshake-timeout": ["soon", "0s"],
  "--max-pending-connections": ["many", "0"],
  "--mqtt-connect-timeout": ["1h"],
  "--mqtt-max-packet-size": ["huge", "512"],
  "--http-headers-timeout": ["2h"],
  "--http-request-timeout": ["never"],
  "--http-keepalive-timeout": ["0"],
  "--auth-failure-limit": ["none", "0"],
  "--auth-failure-window": ["10ms"],
  "--login-delay": ["10ms", "2m"],
  "--database": ["mysql://db/fieldgate", "postgres://fg:pw@127.0.0.1:1", "not a url"],
  "--firmware-dir": [underAFile],
  "--firmware-max-size": ["big", "1TB"],
  "--firmware-signing-key": [textFile, underAFile],
  "--group": ["no/such/group", "-1"],
  "--type": ["no-such-type"],
  "--name": ["x".repeat(300)],
  "--location": ["x".repeat(2000)],
  "--comment": ["x".repeat(5000)],
  "--tag": ["bad tag!", ""],
  "--add-tag": ["bad tag!", "x".repeat(65)],
  "--remove-tag": ["bad tag!", ""],
  "--factory-key-file": [missing, textFile],
  "--uuid": ["not-hex!"],
  "--status": ["purple"],
  "--last-seen-from": ["yesterday"],
  "--last-seen-to": ["2026-13-45"],
  "--firmware": ["no-at-sign", "@"],
  "--query": ["x".repeat(2000), "=&&="],
  "--sort": ["colour", "--name"],
  "--limit": ["abc", "-1", "100000"],
  "--offset": ["-5", "x"],
  "--columns": ["uuid,colour", "a,b,c,d,e,f,g,h,i"],
  "--format": ["xml"],
  "--from": ["yesterday"],
  "--to": ["2026-13-45", "no/such/group"],
  "--source": ["x".repeat(300)],
  "--name-prefix": ["bad prefix!"],
  "--out": [underAFile],
  "--mode": ["some"],
  "--to-group": ["no/such/group"],
  "--to-type": ["no-such-type"],
  "--level": ["loud"],
  "--since": ["ages ago"],
  "--until": ["tomorrowish"],
  "--forward-level": ["loud"],
  "--max-lines-per-second": ["fast", "-3"],
  "--file": [missing, textFile],
  "--parent": ["no/such/group"],
  "--description": ["x".repeat(5000)],
  "--timezone": ["Mars/Olympus"],
  "--keepalive": ["soon", "-1"],
  "--firmware-compat": ["bad compat!"],
  "--role": ["wizard", "no-equals"],
  "--email": ["not-an-email"],
  "--key-file": [underAFile],
  "--version": ["one", "1.2"],
  "--compatible": [",,", ""],
  "--min-agent-version": ["latest"],
  "--manifest": [missing, textFile],
  "--key": [missing, textFile],
  "--signature": [missing, textFile],
  "--public-key": [missing, textFile],
  "--devices": [",", "not-a-uuid"],
  "--phases": ["half", "200%"],
  "--success-threshold": ["most", "150%"],
  "--failure-threshold": ["-1%"],
  "--rate": ["fast", "5/fortnight"],
  "--maintenance-window": ["sometimes"],
  "--timeout": ["never"],
  "--retries": ["many", "-1"],
  "--uuid-only-enrollment": ["maybe"],
};

const device = newUuid();
/** Positional arguments by name: real objects where that reaches deeper checks, harmless where not. */
const ARGUMENTS: Record<string, (cmd: string) => string> = {
  uuid: () => device,
  file: (cmd) => (cmd.includes("firmware") ? image : csv),
  jobId: () => "1",
  name: () => "fuzz-new",
  group: () => "fuzz",
  type: () => "fuzz-type",
  id: () => "1",
  email: () => "fuzz-new@example.com",
  user: () => "fuzz@example.com",
  "name@version": () => "fuzz@1.0.0",
};

/** Values for required flags and for flags that keep a run harmless (a dry run writes nothing). */
const BASE: Record<string, string[]> = {
  "devices import": ["--dry-run"],
  "devices bulk-edit": ["--dry-run"],
  "devices transfer": ["--dry-run", "--to-group", "fuzz"],
  "devices replace": ["--dry-run"],
  "devices bulk-delete": ["--dry-run"],
  "devices update": ["--firmware", "fuzz@1.0.0"],
  "firmware sign-manifest": ["--manifest", missing, "--key", missing],
  "firmware verify-manifest": ["--manifest", missing, "--public-key", missing],
  "credentials create": ["--name", "fuzz", "--role", "viewer"],
  "rollouts create": ["--firmware", "fuzz@1.0.0", "--tag", "fuzz"],
  "groups move": ["--to", "fuzz"],
  login: ["--email", "fuzz@example.com"],
  "org set": ["--uuid-only-enrollment", "off"],
  // A directory without a database, and a target nothing listens on: nothing is ever copied.
  migrate: ["--from", tmp, "--to", "postgres://fieldgate@127.0.0.1:1/fieldgate"],
};

interface Case {
  command: string;
  argv: string[];
}

/** The flag's cases: each malformed value, or for a switch a value it does not take. */
function casesFor(option: Option): string[][] {
  const long = option.long ?? "";
  if (!option.required && !option.optional) return [[`${long}=oops`]];
  return (MALFORMED[long] ?? []).map((value) => [long, value]);
}

function allCases(root: Command): Case[] {
  const cases: Case[] = [];
  for (const cmd of allCommands(root)) {
    if (cmd.commands.length > 0) continue;
    const name = commandPath(cmd).replace(/^fieldgate-cloud ?/, "");
    const words = name.split(" ");
    const positional = cmd.registeredArguments.filter((a) => a.required).map((a) => ARGUMENTS[a.name()]?.(name) ?? "x");
    const base = BASE[name] ?? [];
    for (const option of cmd.options) {
      if (option.long === "--help") continue;
      const without = dropFlag(base, option.long ?? "");
      for (const flag of casesFor(option))
        cases.push({ command: name, argv: [...words, ...positional, ...without, ...flag] });
    }
    // Each argument malformed in turn, the others as above.
    positional.forEach((_, i) => {
      for (const value of MALFORMED_ARGUMENT) {
        const args = positional.map((a, j) => (j === i ? value : a));
        cases.push({ command: name, argv: [...words, ...args, ...base] });
      }
    });
  }
  return cases;
}

/** Malformed positional values: empty, a path escape, a lone escape character, far too long. */
const MALFORMED_ARGUMENT = ["", "../../x", "%", "x".repeat(3000)];

function dropFlag(argv: string[], long: string): string[] {
  const i = argv.indexOf(long);
  if (i < 0) return argv;
  const takesValue = i + 1 < argv.length && !argv[i + 1]?.startsWith("--");
  return [...argv.slice(0, i), ...argv.slice(i + (takesValue ? 2 : 1))];
}

const STACK = /\n\s+at |^\s+at .+:\d+:\d+\)?$/m;

/** What is wrong with an answer: a stack trace, INTERNAL, an undocumented code, a failure without a code. */
function problemsOf(what: string, code: number, stderr: string, stdout = ""): string[] {
  const problems: string[] = [];
  if (STACK.test(stderr)) problems.push(`${what}: a stack trace:\n${stderr}`);
  if (stderr.includes("error INTERNAL")) problems.push(`${what}: ${stderr}`);
  if (![0, 1, 2].includes(code)) problems.push(`${what}: exit ${code}`);
  const codes = [...stderr.matchAll(/^error ([A-Z_]+):/gm)].map((m) => m[1] ?? "");
  for (const c of codes) if (!(c in ERROR_CODES)) problems.push(`${what}: undocumented code ${c}`);
  // A bulk report lists each failed row with its code on stdout, and exits 1.
  const reported = [...stdout.matchAll(/\b([A-Z][A-Z_]{3,})\b/g)].some((m) => (m[1] ?? "") in ERROR_CODES);
  if (code !== 0 && codes.length === 0 && !reported)
    problems.push(`${what}: exit ${code} without an error line: ${stderr}`);
  return problems;
}

describe("fieldgate-cloud: a malformed value for any flag of any command", () => {
  let cloud: CloudProcess;
  let env: NodeJS.ProcessEnv;
  beforeAll(async () => {
    fs.writeFileSync(textFile, "just text\n");
    fs.writeFileSync(csv, `uuid,name\n${newUuid()},fuzz-csv\n`);
    fs.writeFileSync(image, Buffer.alloc(64, 1));
    cloud = await startCloud({ args: ["--firmware-dir", path.join(tmp, "store")] });
    const group = await cloud.api<{ id: number }>("POST", "/api/v1/groups", { name: "fuzz" });
    expect(group.status).toBe(201);
    await cloud.api("POST", "/api/v1/device-types", { name: "fuzz-type" });
    expect((await cloud.api("POST", "/api/v1/devices", { uuid: device, name: "fuzz-device" })).status).toBe(201);
    await cloud.api("POST", "/api/v1/users", { email: "fuzz@example.com", password: "a-long-password-1", roles: [] });
    env = { FIELDGATE_DATA_DIR: cloud.dataDir, XDG_CONFIG_HOME: path.join(tmp, "config"), NO_COLOR: "1" };
  });
  afterAll(() => cloud.stop());

  it("every value-taking flag of every command has malformed cases", () => {
    const { program } = buildProgram(capturedIo({}).io);
    const uncovered = new Set<string>();
    for (const cmd of allCommands(program)) {
      for (const o of cmd.options) {
        if ((o.required || o.optional) && !MALFORMED[o.long ?? ""]) uncovered.add(`${commandPath(cmd)} ${o.flags}`);
      }
    }
    expect([...uncovered].join("\n"), "add malformed values for these flags").toBe("");
  });

  it("operator commands answer each with a documented code, in-process", async () => {
    const { program } = buildProgram(capturedIo({}).io);
    const cases = allCases(program).filter((c) => c.command !== "serve");
    expect(cases.length).toBeGreaterThan(600);
    const problems: string[] = [];
    for (const c of cases) {
      const { io, err, out } = capturedIo(env);
      const code = await buildProgram(io).run(c.argv);
      const what = c.argv.join(" ");
      const stderr = err.join("\n");
      problems.push(...problemsOf(what, code, stderr, out.join("\n")));
      // A malformed connection flag is refused before anything is sent: CONFIG_INVALID naming it.
      const checked =
        c.command === "login" ? ["--url", "--ca-file"] : ["--url", "--credential", "--token", "--ca-file"];
      const flag = c.argv.find((a) => checked.includes(a));
      if (flag && !/^error (CONFIG_INVALID|VALIDATION_FAILED): /.test(stderr)) {
        problems.push(`${what}: not refused before the request: ${stderr}`);
      }
      if (flag && stderr.startsWith("error CONFIG_INVALID") && !stderr.includes(`(field: ${flag.slice(2)})`)) {
        problems.push(`${what}: does not name ${flag}: ${stderr}`);
      }
    }
    expect(problems.join("\n")).toBe("");
  }, 240_000);

  it("serve refuses each malformed flag with CONFIG_INVALID naming it, before it starts (a real process)", async () => {
    const { program } = buildProgram(capturedIo({}).io);
    const cases = allCases(program).filter((c) => c.command === "serve");
    const dataDir = tempDir("cli-flags-serve");
    const problems: string[] = [];
    for (const c of cases) {
      // The flag under test comes last, so it wins over the harmless values before it.
      const defaults = ["--host", "127.0.0.1", "--http-port", "0", "--mqtt-port", "0", "--data-dir", dataDir];
      const { code, stderr, stdout } = await runServe([...defaults, ...c.argv.slice(1)]);
      const what = c.argv.join(" ");
      if (stdout.includes("cloud ready")) problems.push(`${what}: started`);
      problems.push(...problemsOf(what, code, stderr));
      if (code !== 2 || !/^error CONFIG_INVALID: /m.test(stderr)) problems.push(`${what}: exit ${code}: ${stderr}`);
    }
    expect(problems.join("\n")).toBe("");
  }, 120_000);
});

/** `fieldgate-cloud serve …` as a child; one that gets as far as "cloud ready" is stopped and reported. */
function runServe(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cloudBin, "serve", ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => {
      stdout += c.toString();
      if (stdout.includes("cloud ready")) child.kill("SIGTERM");
    });
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    child.on("exit", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

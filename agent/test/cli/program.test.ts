import { existsSync, mkdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { buildProgram } from "../../src/cli/program.js";
import { SqliteLogBuffer } from "../../src/logs/sqlite-log-buffer.js";
import { SqliteOutboxStore } from "../../src/outbox/sqlite-outbox-store.js";
import { tempDir } from "../helpers/tmp.js";

const UUID = "0f1e2d3c-4b5a-4968-8776-655443322110";

function cli(env: NodeJS.ProcessEnv = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const program = buildProgram({
    out: (t) => out.push(t),
    err: (t) => err.push(t),
    env,
    waitForStop: async () => "SIGTERM",
  });
  return { run: (...argv: string[]) => program.run(argv), out, err };
}

describe("fieldgate-agent CLI", () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => {
    tmp = tempDir();
  });
  afterEach(() => tmp.cleanup());

  it("run: a config error prints `error CONFIG_INVALID: <field>: <message>` and exits 2", async () => {
    const file = join(tmp.dir, "agent.json");
    writeFileSync(file, JSON.stringify({ uuid: UUID, cloud: { url: "https://x:1" }, telemetry: { batchMax: 0 } }));
    const c = cli();
    expect(await c.run("run", "--config", file)).toBe(2);
    expect(c.err).toEqual(["error CONFIG_INVALID: telemetry.batchMax: must be >= 1, got 0"]);
  });

  it("run: a missing config file is a config error", async () => {
    const c = cli();
    expect(await c.run("run", "--config", join(tmp.dir, "none.json"))).toBe(2);
    expect(c.err[0]).toMatch(
      /^error CONFIG_INVALID: --config: cannot read config file .*none\.json: it does not exist/,
    );
    // How to get one: enroll writes it, or the example shows every key.
    expect(c.err[0]).toContain(
      `fieldgate-agent enroll --cloud <url> --token <token> --ca-file <ca.crt> --config ${join(tmp.dir, "none.json")}`,
    );
    expect(c.err[0]).toContain("docs/examples/agent.json");
  });

  it("run: starts and stops cleanly on a signal, exit 0", async () => {
    const file = join(tmp.dir, "agent.json");
    writeFileSync(
      file,
      JSON.stringify({
        uuid: UUID,
        dataDir: "data",
        cloud: { url: "https://127.0.0.1:1" },
        log: { level: "silent" },
      }),
    );
    const c = cli();
    expect(await c.run("run", "--config", file)).toBe(0);
    expect(existsSync(join(tmp.dir, "data", "agent.db"))).toBe(true);
  });

  it("unknown options are usage errors (exit 2)", async () => {
    const c = cli();
    expect(await c.run("status", "--bogus")).toBe(2);
    expect(c.err.join("\n")).toMatch(/^error VALIDATION_FAILED: unknown option '--bogus'/);
  });

  it("reset refuses without --yes and keeps the factory key with it", async () => {
    const dataDir = join(tmp.dir, "d");
    mkdirSync(join(dataDir, "identity"), { recursive: true });
    writeFileSync(join(dataDir, "identity", "device.key"), "k");
    writeFileSync(join(dataDir, "identity", "factory.key"), "f");
    const refused = cli();
    expect(await refused.run("reset", "--data-dir", dataDir)).toBe(2);
    expect(refused.err[0]).toMatch(/^error VALIDATION_FAILED: .*--yes/);
    expect(existsSync(join(dataDir, "identity", "device.key"))).toBe(true);
    const c = cli();
    expect(await c.run("reset", "--yes", "--data-dir", dataDir)).toBe(0);
    expect(existsSync(join(dataDir, "identity", "device.key"))).toBe(false);
    expect(existsSync(join(dataDir, "identity", "factory.key"))).toBe(true);
  });

  it("status --json reports enrollment, daemon and backlog", async () => {
    const dataDir = join(tmp.dir, "d");
    const store = new SqliteOutboxStore(join(dataDir, "agent.db"), { maxRows: 10 });
    store.append([{ name: "x", ts: Date.now() - 5000, value: 1 }]);
    store.close();
    const c = cli();
    expect(await c.run("status", "--data-dir", dataDir, "--json")).toBe(0);
    const report = JSON.parse(c.out[0] ?? "{}");
    expect(report.identity).toEqual({ enrolled: false });
    expect(report.daemon).toMatchObject({ running: false, state: "not running" });
    expect(report.outbox).toMatchObject({ rows: 1, batches: 0 });
    expect(report.outbox.oldestAgeMs).toBeGreaterThanOrEqual(5000);
  });

  it("status shows the log lines waiting to be forwarded, and drops not yet reported", async () => {
    const dataDir = join(tmp.dir, "d");
    const empty = cli();
    expect(await empty.run("status", "--data-dir", dataDir, "--json")).toBe(0);
    expect(JSON.parse(empty.out[0] ?? "{}").logs).toEqual({
      lines: 0,
      oldestTs: null,
      droppedUnreported: 0,
      oldestAgeMs: null,
    });

    const buffer = new SqliteLogBuffer(join(dataDir, "agent.db"), { maxWaiting: 100 });
    const ts = Date.now() - 90_000;
    buffer.append(
      [
        { ts, level: "warn", msg: "serial port gone" },
        { ts: ts + 1, level: "info", msg: "serial port back" },
      ],
      { rate: 3, buffer: 0 },
    );
    buffer.close();
    const json = cli();
    expect(await json.run("status", "--data-dir", dataDir, "--json")).toBe(0);
    const report = JSON.parse(json.out[0] ?? "{}");
    expect(report.logs).toMatchObject({ lines: 2, oldestTs: ts, droppedUnreported: 3 });
    expect(report.logs.oldestAgeMs).toBeGreaterThanOrEqual(90_000);
    const text = cli();
    expect(await text.run("status", "--data-dir", dataDir)).toBe(0);
    expect(text.out).toContain("logs         2 lines waiting to be forwarded, oldest 1m 30s old");
    expect(text.out).toContain("             3 lines dropped, not yet reported to the cloud");
  });

  it("factory-key generate writes a 0600 key and prints only the public key", async () => {
    const out = join(tmp.dir, "factory.key");
    const c = cli();
    expect(await c.run("factory-key", "generate", "--out", out)).toBe(0);
    expect(c.out.join("\n")).toMatch(/^-----BEGIN PUBLIC KEY-----[\s\S]*-----END PUBLIC KEY-----$/);
    expect(c.out.join("\n") + c.err.join("\n")).not.toContain("PRIVATE KEY-----");
    expect(statSync(out).mode & 0o777).toBe(0o600);
    expect(await cli().run("factory-key", "generate", "--out", out)).toBe(2);
  });

  it("enroll: an unreachable cloud prints the code and what to do, exit 1", async () => {
    const c = cli();
    const code = await c.run(
      "enroll",
      "--cloud",
      "https://127.0.0.1:1",
      "--uuid",
      UUID,
      "--token",
      "t0ken",
      "--data-dir",
      join(tmp.dir, "d"),
      "--config",
      join(tmp.dir, "agent.json"),
    );
    expect(code).toBe(1);
    expect(c.err[0]).toMatch(/^error CLOUD_UNREACHABLE: cannot reach https:\/\/127\.0\.0\.1:1/);
    // Not enrolled, so no config was written.
    expect(existsSync(join(tmp.dir, "agent.json"))).toBe(false);
    expect(c.err[1]).toMatch(/^what to do: /);
    expect(c.err.join("\n")).not.toContain("t0ken");
  });

  it("enroll: without a token is a usage error", async () => {
    const c = cli();
    expect(
      await c.run(
        "enroll",
        "--cloud",
        "https://127.0.0.1:1",
        "--uuid",
        UUID,
        "--config",
        join(tmp.dir, "a.json"),
        "--json",
      ),
    ).toBe(2);
    expect(JSON.parse(c.out[0] ?? "{}")).toMatchObject({ ok: false, error: { code: "VALIDATION_FAILED" } });
  });
});

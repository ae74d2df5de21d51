import { spawn } from "node:child_process";
import { existsSync, statSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import { HealthMonitor } from "../../src/health/health-monitor.js";
import { LocalApi } from "../../src/local-api/local-api.js";
import { OutboxWriter } from "../../src/outbox/outbox-writer.js";
import { SqliteOutboxStore } from "../../src/outbox/sqlite-outbox-store.js";
import { memoryLogger } from "../helpers/logger.js";
import { tempDir } from "../helpers/tmp.js";

interface Answer {
  status: number;
  body: unknown;
}

/** An HTTP request over the Unix socket, as `curl --unix-socket` sends it. */
function call(socketPath: string, method: string, path: string, body?: string | Buffer): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path, headers: { "content-type": "application/json" } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString();
        resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : undefined });
      });
    });
    req.on("error", reject);
    req.end(body);
  });
}

const tmp = tempDir("fgapi-");
afterAll(() => tmp.cleanup());

describe("LocalApi over a Unix socket", () => {
  let dir: string;
  let socket: string;
  let store: SqliteOutboxStore;
  let monitor: HealthMonitor;
  let api: LocalApi;
  let case_ = 0;
  const NOW = 1_900_000_000_000;

  beforeEach(async () => {
    dir = join(tmp.dir, String(++case_));
    socket = join(dir, "agent.sock");
    store = new SqliteOutboxStore(join(dir, "agent.db"), { maxRows: 1000 });
    const logger = memoryLogger().logger;
    const writer = new OutboxWriter({ store, logger });
    monitor = new HealthMonitor({
      checks: [{ name: "disk", run: () => ({ name: "disk", status: "ok", message: "50% free" }) }],
      publisher: { connected: false, publish: async () => undefined },
      logger,
      options: { reportIntervalMs: 300_000, checkIntervalMs: 30_000 },
    });
    monitor.start();
    api = new LocalApi({ socket, sink: writer, health: monitor, logger, now: () => NOW });
    await api.start();
  });
  afterEach(async () => {
    await api.stop();
    monitor.stop();
    store.close();
  });

  it("listens on a 0660 socket and removes it on stop", async () => {
    expect(statSync(socket).isSocket()).toBe(true);
    expect(statSync(socket).mode & 0o777).toBe(0o660);
    await api.stop();
    expect(existsSync(socket)).toBe(false);
  });

  it("POST /v1/telemetry stores a batch in the outbox (202 accepted)", async () => {
    const readings = [
      { name: "tank.level", ts: NOW - 1000, value: 42.5, unit: "%" },
      { name: "pump.on", ts: NOW - 1000, value: true },
    ];
    expect(await call(socket, "POST", "/v1/telemetry", JSON.stringify({ readings }))).toEqual({
      status: 202,
      body: { accepted: 2 },
    });
    expect(store.backlog().rows).toBe(2);
    expect(store.nextBatch(10)?.readings).toEqual(readings);
  });

  it("POST /v1/telemetry takes a single reading, and a missing ts means now", async () => {
    const answer = await call(socket, "POST", "/v1/telemetry", '{"name":"door.open","value":false}');
    expect(answer).toEqual({ status: 202, body: { accepted: 1 } });
    expect(store.nextBatch(10)?.readings).toEqual([{ name: "door.open", ts: NOW, value: false }]);
  });

  it("answers 400 with the code and field for bad bodies, and stores nothing", async () => {
    expect(await call(socket, "POST", "/v1/telemetry", "{not json")).toEqual({
      status: 400,
      body: { error: { code: "PAYLOAD_MALFORMED", message: "the request body is not valid JSON", field: "body" } },
    });
    const bad = await call(
      socket,
      "POST",
      "/v1/telemetry",
      JSON.stringify({
        readings: [
          { name: "ok.one", value: 1 },
          { name: "bad name!", value: 2 },
        ],
      }),
    );
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ error: { code: "VALIDATION_FAILED", field: "readings[1].name" } });
    const noValue = await call(socket, "POST", "/v1/telemetry", JSON.stringify({ name: "x" }));
    expect(noValue.body).toMatchObject({ error: { code: "VALIDATION_FAILED", field: "value" } });
    const empty = await call(socket, "POST", "/v1/telemetry", JSON.stringify({ readings: [] }));
    expect(empty.body).toMatchObject({ error: { code: "VALIDATION_FAILED", field: "readings" } });
    const array = await call(socket, "POST", "/v1/telemetry", "[1,2]");
    expect(array.body).toMatchObject({ error: { code: "VALIDATION_FAILED" } });
    expect(store.backlog().rows).toBe(0);
  });

  it("refuses a body over 1 MiB with 413 VALIDATION_FAILED", async () => {
    const big = Buffer.alloc(1024 * 1024 + 10, " ");
    expect(await call(socket, "POST", "/v1/telemetry", big)).toEqual({
      status: 413,
      body: { error: { code: "VALIDATION_FAILED", message: "the body is larger than 1048576 bytes", field: "body" } },
    });
  });

  it("POST /v1/status/{name} registers local.<name>; GET /v1/status shows the aggregate", async () => {
    const posted = await call(
      socket,
      "POST",
      "/v1/status/plc-link",
      JSON.stringify({ status: "critical", message: "no answer from PLC", ttl: "10m" }),
    );
    expect(posted).toEqual({
      status: 200,
      body: {
        name: "local.plc-link",
        status: "critical",
        message: "no answer from PLC",
        expiresAt: expect.any(String),
      },
    });
    const expiresAt = Date.parse((posted.body as { expiresAt: string }).expiresAt);
    expect(Math.abs(expiresAt - (Date.now() + 600_000))).toBeLessThan(5_000);
    const status = await call(socket, "GET", "/v1/status");
    expect(status.status).toBe(200);
    expect(status.body).toMatchObject({
      status: "critical",
      checks: [
        { name: "disk", status: "ok", message: "50% free" },
        { name: "local.plc-link", status: "critical", message: "no answer from PLC" },
      ],
    });
    expect(await call(socket, "GET", "/v1/status/plc-link")).toMatchObject({
      status: 200,
      body: { name: "local.plc-link", status: "critical" },
    });
    expect(await call(socket, "DELETE", "/v1/status/plc-link")).toEqual({ status: 204, body: undefined });
    expect((await call(socket, "GET", "/v1/status")).body).toMatchObject({ status: "ok" });
    expect(await call(socket, "GET", "/v1/status/plc-link")).toMatchObject({
      status: 404,
      body: { error: { code: "NOT_FOUND", field: "name" } },
    });
  });

  it("validates status bodies and names", async () => {
    const post = (name: string, body: unknown) => call(socket, "POST", `/v1/status/${name}`, JSON.stringify(body));
    expect((await post("x", { status: "red" })).body).toMatchObject({
      error: { code: "VALIDATION_FAILED", field: "status" },
    });
    expect((await post("x", { status: "ok", ttl: "soon" })).body).toMatchObject({
      error: { code: "VALIDATION_FAILED", field: "ttl" },
    });
    expect((await post("x", { status: "ok", ttl: 0 })).body).toMatchObject({
      error: { code: "VALIDATION_FAILED", field: "ttl" },
    });
    expect((await post("x", { status: "ok", colour: "white" })).body).toMatchObject({
      error: { code: "VALIDATION_FAILED", field: "colour" },
    });
    const badName = await post("has%20space", { status: "ok" });
    expect(badName).toMatchObject({ status: 400, body: { error: { code: "VALIDATION_FAILED", field: "name" } } });
    expect(await post("x", { status: "ok", ttl: 90 })).toMatchObject({ status: 200 });
  });

  it("a posted status with a ttl expires to unknown", async () => {
    await call(socket, "POST", "/v1/status/heartbeat", JSON.stringify({ status: "ok", ttl: 0.2 }));
    expect((await call(socket, "GET", "/v1/status/heartbeat")).body).toMatchObject({ status: "ok" });
    await new Promise((r) => setTimeout(r, 300));
    expect((await call(socket, "GET", "/v1/status/heartbeat")).body).toEqual({
      name: "local.heartbeat",
      status: "unknown",
      message: "no update within ttl (200ms)",
    });
    expect((await call(socket, "GET", "/v1/status")).body).toMatchObject({ status: "warning" });
  });

  it("answers 404 NOT_FOUND for unknown routes", async () => {
    expect(await call(socket, "GET", "/v2/status")).toMatchObject({
      status: 404,
      body: { error: { code: "NOT_FOUND" } },
    });
    expect((await call(socket, "PUT", "/v1/telemetry", "{}")).status).toBe(404);
  });

  it("refuses to start when another process answers on the socket, and replaces a stale one", async () => {
    const second = new LocalApi({
      socket,
      sink: { append: () => ({ appended: 0, dropped: 0 }) },
      health: monitor,
      logger: memoryLogger().logger,
    });
    await expect(second.start()).rejects.toMatchObject({ code: "LOCAL_API_IN_USE", field: "localApi.socket" });
    // The running API is untouched.
    expect((await call(socket, "GET", "/v1/status")).status).toBe(200);

    // A socket file nobody listens on (left by a SIGKILLed agent) is removed and replaced.
    const stale = join(dir, "stale.sock");
    const child = spawn(process.execPath, [
      "-e",
      "require('node:net').createServer().listen(process.argv[1], () => console.log('up'))",
      stale,
    ]);
    await new Promise((r) => child.stdout.once("data", r));
    child.kill("SIGKILL");
    await new Promise((r) => child.once("exit", r));
    expect(statSync(stale).isSocket()).toBe(true);
    const third = new LocalApi({
      socket: stale,
      sink: { append: () => ({ appended: 0, dropped: 0 }) },
      health: monitor,
      logger: memoryLogger().logger,
    });
    await third.start();
    expect((await call(stale, "GET", "/v1/status")).status).toBe(200);
    await third.stop();

    const notSocket = join(dir, "file.sock");
    writeFileSync(notSocket, "");
    const fourth = new LocalApi({
      socket: notSocket,
      sink: { append: () => ({ appended: 0, dropped: 0 }) },
      health: monitor,
      logger: memoryLogger().logger,
    });
    await expect(fourth.start()).rejects.toMatchObject({ code: "CONFIG_INVALID", field: "localApi.socket" });
  });

  it("also listens on 127.0.0.1 when a port is configured", async () => {
    const tcp = new LocalApi({
      socket: join(dir, "tcp.sock"),
      port: 0,
      sink: { append: () => ({ appended: 1, dropped: 0 }) },
      health: monitor,
      logger: memoryLogger().logger,
    });
    await tcp.start();
    const res = await fetch(`http://127.0.0.1:${tcp.port}/v1/status`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { status: string }).status).toBe("ok");
    await tcp.stop();
  });
});

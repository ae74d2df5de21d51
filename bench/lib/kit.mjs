// Process and measurement helpers shared by the benchmark scenarios.
import { execFileSync, spawn } from "node:child_process";
import { createSign, generateKeyPairSync } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import https from "node:https";
import net from "node:net";
import { tmpdir, userInfo } from "node:os";
import path from "node:path";
import readline from "node:readline";
import tls from "node:tls";
import Database from "better-sqlite3";
import pg from "pg";

export const repoRoot = path.resolve(import.meta.dirname, "../..");
export const cloudBin = path.join(repoRoot, "cloud/dist/cli/main.js");
export const agentBin = path.join(repoRoot, "agent/dist/cli/main.js");
export const simBin = path.join(repoRoot, "agent/dist/sim/main.js");
const libDir = import.meta.dirname;

/** Child processes still running, stopped on exit whatever happens. */
const children = new Set();
process.on("exit", () => {
  for (const child of children) child.kill("SIGKILL");
});

/** Temporary directories of this run (some on tmpfs, so in RAM), removed by `removeWorkDirs`. */
const workDirs = new Set();

export function workDir(prefix, base = tmpdir()) {
  mkdirSync(base, { recursive: true });
  const dir = mkdtempSync(path.join(base, `fieldgate-bench-${prefix}-`));
  workDirs.add(dir);
  return dir;
}

export function removeWorkDirs() {
  for (const dir of workDirs) rmSync(dir, { recursive: true, force: true });
  workDirs.clear();
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function track(child) {
  children.add(child);
  child.once("exit", () => children.delete(child));
  return child;
}

function stopChild(child, signal = "SIGTERM") {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill(signal);
  });
}

/** Starts a helper that prints one JSON line when ready (its port); resolves with it and a stop function. */
export function startHelper(script, args = [], nodeArgs = []) {
  const child = track(spawn(process.execPath, [...nodeArgs, path.join(libDir, script), ...args], { stdio: "pipe" }));
  child.stderr.on("data", (d) => process.stderr.write(d));
  return new Promise((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`${script} exited with ${code}`)));
    readline.createInterface({ input: child.stdout }).once("line", (line) => {
      resolve({ ...JSON.parse(line), pid: child.pid, stop: () => stopChild(child) });
    });
  });
}

/**
 * Runs a node script to completion and parses the JSON it prints on stdout; stderr (progress)
 * passes through, prefixed. `nodeArgs` such as `--cpu-prof` go before the script.
 */
export function runJson(script, args, { label = path.basename(script), nodeArgs = [], env = {} } = {}) {
  const child = track(
    spawn(process.execPath, [...nodeArgs, script, ...args], { stdio: "pipe", env: { ...process.env, ...env } }),
  );
  let out = "";
  child.stdout.on("data", (d) => {
    out += d;
  });
  readline
    .createInterface({ input: child.stderr })
    .on("line", (line) => process.stderr.write(`  [${label}] ${line}\n`));
  const result = new Promise((resolve, reject) => {
    child.once("exit", (code) => {
      try {
        resolve({ code, ...JSON.parse(out) });
      } catch {
        reject(new Error(`${label} exited with ${code} and no JSON result: ${out.slice(0, 400)}`));
      }
    });
  });
  // Asks the script to finish early (the simulator stops on SIGTERM and still prints its summary).
  result.finish = () => child.exitCode === null && child.signalCode === null && child.kill("SIGTERM");
  return result;
}

export async function runLoad(job, dir) {
  const file = path.join(dir, `load-${Date.now()}-${Math.random().toString(16).slice(2)}.json`);
  writeFileSync(file, JSON.stringify(job));
  return runJson(path.join(libDir, "mqtt-load.mjs"), [file], { label: "mqtt-load" });
}

/** A `fieldgate-cloud serve` process on loopback with ephemeral ports. */
export async function startCloud({ dataDir, args = [], nodeArgs = [] }) {
  mkdirSync(dataDir, { recursive: true });
  const child = track(
    spawn(
      process.execPath,
      [
        ...nodeArgs,
        cloudBin,
        "serve",
        "--data-dir",
        dataDir,
        "--host",
        "127.0.0.1",
        "--http-port",
        "0",
        "--mqtt-port",
        "0",
        "--log-level",
        "warn",
        ...args,
      ],
      { stdio: ["ignore", "pipe", "pipe"], cwd: dataDir },
    ),
  );
  const lines = [];
  readline.createInterface({ input: child.stdout }).on("line", (l) => lines.push(l));
  readline.createInterface({ input: child.stderr }).on("line", (l) => lines.push(l));
  const runtimeFile = path.join(dataDir, "runtime.json");
  const deadline = Date.now() + 30_000;
  while (!existsSync(runtimeFile) || !existsSync(path.join(dataDir, "admin-credential.json"))) {
    if (child.exitCode !== null) throw new Error(`the cloud exited: ${lines.join("\n")}`);
    if (Date.now() > deadline) throw new Error(`the cloud did not start: ${lines.join("\n")}`);
    await sleep(100);
  }
  await sleep(100);
  const runtime = JSON.parse(readFileSync(runtimeFile, "utf8"));
  const admin = JSON.parse(readFileSync(path.join(dataDir, "admin-credential.json"), "utf8"));
  const pki = path.join(dataDir, "pki");
  const caPem = readFileSync(path.join(pki, "ca.crt"), "utf8");
  const authorization = `Basic ${Buffer.from(`${admin.credentialId}:${admin.secret}`).toString("base64")}`;
  return {
    pid: child.pid,
    dataDir,
    pki,
    caFile: path.join(pki, "ca.crt"),
    url: runtime.url,
    mqttUrl: `mqtts://localhost:${runtime.mqttPort}`,
    database: path.join(dataDir, "fieldgate.db"),
    /** What the cloud printed (its log at the level chosen: `warn` unless `args` say otherwise). */
    lines,
    api: (method, p, body, contentType = "application/json") =>
      apiCall(runtime.url, caPem, authorization, method, p, body, contentType),
    stop: () => stopChild(child),
  };
}

/** A cloud with a firmware signing key and its own image store under `dir`. */
export function startFirmwareCloud(dir, { args = [], nodeArgs = [] } = {}) {
  const dataDir = path.join(dir, "cloud");
  execFileSync(process.execPath, [cloudBin, "firmware", "keygen", "--data-dir", dataDir], { stdio: "pipe" });
  return startCloud({ dataDir, args: ["--firmware-dir", path.join(dir, "store"), ...args], nodeArgs });
}

function apiCall(base, ca, authorization, method, p, body, contentType) {
  const payload =
    body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body), "utf8");
  return new Promise((resolve, reject) => {
    const req = https.request(new URL(p, base), {
      method,
      ca,
      headers: {
        authorization,
        ...(payload && { "content-type": contentType, "content-length": payload.length }),
      },
      timeout: 300_000,
    });
    req.on("response", (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let json;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        if (res.statusCode >= 400) reject(new Error(`${method} ${p}: ${res.statusCode} ${text.slice(0, 300)}`));
        else resolve(json);
      });
    });
    req.on("error", reject);
    req.end(payload);
  });
}

/** Runs `fieldgate-sim` against a cloud and returns its JSON summary. */
export function runSim(cloud, args, options = {}) {
  return runJson(simBin, ["--cloud-data-dir", cloud.dataDir, "--progress-interval", "2s", ...args], {
    label: "fieldgate-sim",
    ...options,
  });
}

/** Registers and enrolls `devices` simulated gateways of a device type, then disconnects them. */
export function enrollTypedFleet(cloud, type, devices, fleetDir) {
  return runSim(cloud, [
    "--enroll",
    "--type",
    type,
    "--devices",
    String(devices),
    "--rate",
    "0",
    "--duration",
    "0",
    "--fleet-dir",
    fleetDir,
  ]);
}

/** Uploads `bytes` as image `name@version` for the firmware-compat id `compatible`. */
export function uploadImage(cloud, name, version, compatible, bytes) {
  return cloud.api(
    "POST",
    `/api/v1/firmware?name=${name}&version=${version}&compatible=${compatible}`,
    bytes,
    "application/octet-stream",
  );
}

/** Client certificates of a sim fleet, for the load generator. */
export function fleetClients(fleetDir, count, topicKind = "telemetry") {
  const { devices } = JSON.parse(readFileSync(path.join(fleetDir, "fleet.json"), "utf8"));
  return devices.slice(0, count).map((uuid) => ({
    clientId: uuid,
    keyFile: path.join(fleetDir, "devices", uuid, "identity", "device.key"),
    certFile: path.join(fleetDir, "devices", uuid, "identity", "device.crt"),
    topic: `fieldgate/v1/${uuid}/${topicKind}`,
  }));
}

/** Mosquitto 2.x with a generated TLS listener equivalent to fieldgate's broker, on a free port. */
export async function startMosquitto(pki, dir) {
  const binary = "/usr/sbin/mosquitto";
  if (!existsSync(binary)) throw new Error("mosquitto is not installed (apt-get install mosquitto)");
  const port = await freePort();
  const conf = path.join(dir, "mosquitto.conf");
  writeFileSync(
    conf,
    [
      // As root, mosquitto drops to its own user, which cannot read the cloud's 0700 pki folder.
      `user ${userInfo().username}`,
      "per_listener_settings false",
      "persistence false",
      "log_dest stderr",
      "log_type error",
      "allow_anonymous false",
      "max_connections -1",
      `listener ${port} 127.0.0.1`,
      `cafile ${pki}/ca.crt`,
      `certfile ${pki}/server.crt`,
      `keyfile ${pki}/server.key`,
      "require_certificate true",
      "use_identity_as_username true",
      "tls_version tlsv1.2",
      "",
    ].join("\n"),
  );
  const child = track(spawn(binary, ["-c", conf], { stdio: ["ignore", "ignore", "pipe"] }));
  let errors = "";
  child.stderr.on("data", (d) => {
    errors += d;
  });
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`mosquitto exited: ${errors}`);
    const open = await new Promise((resolve) => {
      const s = net.connect(port, "127.0.0.1", () => {
        s.destroy();
        resolve(true);
      });
      s.on("error", () => resolve(false));
    });
    if (open) break;
    if (Date.now() > deadline) throw new Error(`mosquitto did not listen: ${errors}`);
    await sleep(100);
  }
  return { url: `mqtts://localhost:${port}`, pid: child.pid, stop: () => stopChild(child) };
}

/** The bare Aedes peer in its own process, same TLS settings. */
export async function startRawAedes(pki) {
  const helper = await startHelper("raw-aedes-server.mjs", [pki]);
  return { url: `mqtts://localhost:${helper.port}`, pid: helper.pid, stop: helper.stop };
}

/** Resident memory (bytes) and CPU seconds (user + system) of a process, from /proc. */
export function processStats(pid) {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (field) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  const rssKb = kb("VmRSS");
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 of stat(5), in clock ticks (100 per second on Linux).
  const cpuSeconds = (Number(fields[11]) + Number(fields[12])) / 100;
  // RSS = anonymous memory (heaps, stacks) + file-backed pages (the node binary, libraries),
  // which every Node process on the host shares.
  return { rss: rssKb * 1024, anon: kb("RssAnon") * 1024, file: kb("RssFile") * 1024, cpuSeconds };
}

// ---- physical limits, measured in the same run ----

/** RSS of a bare `node` process that only waits: the floor under any Node program on this host. */
export async function bareNodeFloor() {
  const child = track(spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" }));
  await sleep(3000);
  const stats = processStats(child.pid);
  await stopChild(child);
  return stats;
}

/** Raw batched insert rate into a table shaped like the cloud's telemetry (same pragmas and index). */
export function sqliteInsertRate(dir, ms, batch = 1000) {
  const db = new Database(path.join(dir, "raw.db"));
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = NORMAL");
  db.exec(`CREATE TABLE telemetry (device_id INTEGER NOT NULL, ts INTEGER NOT NULL, name TEXT NOT NULL, value ANY,
    kind INTEGER NOT NULL, unit TEXT, stream TEXT NOT NULL, seq INTEGER NOT NULL) STRICT;
    CREATE INDEX telemetry_device_ts ON telemetry(device_id, ts);`);
  const insert = db.prepare(
    "INSERT INTO telemetry (device_id, ts, name, value, kind, unit, stream, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
  );
  const stream = "0123456789abcdef0123456789abcdef";
  const insertBatch = db.transaction((seq, ts) => {
    for (let i = 0; i < batch; i++) insert.run(seq % 100, ts, "sim.counter", seq * batch + i, 0, null, stream, seq);
  });
  const started = performance.now();
  let rows = 0;
  let seq = 0;
  while (performance.now() - started < ms) {
    seq += 1;
    insertBatch(seq, Date.now());
    rows += batch;
  }
  const elapsed = performance.now() - started;
  db.close();
  return { rowsPerSecond: Math.round((rows * 1000) / elapsed), batch };
}

/** The local PostgreSQL server the PostgreSQL scenarios create their scratch databases on. */
export const POSTGRES_SERVER = process.env.FIELDGATE_BENCH_POSTGRES ?? "postgres://postgres@127.0.0.1:5432/postgres";

/** A new empty PostgreSQL database for one scenario, and how to drop it. */
export async function scratchPostgres(label) {
  const name = `fg_bench_${label}_${process.pid}_${Date.now().toString(36)}`;
  await onPostgres(POSTGRES_SERVER, `CREATE DATABASE ${name} TEMPLATE template0`);
  const url = new URL(POSTGRES_SERVER);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: () => onPostgres(POSTGRES_SERVER, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
  };
}

async function onPostgres(server, statement) {
  const client = new pg.Client({ connectionString: server });
  await client.connect();
  try {
    return await client.query(statement);
  } finally {
    await client.end();
  }
}

/**
 * The physical reference for PostgreSQL ingest: the same rows into the same table shape as the
 * cloud's (range-partitioned by ts, the (device_id, ts) B-tree and the BRIN index), by the fastest
 * plain way without extra packages: one multi-row INSERT of `batch` rows per transaction.
 */
export async function postgresInsertRate(ms, batch = 1000) {
  const scratch = await scratchPostgres("raw");
  const client = new pg.Client({ connectionString: scratch.url });
  await client.connect();
  try {
    const now = Date.now();
    await client.query(`CREATE TABLE telemetry (id BIGINT GENERATED ALWAYS AS IDENTITY, device_id BIGINT NOT NULL,
      ts BIGINT NOT NULL, name TEXT COLLATE "C" NOT NULL, value_number DOUBLE PRECISION, value_text TEXT COLLATE "C",
      kind BIGINT NOT NULL, unit TEXT COLLATE "C", stream TEXT COLLATE "C" NOT NULL, seq BIGINT NOT NULL,
      source TEXT COLLATE "C") PARTITION BY RANGE (ts);
      CREATE INDEX telemetry_device_ts ON telemetry(device_id, ts);
      CREATE INDEX telemetry_ts_brin ON telemetry USING brin (ts);
      CREATE TABLE telemetry_now PARTITION OF telemetry FOR VALUES FROM (${now - 86_400_000}) TO (${now + 7 * 86_400_000});
      CREATE TABLE telemetry_outside PARTITION OF telemetry DEFAULT;`);
    const columns = 8;
    const placeholders = Array.from(
      { length: batch },
      (_, r) => `(${Array.from({ length: columns }, (_, c) => `$${r * columns + c + 1}`).join(",")})`,
    ).join(",");
    const text = `INSERT INTO telemetry (device_id, ts, name, value_number, kind, unit, stream, seq) VALUES ${placeholders}`;
    const stream = "0123456789abcdef0123456789abcdef";
    const started = performance.now();
    let rows = 0;
    let seq = 0;
    while (performance.now() - started < ms) {
      seq += 1;
      const ts = Date.now();
      const values = [];
      for (let i = 0; i < batch; i++) values.push(seq % 100, ts, "sim.counter", seq * batch + i, 0, null, stream, seq);
      await client.query("BEGIN");
      await client.query({ text, values, name: "raw-insert" });
      await client.query("COMMIT");
      rows += batch;
    }
    const elapsed = performance.now() - started;
    return { rowsPerSecond: Math.round((rows * 1000) / elapsed), batch };
  } finally {
    await client.end();
    await scratch.drop();
  }
}

/** A count (or one row) from the cloud's PostgreSQL database. */
export async function postgresQuery(url, sql, ...params) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const result = await client.query(sql, params);
    const row = result.rows[0];
    return (
      row &&
      Object.fromEntries(
        Object.entries(row).map(([k, v]) => [k, typeof v === "string" && /^\d+$/.test(v) ? Number(v) : v]),
      )
    );
  } finally {
    await client.end();
  }
}

/** Native ECDSA P-256 signatures per second on one core (what a CA or a TLS handshake pays). */
export function p256SignRate(ms) {
  const { privateKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const data = Buffer.alloc(256, 7);
  const started = performance.now();
  let count = 0;
  while (performance.now() - started < ms) {
    for (let i = 0; i < 100; i++) createSign("sha256").update(data).sign(privateKey);
    count += 100;
  }
  return { signaturesPerSecond: Math.round((count * 1000) / (performance.now() - started)) };
}

/**
 * Loopback throughput, one stream, sender here and receiver in another process: plain TCP, or TLS
 * with the cloud's certificate and Node's default cipher when `tlsPki` names the PKI directory.
 */
export async function loopbackThroughput(ms, { tlsPki } = {}) {
  const sink = await startHelper("loopback-sink.mjs", tlsPki ? [tlsPki] : []);
  const chunk = Buffer.alloc(256 * 1024, 1);
  const socket = await new Promise((resolve, reject) => {
    const s = tlsPki
      ? tls.connect(
          { port: sink.port, host: "127.0.0.1", servername: "localhost", ca: readFileSync(`${tlsPki}/ca.crt`) },
          () => resolve(s),
        )
      : net.connect(sink.port, "127.0.0.1", () => resolve(s));
    s.on("error", reject);
  });
  let bytes = 0;
  const started = performance.now();
  await new Promise((resolve) => {
    const pump = () => {
      while (performance.now() - started < ms) {
        bytes += chunk.length;
        if (!socket.write(chunk)) {
          socket.once("drain", pump);
          return;
        }
      }
      resolve();
    };
    pump();
  });
  const elapsed = performance.now() - started;
  socket.destroy();
  await sink.stop();
  return { bytesPerSecond: Math.round((bytes * 1000) / elapsed) };
}

/** Reads from the cloud's database (read-only, WAL lets it run beside the cloud). */
export function cloudQuery(cloud, sql, ...params) {
  const db = new Database(cloud.database, { readonly: true, fileMustExist: true });
  try {
    return db.prepare(sql).get(...params);
  } finally {
    db.close();
  }
}

/** A figure rounded to `digits` decimals (null stays null). */
export const round = (v, digits = 1) =>
  v === null || v === undefined ? null : Math.round(v * 10 ** digits) / 10 ** digits;
/** A goal of a scenario and whether it was met. */
export const goal = (what, target, measured, met) => ({ what, target, measured, met });
/** A row of a scenario's table in docs/benchmarks.md. */
export const row = (metric, fieldgate, peer, ratioValue, goalText, met) => ({
  metric,
  fieldgate,
  peer,
  ratio: ratioValue,
  goal: goalText,
  met,
});

export function ratio(a, b) {
  return a && b ? Math.round((a / b) * 1000) / 1000 : null;
}

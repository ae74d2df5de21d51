#!/usr/bin/env node
// `npm start`: the whole product on one machine. Starts the cloud on its embedded defaults in
// ./data, registers a demo gateway, and starts an agent that enrolls inside the window and
// reports. Ctrl-C or SIGTERM stops both. Re-running reuses ./data: the gateway stays enrolled.
// FIELDGATE_DATA_DIR, FIELDGATE_HTTP_PORT and FIELDGATE_MQTT_PORT reach the cloud unchanged.
import { spawn } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import fs from "node:fs";
import https from "node:https";
import path from "node:path";
import { pathToFileURL } from "node:url";

const root = path.resolve(import.meta.dirname, "..");
const dataDir = path.resolve(process.env.FIELDGATE_DATA_DIR ?? "./data");
const agentDir = path.join(dataDir, "demo-agent");
const logDir = path.join(dataDir, "logs");
const say = (text) => process.stdout.write(`[demo] ${text}\n`);

fs.mkdirSync(logDir, { recursive: true, mode: 0o700 });
const children = [];

// Each child gets an IPC channel that closes when the demo dies, however it dies; the preload
// stops the child then (scripts/exit-with-parent.mjs).
const exitWithParent = ["--import", pathToFileURL(path.join(root, "scripts", "exit-with-parent.mjs")).href];

function start(name, args, env = {}) {
  const log = fs.openSync(path.join(logDir, `${name}.log`), "a", 0o600);
  const child = spawn(process.execPath, [...exitWithParent, ...args], {
    stdio: ["ignore", log, "pipe", "ipc"],
    env: { ...process.env, ...env },
  });
  child.stderr.on("data", (chunk) => process.stderr.write(chunk));
  child.on("exit", (code, signal) => {
    if (!stopping) {
      say(`${name} exited (${signal ?? code}); see ${path.join(logDir, `${name}.log`)}`);
      stop(1);
    }
  });
  children.push(child);
  return child;
}

let stopping = false;
async function stop(code = 0) {
  if (stopping) return;
  stopping = true;
  say("stopping the agent and the cloud…");
  for (const child of [...children].reverse()) {
    if (child.exitCode === null) {
      child.kill("SIGINT");
      await new Promise((r) => {
        child.once("exit", r);
        setTimeout(r, 10_000);
      });
    }
  }
  process.exit(code);
}
process.on("SIGINT", () => void stop(0));
process.on("SIGTERM", () => void stop(0));
// `npm start` runs this through /bin/sh; a shell that does not exec its last command (dash) dies
// of a SIGTERM that npm passes on and leaves this process behind. So stop with the parent too.
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) void stop(0);
}, 500).unref();

async function waitFor(check, what, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await check().catch(() => undefined);
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function api(runtime, method, p, body) {
  const cred = JSON.parse(fs.readFileSync(path.join(dataDir, "admin-credential.json"), "utf8"));
  const ca = fs.readFileSync(path.join(dataDir, "pki", "ca.crt"));
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = https.request(new URL(p, runtime.url), {
      method,
      ca,
      headers: {
        authorization: `Basic ${Buffer.from(`${cred.credentialId}:${cred.secret}`).toString("base64")}`,
        ...(payload ? { "content-type": "application/json" } : {}),
      },
    });
    req.on("response", (res) => {
      let text = "";
      res.on("data", (c) => (text += c));
      res.on("end", () => resolve({ status: res.statusCode, body: text ? JSON.parse(text) : undefined }));
    });
    req.on("error", reject);
    req.end(payload);
  });
}

async function main() {
  say(`starting fieldgate-cloud (data in ${dataDir}, logs in ${logDir})`);
  fs.rmSync(path.join(dataDir, "runtime.json"), { force: true });
  start("cloud", [path.join(root, "cloud/dist/cli/main.js"), "serve", "--data-dir", dataDir, "--host", "127.0.0.1"]);
  const runtime = await waitFor(
    async () => JSON.parse(fs.readFileSync(path.join(dataDir, "runtime.json"), "utf8")),
    "the cloud to start",
  );
  say(`cloud ready: API ${runtime.url}, MQTT mqtts://localhost:${runtime.mqttPort}`);
  const operator = await demoOperator(runtime);

  // One demo gateway, remembered across runs.
  const demoFile = path.join(dataDir, "demo-device.json");
  const uuid = fs.existsSync(demoFile) ? JSON.parse(fs.readFileSync(demoFile, "utf8")).uuid : randomUUID();
  fs.writeFileSync(demoFile, JSON.stringify({ uuid }));
  const enrolled = fs.existsSync(path.join(agentDir, "identity", "device.crt"));
  let token;
  const existing = await api(runtime, "GET", `/api/v1/devices/${uuid}`);
  if (existing.status === 404) {
    const created = await api(runtime, "POST", "/api/v1/devices", {
      uuid,
      name: "demo-gateway",
      location: "your desk",
      tags: ["demo"],
    });
    token = created.body.enrollmentToken;
    say(`registered demo gateway ${uuid}; its window is open until ${created.body.windowExpiresAt}`);
  } else if (!enrolled) {
    const reset = await api(runtime, "POST", `/api/v1/devices/${uuid}/reset-token`);
    token = reset.body.enrollmentToken;
    say(`opened a new enrollment window for ${uuid}`);
  }

  fs.mkdirSync(agentDir, { recursive: true, mode: 0o700 });
  const configFile = path.join(agentDir, "agent.json");
  const config = {
    uuid,
    dataDir: agentDir,
    cloud: { url: runtime.url, caFile: path.join(dataDir, "pki", "ca.crt") },
    telemetry: { sampleInterval: "5s", publishInterval: "1s", syntheticRate: 1 },
    log: { level: "info" },
  };
  fs.writeFileSync(configFile, `${JSON.stringify(config, null, 2)}\n`);
  say("starting fieldgate-agent; it enrolls inside the window, then reports over mTLS MQTT");
  // The token goes through the environment, never into a file on disk.
  start(
    "agent",
    [path.join(root, "agent/dist/cli/main.js"), "run", "--config", configFile],
    token ? { FIELDGATE_AGENT_ENROLLMENT_TOKEN: token } : {},
  );

  const device = await waitFor(async () => {
    const res = await api(runtime, "GET", `/api/v1/devices/${uuid}`);
    return res.body?.online && res.body.telemetryCount > 0 ? res.body : undefined;
  }, "the agent to enroll and report");
  say(`gateway ${uuid} is enrolled (certificate ${device.certificate.serial}) and reporting.`);
  say("try, in another terminal:");
  say(`  npx fieldgate-cloud devices show ${uuid}`);
  say(`  npx fieldgate-cloud devices telemetry ${uuid}`);
  const shownConfig = path.relative(process.cwd(), configFile);
  say(`  npx fieldgate-agent status --config ${shownConfig.startsWith("..") ? configFile : shownConfig}`);
  say(`console: ${runtime.url}/ (log in as ${operator.email}, password ${operator.password})`);
  say(
    `  the browser warns about the cloud's own certificate authority: trust ${path.join(dataDir, "pki", "ca.crt")} or accept it`,
  );
  say("Ctrl-C stops both.");
}

/**
 * The demo's console login: an admin user made once, its password generated and kept beside the
 * admin credential (0600), so a re-run prints the same login.
 */
async function demoOperator(runtime) {
  const file = path.join(dataDir, "demo-operator.json");
  if (fs.existsSync(file)) return JSON.parse(fs.readFileSync(file, "utf8"));
  const operator = { email: "operator@demo.fieldgate.local", password: randomBytes(12).toString("base64url") };
  const groups = await api(runtime, "GET", "/api/v1/groups");
  const root = groups.body.items.find((g) => g.parentId === null);
  const created = await api(runtime, "POST", "/api/v1/users", {
    email: operator.email,
    name: "Demo operator",
    password: operator.password,
    roles: [{ group: root.id, role: "admin" }],
  });
  if (created.status === 409) {
    // Made by an earlier run whose file is gone: the password is unknown, so set a new one.
    const users = await api(runtime, "GET", "/api/v1/users");
    const user = users.body.items.find((u) => u.email === operator.email);
    const edited = await api(runtime, "PATCH", `/api/v1/users/${user.id}`, { password: operator.password });
    if (edited.status !== 200) throw new Error(`could not reset the demo operator: ${JSON.stringify(edited.body)}`);
  } else if (created.status !== 201) {
    throw new Error(`could not create the demo operator: ${JSON.stringify(created.body)}`);
  }
  fs.writeFileSync(file, `${JSON.stringify(operator, null, 2)}\n`, { mode: 0o600 });
  return operator;
}

main().catch((err) => {
  say(`failed: ${err.message}`);
  void stop(1);
});

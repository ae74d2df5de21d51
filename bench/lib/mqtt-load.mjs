#!/usr/bin/env node
// The one load generator of the benchmark: MQTT.js clients over mTLS, the same code against
// fieldgate, raw Aedes and Mosquitto. Runs as its own process so the broker under test keeps a
// core of its own. Input: a JSON job file (argv[2]); output: one JSON result on stdout.
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import tls from "node:tls";
import mqtt from "mqtt";

const job = JSON.parse(readFileSync(process.argv[2], "utf8"));
const ca = readFileSync(job.caFile, "utf8");

function percentiles(values) {
  if (values.length === 0) return { p50: null, p99: null, max: null };
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
  const round = (v) => Math.round(v * 10) / 10;
  return { p50: round(at(0.5)), p99: round(at(0.99)), max: round(sorted[sorted.length - 1]) };
}

/** Each client's TLS context, built before any clock starts: what is timed is the connection, not PEM parsing. */
function secureContexts() {
  return job.clients.map((c) =>
    tls.createSecureContext({ key: readFileSync(c.keyFile, "utf8"), cert: readFileSync(c.certFile, "utf8"), ca }),
  );
}

function connect(client, secureContext, options = {}) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const c = mqtt.connect(job.url, {
      clientId: client.clientId,
      secureContext,
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: job.connectTimeoutMs ?? 60_000,
      keepalive: 60,
      ...options,
    });
    c.once("connect", () => resolve({ client: c, ms: performance.now() - started }));
    c.once("error", (err) => {
      c.end(true);
      reject(err);
    });
    c.once("close", () => reject(new Error("closed before CONNACK")));
  });
}

/** QoS 1 publishes, `inflight` outstanding per client, for `durationMs`; one reading per message. */
async function publish() {
  const contexts = secureContexts();
  const sessions = await Promise.all(job.clients.map((c, i) => connect(c, contexts[i], { clean: true })));
  const latencies = [];
  let acked = 0;
  let failed = 0;
  const started = performance.now();
  const deadline = started + job.durationMs;
  await Promise.all(
    sessions.map(({ client }, i) => {
      const topic = job.clients[i].topic;
      const stream = randomBytes(16).toString("hex");
      let seq = 0;
      return new Promise((resolve) => {
        let outstanding = 0;
        const next = () => {
          if (performance.now() >= deadline) {
            if (outstanding === 0) resolve();
            return;
          }
          seq += 1;
          outstanding += 1;
          const payload = `{"v":1,"stream":"${stream}","seq":${seq},"readings":[{"name":"load","ts":${Date.now()},"value":${seq}}]}`;
          const sent = performance.now();
          client.publish(topic, payload, { qos: 1 }, (err) => {
            outstanding -= 1;
            if (err) failed += 1;
            else {
              acked += 1;
              if (latencies.length < 200_000) latencies.push(performance.now() - sent);
            }
            next();
          });
        };
        for (let k = 0; k < job.inflight; k++) next();
      });
    }),
  );
  const ms = performance.now() - started;
  await Promise.all(sessions.map(({ client }) => client.endAsync()));
  return {
    acked,
    failed,
    ms: Math.round(ms),
    perSecond: Math.round((acked * 1000) / ms),
    ackMs: percentiles(latencies),
  };
}

/** Every client connects at the same instant: a reconnect storm. */
async function storm() {
  const contexts = secureContexts();
  const started = performance.now();
  const latencies = [];
  let failed = 0;
  let firstError = null;
  const clients = [];
  await Promise.all(
    job.clients.map((c, i) =>
      connect(c, contexts[i], { clean: false }).then(
        ({ client, ms }) => {
          latencies.push(ms);
          clients.push(client);
        },
        (err) => {
          failed += 1;
          firstError ??= err.message;
        },
      ),
    ),
  );
  const ms = performance.now() - started;
  await Promise.all(clients.map((c) => c.endAsync()));
  return {
    connected: latencies.length,
    failed,
    firstError,
    ms: Math.round(ms),
    perSecond: Math.round((latencies.length * 1000) / ms),
    connackMs: percentiles(latencies),
  };
}

const result = job.mode === "storm" ? await storm() : await publish();
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(0);

// The scenarios of issue #7. Each returns its figures, the peers and limits measured in the same
// run, their ratios, and table rows for docs/benchmarks.md. Sizes scale by `ctx.scale` (--quick: 0.1).
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import { freemem, tmpdir } from "node:os";
import path from "node:path";
import readline from "node:readline";
import { consoleScenario } from "./console-scenario.mjs";
import {
  agentBin,
  bareNodeFloor,
  cloudQuery,
  enrollTypedFleet,
  fleetClients,
  goal,
  loopbackThroughput,
  p256SignRate,
  processStats,
  ratio,
  round,
  row,
  runLoad,
  runSim,
  sleep,
  sqliteInsertRate,
  startCloud,
  startFirmwareCloud,
  startMosquitto,
  startRawAedes,
  uploadImage,
  workDir,
} from "./kit.mjs";
import { postgresScenario } from "./postgres-scenario.mjs";
import { rolloutScenario } from "./rollout-scenario.mjs";

const SHM = "/dev/shm";
const MiB = 2 ** 20;
/** Published figures, for context only (never measured here). */
const PUBLISHED = {
  // EMQX 5.0.21, one node of 64 cores: 2,000,000 QoS 0 messages/s of 16 bytes (emqx.com blog,
  // "MQTT performance benchmark testing: EMQX single node supports 2M message throughput", 2023-08).
  emqxMessagesPerSecondPerCore: 2_000_000 / 64,
  azureDpsPerSecond: 1000 / 60,
  awsIotConnectsPerSecond: 500,
  balenaSupervisorIdleMiB: 45,
  zigbee2mqttIdleMiB: 150,
};

const cloudNodeArgs = (ctx, name) =>
  ctx.profileDir ? ["--cpu-prof", "--cpu-prof-dir", ctx.profileDir, "--cpu-prof-name", `cloud-${name}.cpuprofile`] : [];
const simNodeArgs = (ctx, name) =>
  ctx.profileDir ? ["--cpu-prof", "--cpu-prof-dir", ctx.profileDir, "--cpu-prof-name", `sim-${name}.cpuprofile`] : [];
const scaled = (ctx, full, min = 1) => Math.max(min, Math.round(full * ctx.scale));

async function newCloud(ctx, name, args = []) {
  const dir = workDir(name);
  const dataDir = path.join(dir, "cloud");
  return { dir, cloud: await startCloud({ dataDir, args, nodeArgs: cloudNodeArgs(ctx, name) }) };
}

/** An enrolled fleet shared by the enrollment and reconnect storms (the second reuses the first's). */
async function enrolledFleet(ctx, devices) {
  if (ctx.storm && ctx.storm.devices === devices) return ctx.storm;
  const { dir, cloud } = await newCloud(ctx, "storm");
  const fleetDir = workDir("storm-fleet", SHM);
  const sim = await runSim(
    cloud,
    ["--enroll", "--devices", String(devices), "--rate", "0", "--duration", "0", "--fleet-dir", fleetDir],
    { nodeArgs: simNodeArgs(ctx, "enroll") },
  );
  ctx.storm = { devices, dir, cloud, fleetDir, sim };
  return ctx.storm;
}

const ingest = {
  name: "ingest",
  title: "telemetry ingest: simulated agents → mTLS MQTT QoS 1 → cloud → SQLite, counted in storage",
  async run(ctx) {
    const { dir, cloud } = await newCloud(ctx, "ingest");
    const fleetDir = workDir("ingest-fleet", SHM);
    const devices = scaled(ctx, 100, 20);
    // Offered at the goal: readings produced beyond what is stored only cost the simulator CPU.
    const offered = 150_000;
    const perDevice = Math.ceil(offered / devices);
    const seconds = ctx.quick ? 5 : 30;
    const raw = sqliteInsertRate(dir, ctx.quick ? 1500 : 3000);
    try {
      const sim = await runSim(
        cloud,
        [
          "--enroll",
          "--devices",
          String(devices),
          "--rate",
          String(perDevice),
          "--batch",
          "1000",
          "--duration",
          `${seconds}s`,
          "--drain-timeout",
          "60s",
          "--fleet-dir",
          fleetDir,
        ],
        { nodeArgs: simNodeArgs(ctx, "ingest") },
      );
      const storedLive = cloudQuery(cloud, "SELECT count(*) AS n FROM telemetry").n;
      const live = sim.telemetry.ackedPerSecond;
      // The ceiling: the same devices publish what they accumulated offline, so the simulator spends
      // nothing on producing and the cloud's storing is what limits (two cores: the simulator
      // producing 150k readings/s itself takes most of one).
      const backlogEach = ctx.quick ? 25_000 : 50_000;
      const drain = await runSim(
        cloud,
        [
          "--fleet-dir",
          fleetDir,
          "--devices",
          String(devices),
          "--rate",
          "0",
          "--backlog",
          String(backlogEach),
          "--batch",
          "1000",
          "--until-drained",
          "--duration",
          "10m",
        ],
        { nodeArgs: simNodeArgs(ctx, "ingest-ceiling") },
      );
      const storedBatched = cloudQuery(cloud, "SELECT count(*) AS n FROM telemetry").n;
      const stored = drain.backlog.drainPerSecond;
      const ackedTotal = sim.telemetry.acked + drain.telemetry.acked;

      // Unbatched: one reading per message, the same MQTT.js generator against the three brokers.
      const load = {
        mode: "publish",
        caFile: cloud.caFile,
        clients: fleetClients(fleetDir, ctx.quick ? 10 : 50),
        inflight: 16,
        durationMs: ctx.quick ? 4000 : 15_000,
      };
      const fieldgate = await runLoad({ ...load, url: cloud.mqttUrl }, dir);
      const storedUnbatched = cloudQuery(cloud, "SELECT count(*) AS n FROM telemetry").n - storedBatched;
      const mosquitto = await startMosquitto(cloud.pki, dir);
      const mosq = await runLoad({ ...load, url: mosquitto.url }, dir).finally(() => mosquitto.stop());
      const aedes = await startRawAedes(cloud.pki);
      const bare = await runLoad({ ...load, url: aedes.url }, dir).finally(() => aedes.stop());

      const vsRaw = ratio(stored, raw.rowsPerSecond);
      const vsMosquitto = ratio(fieldgate.perSecond, mosq.perSecond);
      return {
        figures: {
          devices,
          offeredReadingsPerSecond: devices * perDevice,
          liveStoredReadingsPerSecond: live,
          liveStored: storedLive,
          storedReadingsPerSecond: stored,
          ceilingReadings: drain.backlog.written,
          storedTotal: storedBatched,
          ackedBySim: ackedTotal,
          storedEqualsAcked: storedBatched === ackedTotal,
          p99PublishToStoredMs: sim.telemetry.storedLatencyMs.p99,
          p50PublishToStoredMs: sim.telemetry.storedLatencyMs.p50,
          ceilingP99PublishToStoredMs: drain.telemetry.storedLatencyMs.p99,
          unbatchedMessagesPerSecond: fieldgate.perSecond,
          unbatchedStored: storedUnbatched,
          unbatchedStoredEqualsAcked: storedUnbatched === fieldgate.acked,
          unbatchedP99AckMs: fieldgate.ackMs.p99,
        },
        peers: {
          rawSqliteRowsPerSecond: raw.rowsPerSecond,
          mosquittoMessagesPerSecond: mosq.perSecond,
          mosquittoP99AckMs: mosq.ackMs.p99,
          rawAedesMessagesPerSecond: bare.perSecond,
          rawAedesP99AckMs: bare.ackMs.p99,
          emqxMessagesPerSecondPerCorePublished: round(PUBLISHED.emqxMessagesPerSecondPerCore, 0),
        },
        ratios: {
          storedVsRawSqlite: vsRaw,
          unbatchedVsMosquitto: vsMosquitto,
          unbatchedVsRawAedes: ratio(fieldgate.perSecond, bare.perSecond),
        },
        goals: [
          goal("stored readings/s", "≥ 150,000", stored, stored >= 150_000),
          goal("stored vs raw batched SQLite", "≥ 0.6", vsRaw, vsRaw >= 0.6),
          goal("unbatched messages/s vs Mosquitto", "≥ 0.8", vsMosquitto, vsMosquitto >= 0.8),
          goal("stored = acknowledged", "exact", storedBatched === ackedTotal, storedBatched === ackedTotal),
        ],
        rows: [
          row(
            `batched ×1000, ${devices} devices: stored readings/s (ceiling)`,
            stored,
            `raw SQLite ${raw.rowsPerSecond}`,
            vsRaw,
            "≥ 150k/s and ≥ 0.6",
            stored >= 150_000 && vsRaw >= 0.6,
          ),
          row(
            "batched, live at 150k/s offered: stored readings/s",
            live,
            `raw SQLite ${raw.rowsPerSecond}`,
            ratio(live, raw.rowsPerSecond),
            "(the simulator producing shares the 2 cores)",
            null,
          ),
          row(
            "batched, live: p50 / p99 publish→stored",
            `${sim.telemetry.storedLatencyMs.p50} / ${sim.telemetry.storedLatencyMs.p99} ms`,
            "",
            null,
            "reported",
            null,
          ),
          row(
            "stored = acknowledged (batched + unbatched)",
            `${storedBatched === ackedTotal && storedUnbatched === fieldgate.acked}`,
            "",
            null,
            "exact",
            storedBatched === ackedTotal && storedUnbatched === fieldgate.acked,
          ),
          row(
            "unbatched: messages/s",
            fieldgate.perSecond,
            `Mosquitto ${mosq.perSecond}`,
            vsMosquitto,
            "≥ 0.8",
            vsMosquitto >= 0.8,
          ),
          row(
            "unbatched: messages/s, per core (the cloud runs on one)",
            fieldgate.perSecond,
            `EMQX ${round(PUBLISHED.emqxMessagesPerSecondPerCore, 0)} per core (published: 2M/s QoS 0 on 64 cores)`,
            ratio(fieldgate.perSecond, PUBLISHED.emqxMessagesPerSecondPerCore),
            "(reported)",
            null,
          ),
          row(
            "unbatched: messages/s",
            fieldgate.perSecond,
            `raw Aedes ${bare.perSecond}`,
            ratio(fieldgate.perSecond, bare.perSecond),
            "(cost of hooks + ingest)",
            null,
          ),
        ],
      };
    } finally {
      await cloud.stop();
    }
  },
};

const enrollStorm = {
  name: "enroll-storm",
  title: "re-enrollment storm: devices with open windows enroll and connect",
  async run(ctx) {
    const devices = scaled(ctx, 10_000);
    const sign = p256SignRate(ctx.quick ? 500 : 2000);
    const { sim } = await enrolledFleet(ctx, devices);
    const e = sim.enrollment;
    const perSecond = e.perSecond;
    const seconds = round(e.ms / 1000);
    // 10,000 in 30 s is 333/s; the quick run keeps the rate goal at a tenth of the devices.
    const target = 10_000 / 30;
    return {
      figures: {
        devices,
        registerSeconds: round(e.registerMs / 1000),
        enrolled: e.enrolled,
        connected: sim.connect.connected,
        failed: e.failed + sim.connect.failed,
        seconds,
        perSecond,
        enrollP99Ms: e.latencyMs.p99,
        connackP99Ms: sim.connect.connackMs.p99,
        firstError: e.firstError ?? sim.connect.firstError,
      },
      peers: {
        p256SignaturesPerSecond: sign.signaturesPerSecond,
        azureDpsPerSecondPublished: round(PUBLISHED.azureDpsPerSecond),
      },
      ratios: {
        vsP256Sign: ratio(perSecond, sign.signaturesPerSecond),
        vsAzureDps: ratio(perSecond, PUBLISHED.azureDpsPerSecond),
      },
      goals: [goal("enrolled and connected per second", "≥ 333 (10,000 in 30 s)", perSecond, perSecond >= target)],
      rows: [
        row(
          `enrolled + connected (${devices})`,
          `${perSecond}/s, ${seconds} s`,
          `P-256 sign ${sign.signaturesPerSecond}/s`,
          ratio(perSecond, sign.signaturesPerSecond),
          "≥ 333/s (10k ≤ 30 s)",
          perSecond >= target,
        ),
        row(
          "vs Azure DPS (published)",
          `${perSecond}/s`,
          "DPS 16.7/s",
          ratio(perSecond, PUBLISHED.azureDpsPerSecond),
          "",
          null,
        ),
      ],
    };
  },
};

const reconnectStorm = {
  name: "reconnect-storm",
  title: "reconnect storm: enrolled devices reconnect over mTLS at once",
  async run(ctx) {
    const devices = scaled(ctx, 10_000);
    const { dir, cloud, fleetDir } = await enrolledFleet(ctx, devices);
    try {
      const job = {
        mode: "storm",
        caFile: cloud.caFile,
        clients: fleetClients(fleetDir, devices),
        connectTimeoutMs: 120_000,
      };
      const fieldgate = await runLoad({ ...job, url: cloud.mqttUrl }, dir);
      // The agent's own path too: MqttSession with persistent session, subscriptions and presence.
      const sim = await runSim(
        cloud,
        ["--fleet-dir", fleetDir, "--devices", String(devices), "--rate", "0", "--duration", "0"],
        {
          nodeArgs: simNodeArgs(ctx, "reconnect"),
        },
      );
      const mosquitto = await startMosquitto(cloud.pki, dir);
      const mosq = await runLoad({ ...job, url: mosquitto.url }, dir).finally(() => mosquitto.stop());
      const vsMosquitto = ratio(fieldgate.perSecond, mosq.perSecond);
      const target = 10_000 / 30;
      return {
        figures: {
          devices,
          connected: fieldgate.connected,
          failed: fieldgate.failed,
          seconds: round(fieldgate.ms / 1000),
          perSecond: fieldgate.perSecond,
          connackP50Ms: fieldgate.connackMs.p50,
          connackP99Ms: fieldgate.connackMs.p99,
          firstError: fieldgate.firstError,
          agentPathSeconds: round(sim.connect.ms / 1000),
          agentPathPerSecond: sim.connect.perSecond,
          agentPathConnackP99Ms: sim.connect.connackMs.p99,
          agentPathFailed: sim.connect.failed,
        },
        peers: {
          mosquittoSeconds: round(mosq.ms / 1000),
          mosquittoPerSecond: mosq.perSecond,
          mosquittoConnackP99Ms: mosq.connackMs.p99,
          mosquittoFailed: mosq.failed,
          awsIotConnectsPerSecondPublished: PUBLISHED.awsIotConnectsPerSecond,
        },
        ratios: { vsMosquitto, vsAwsIotLimit: ratio(fieldgate.perSecond, PUBLISHED.awsIotConnectsPerSecond) },
        goals: [
          goal(
            "connected per second",
            "≥ 333 (10,000 in 30 s)",
            fieldgate.perSecond,
            fieldgate.perSecond >= target && fieldgate.failed === 0,
          ),
        ],
        rows: [
          row(
            `reconnect (${devices}), MQTT.js storm`,
            `${fieldgate.perSecond}/s, p99 CONNACK ${fieldgate.connackMs.p99} ms`,
            `Mosquitto ${mosq.perSecond}/s, p99 ${mosq.connackMs.p99} ms`,
            vsMosquitto,
            "≥ 333/s (10k ≤ 30 s)",
            fieldgate.perSecond >= target && fieldgate.failed === 0,
          ),
          row(
            "reconnect, agent code path (sim)",
            `${sim.connect.perSecond}/s, p99 ${sim.connect.connackMs.p99} ms`,
            "AWS IoT 500/s (published)",
            ratio(sim.connect.perSecond, PUBLISHED.awsIotConnectsPerSecond),
            "",
            null,
          ),
        ],
      };
    } finally {
      await cloud.stop();
      ctx.storm = undefined;
    }
  },
};

const outbox = {
  name: "outbox",
  title: "offline outbox: one agent accumulates an hour at 1,000/s, then reconnects and drains",
  async run(ctx) {
    const { dir, cloud } = await newCloud(ctx, "outbox");
    // On the real disk, not tmpfs: the outbox's fsyncs are part of what is measured.
    const fleetDir = workDir("outbox-fleet", tmpdir());
    const readings = scaled(ctx, 3_600_000);
    const raw = sqliteInsertRate(dir, 1000);
    try {
      await runSim(cloud, ["--enroll", "--devices", "1", "--rate", "0", "--duration", "0", "--fleet-dir", fleetDir]);
      const sim = await runSim(
        cloud,
        [
          "--fleet-dir",
          fleetDir,
          "--devices",
          "1",
          "--rate",
          "0",
          "--backlog",
          String(readings),
          "--until-drained",
          "--duration",
          "30m",
          "--drain-timeout",
          "0",
        ],
        { nodeArgs: simNodeArgs(ctx, "outbox") },
      );
      const uuid = JSON.parse(readFileSync(path.join(fleetDir, "fleet.json"), "utf8")).devices[0];
      const check = cloudQuery(
        cloud,
        `SELECT count(*) AS n, count(DISTINCT t.value) AS distinctValues, min(t.value) AS lo, max(t.value) AS hi
         FROM telemetry t JOIN devices d ON d.id = t.device_id WHERE d.uuid = ?`,
        uuid,
      );
      const lost = readings - check.distinctValues;
      const duplicates = check.n - check.distinctValues;
      const write = sim.backlog.writePerSecond;
      const drain = sim.backlog.drainPerSecond;
      return {
        figures: {
          readings,
          writePerSecond: write,
          drainPerSecond: drain,
          drainSeconds: round(sim.backlog.drainMs / 1000),
          stored: check.n,
          lost,
          duplicates,
          valuesOneToN: check.lo === 1 && check.hi === readings,
          batch: 500,
        },
        peers: { rawSqliteRowsPerSecond: raw.rowsPerSecond },
        ratios: {
          writeVsRawSqlite: ratio(write, raw.rowsPerSecond),
          drainVsRawSqlite: ratio(drain, raw.rowsPerSecond),
        },
        goals: [
          goal("outbox write readings/s", "≥ 100,000", write, write >= 100_000),
          goal("drain readings/s", "≥ 50,000", drain, drain >= 50_000),
          goal("lost", "0", lost, lost === 0),
          goal("duplicates in storage", "0", duplicates, duplicates === 0),
        ],
        rows: [
          row(
            `outbox write (${readings})`,
            `${write}/s`,
            `raw SQLite ${raw.rowsPerSecond}/s`,
            ratio(write, raw.rowsPerSecond),
            "≥ 100k/s",
            write >= 100_000,
          ),
          row(
            "outbox drain to cloud storage",
            `${drain}/s`,
            `raw SQLite ${raw.rowsPerSecond}/s`,
            ratio(drain, raw.rowsPerSecond),
            "≥ 50k/s",
            drain >= 50_000,
          ),
          row("lost / duplicates", `${lost} / ${duplicates}`, "", null, "0 / 0", lost === 0 && duplicates === 0),
        ],
      };
    } finally {
      await cloud.stop();
    }
  },
};

const fanout = {
  name: "fanout",
  title: "firmware fan-out: one image to many devices at once, 10% of transfers cut midway and resumed",
  async run(ctx) {
    const cloud = await startFirmwareCloud(workDir("fanout"), { nodeArgs: cloudNodeArgs(ctx, "fanout") });
    const devices = scaled(ctx, 200, 10);
    const size = scaled(ctx, 50 * MiB);
    // Every device's staged image may exist at once: tmpfs (RAM) only with room to spare for the
    // rest of the machine, else the real disk (then its write rate weighs on the figure).
    const fleetDir = workDir("fanout-fleet", freemem() > size * devices + 8 * 2 ** 30 ? SHM : tmpdir());
    try {
      await cloud.api("POST", "/api/v1/device-types", { name: "bench-gw", firmwareCompat: "bench-gw" });
      await uploadImage(cloud, "bench-os", "1.0.0", "bench-gw", randomBytes(size));
      await enrollTypedFleet(cloud, "bench-gw", devices, fleetDir);
      const uuids = JSON.parse(readFileSync(path.join(fleetDir, "fleet.json"), "utf8")).devices;
      for (const uuid of uuids) await cloud.api("POST", `/api/v1/devices/${uuid}/jobs`, { firmware: "bench-os@1.0.0" });
      const loopback = await loopbackThroughput(ctx.quick ? 1000 : 3000);
      const loopbackTls = await loopbackThroughput(ctx.quick ? 1000 : 3000, { tlsPki: cloud.pki });
      const sim = await runSim(
        cloud,
        [
          "--fleet-dir",
          fleetDir,
          "--devices",
          String(devices),
          "--rate",
          "0",
          "--kill-downloads",
          "10%",
          "--expect-jobs",
          String(devices),
          "--duration",
          "30m",
        ],
        { nodeArgs: simNodeArgs(ctx, "fanout") },
      );
      const u = sim.updates;
      const vsLoopback = ratio(u.bytesPerSecond, loopback.bytesPerSecond);
      const vsLoopbackTls = ratio(u.bytesPerSecond, loopbackTls.bytesPerSecond);
      return {
        figures: {
          devices,
          imageMiB: round(size / MiB),
          aggregateMiBPerSecond: round(u.bytesPerSecond / MiB),
          seconds: round(u.downloadMs / 1000),
          succeeded: u.succeeded,
          failed: u.failed,
          interrupted: u.interrupted,
          resumed: u.resumed,
          corrupt: u.corrupt,
          stagedOn: fleetDir.startsWith(SHM) ? "tmpfs" : "disk",
        },
        peers: {
          loopbackTcpMiBPerSecond: round(loopback.bytesPerSecond / MiB),
          loopbackTlsMiBPerSecond: round(loopbackTls.bytesPerSecond / MiB),
        },
        ratios: { vsLoopbackTcp: vsLoopback, vsLoopbackTls },
        goals: [
          goal("aggregate vs loopback TCP", "≥ 0.5", vsLoopback, vsLoopback >= 0.5),
          goal("corrupt installs", "0", u.corrupt, u.corrupt === 0 && u.succeeded === devices),
        ],
        rows: [
          row(
            `fan-out ${round(size / MiB)} MiB × ${devices}`,
            `${round(u.bytesPerSecond / MiB)} MiB/s`,
            `loopback TCP ${round(loopback.bytesPerSecond / MiB)} MiB/s`,
            vsLoopback,
            "≥ 0.5",
            vsLoopback >= 0.5,
          ),
          row(
            "same, against one TLS stream (the encryption ceiling on 2 cores)",
            `${round(u.bytesPerSecond / MiB)} MiB/s`,
            `loopback TLS ${round(loopbackTls.bytesPerSecond / MiB)} MiB/s`,
            vsLoopbackTls,
            "(reported)",
            null,
          ),
          row(
            "cut midway / resumed / corrupt",
            `${u.interrupted} / ${u.resumed} / ${u.corrupt}`,
            "",
            null,
            "0 corrupt",
            u.corrupt === 0 && u.succeeded === devices,
          ),
        ],
      };
    } finally {
      await cloud.stop();
    }
  },
};

/** V8 flags a small gateway would run the agent with: a 1 MiB young generation instead of up to 16 MiB. */
const LEAN_NODE_OPTIONS = "--max-semi-space-size=1";

const footprint = {
  name: "footprint",
  title: "agent footprint: one real fieldgate-agent, idle, then at 1,000 readings/s",
  async run(ctx) {
    const { dir, cloud } = await newCloud(ctx, "footprint");
    const idleSeconds = ctx.quick ? 6 : 60;
    const loadSeconds = ctx.quick ? 6 : 60;
    try {
      const plain = await measureAgent(cloud, path.join(dir, "plain"), "", idleSeconds, loadSeconds);
      // The same agent with lean V8 flags (NODE_OPTIONS in its service unit): a deployment choice, no code change.
      const lean = await measureAgent(cloud, path.join(dir, "lean"), LEAN_NODE_OPTIONS, idleSeconds, loadSeconds);
      const floor = await bareNodeFloor();
      const floorMiB = {
        rssMiB: round(floor.rss / MiB),
        anonMiB: round(floor.anon / MiB),
        fileMiB: round(floor.file / MiB),
      };
      const met = (m) => m.idleMiB <= 50 && m.loadMiB <= 70 && m.loadCpu <= 10;
      return {
        figures: {
          idleSeconds,
          loadSeconds,
          idleRssMiB: plain.idleMiB,
          idleEnd: plain.idleEnd,
          idleCpuPercent: plain.idleCpu,
          loadRssMiB: plain.loadMiB,
          loadCpuPercent: plain.loadCpu,
          readingsPosted: plain.posted,
          readingsStored: plain.stored,
          lean: { nodeOptions: LEAN_NODE_OPTIONS, ...lean },
        },
        peers: {
          bareNode: floorMiB,
          balenaSupervisorIdleMiBPublished: PUBLISHED.balenaSupervisorIdleMiB,
          zigbee2mqttIdleMiBPublished: PUBLISHED.zigbee2mqttIdleMiB,
        },
        ratios: {
          idleVsBalenaSupervisor: ratio(plain.idleMiB, PUBLISHED.balenaSupervisorIdleMiB),
          idleVsZigbee2mqtt: ratio(plain.idleMiB, PUBLISHED.zigbee2mqttIdleMiB),
          leanIdleVsBalenaSupervisor: ratio(lean.idleMiB, PUBLISHED.balenaSupervisorIdleMiB),
        },
        goals: [
          goal("idle RSS", "≤ 50 MB", plain.idleMiB, plain.idleMiB <= 50),
          goal("RSS at 1,000 readings/s", "≤ 70 MB", plain.loadMiB, plain.loadMiB <= 70),
          goal("CPU at 1,000 readings/s (one core)", "≤ 10%", plain.loadCpu, plain.loadCpu <= 10),
        ],
        rows: [
          row(
            "agent idle RSS",
            `${plain.idleMiB} MiB`,
            "balena-supervisor 45 MB (published)",
            ratio(plain.idleMiB, 45),
            "≤ 50 MB",
            plain.idleMiB <= 50,
          ),
          row(
            "agent idle, at the end of the idle period: RSS (anonymous + file-backed)",
            `${plain.idleEnd.rssMiB} MiB (${plain.idleEnd.anonMiB} + ${plain.idleEnd.fileMiB})`,
            `bare node ${floorMiB.rssMiB} MiB (${floorMiB.anonMiB} + ${floorMiB.fileMiB})`,
            ratio(plain.idleEnd.rssMiB, floorMiB.rssMiB),
            "(the floor: any Node program)",
            null,
          ),
          row(
            "agent at 1,000 readings/s",
            `${plain.loadMiB} MiB, ${plain.loadCpu}% CPU`,
            "zigbee2mqtt 150 MB idle (published)",
            ratio(plain.loadMiB, 150),
            "≤ 70 MB, ≤ 10%",
            plain.loadMiB <= 70 && plain.loadCpu <= 10,
          ),
          row(
            `same, NODE_OPTIONS=${LEAN_NODE_OPTIONS}`,
            `idle ${lean.idleMiB} MiB; load ${lean.loadMiB} MiB, ${lean.loadCpu}% CPU`,
            "balena-supervisor 45 MB (published)",
            ratio(lean.idleMiB, 45),
            "≤ 50 / ≤ 70 MB, ≤ 10%",
            met(lean),
          ),
          row(
            "readings posted / stored in the cloud",
            `${plain.posted} / ${plain.stored}`,
            "",
            null,
            "all stored",
            plain.stored === plain.posted,
          ),
        ],
      };
    } finally {
      await cloud.stop();
    }
  },
};

/**
 * Starts a real `fieldgate-agent run` (default config, enrolled with a token), samples it idle,
 * then while a device program posts 1,000 readings/s to its local API; stops it.
 */
async function measureAgent(cloud, dir, nodeOptions, idleSeconds, loadSeconds) {
  const uuid = crypto.randomUUID();
  const { enrollmentToken } = await cloud.api("POST", "/api/v1/devices", { uuid });
  const agentDir = path.join(dir, "data");
  const configFile = path.join(dir, "agent.json");
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    configFile,
    JSON.stringify({ uuid, dataDir: agentDir, cloud: { url: cloud.url, caFile: cloud.caFile } }),
  );
  const agent = spawn(process.execPath, [agentBin, "run", "--config", configFile], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, NODE_OPTIONS: nodeOptions, FIELDGATE_AGENT_ENROLLMENT_TOKEN: enrollmentToken },
  });
  try {
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("the agent did not connect in 60 s")), 60_000);
      for (const stream of [agent.stdout, agent.stderr]) {
        readline.createInterface({ input: stream }).on("line", (line) => {
          if (/connected to /.test(line)) {
            clearTimeout(timer);
            resolve();
          }
        });
      }
    });
    const idle = await sample(agent.pid, idleSeconds * 1000);
    // A program on the device posts 100 readings every 100 ms through the local API.
    const socketPath = path.join(agentDir, "agent.sock");
    const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 1 });
    let posted = 0;
    const poster = setInterval(() => {
      const ts = Date.now();
      const readings = Array.from({ length: 100 }, (_, i) => ({ name: "bench.load", ts, value: posted + i }));
      posted += 100;
      const req = http.request({
        socketPath,
        path: "/v1/telemetry",
        method: "POST",
        agent: keepAlive,
        headers: { "content-type": "application/json" },
      });
      req.on("response", (res) => res.resume());
      req.on("error", () => undefined);
      req.end(JSON.stringify({ readings }));
    }, 100);
    const load = await sample(agent.pid, loadSeconds * 1000);
    clearInterval(poster);
    keepAlive.destroy();
    await sleep(3000);
    const stored = cloudQuery(
      cloud,
      "SELECT count(*) AS n FROM telemetry t JOIN devices d ON d.id = t.device_id WHERE d.uuid = ? AND t.name = 'bench.load'",
      uuid,
    ).n;
    return {
      idleMiB: round(idle.maxRss / MiB),
      idleEnd: {
        rssMiB: round(idle.last.rss / MiB),
        anonMiB: round(idle.last.anon / MiB),
        fileMiB: round(idle.last.file / MiB),
      },
      idleCpu: round(idle.cpuPercent),
      loadMiB: round(load.maxRss / MiB),
      loadCpu: round(load.cpuPercent),
      posted,
      stored,
    };
  } finally {
    agent.kill("SIGTERM");
    await new Promise((resolve) => agent.once("exit", resolve));
  }
}

/** RSS (max) and CPU share of one core over `ms`, sampled each second. */
async function sample(pid, ms) {
  const first = processStats(pid);
  const started = performance.now();
  let maxRss = first.rss;
  while (performance.now() - started < ms) {
    await sleep(Math.min(1000, ms - (performance.now() - started)));
    maxRss = Math.max(maxRss, processStats(pid).rss);
  }
  const last = processStats(pid);
  const seconds = (performance.now() - started) / 1000;
  return { maxRss, last, cpuPercent: ((last.cpuSeconds - first.cpuSeconds) / seconds) * 100 };
}

const rollout = rolloutScenario({ scaled, round, row, goal, cloudNodeArgs, simNodeArgs, shm: SHM });

const consoleList = consoleScenario({ round, row, goal });

export const scenarios = [
  ingest,
  enrollStorm,
  reconnectStorm,
  outbox,
  fanout,
  footprint,
  rollout,
  consoleList,
  postgresScenario,
];

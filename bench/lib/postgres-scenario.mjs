// Issue #14: the cloud on PostgreSQL beside the embedded SQLite, measured in the same run. Per
// backend: an enrollment storm, a reconnect storm and the batched ingest ceiling, each with the
// cloud's own CPU time per operation (from /proc, so it does not depend on the load generators
// sharing the cores), and the physical reference of that backend (raw inserts of the same rows).
import path from "node:path";
import {
  cloudQuery,
  fleetClients,
  goal,
  postgresInsertRate,
  postgresQuery,
  processStats,
  ratio,
  round,
  row,
  runLoad,
  runSim,
  scratchPostgres,
  sqliteInsertRate,
  startCloud,
  workDir,
} from "./kit.mjs";

const SHM = "/dev/shm";

/** The cloud's CPU milliseconds spent while `work` ran, divided by `count`. */
async function cpuPer(cloud, count, work) {
  const before = processStats(cloud.pid).cpuSeconds;
  const result = await work();
  const spent = processStats(cloud.pid).cpuSeconds - before;
  return { result, cpuMsPerOp: count > 0 ? round((spent * 1000) / count, 2) : null };
}

async function measureBackend(ctx, backend) {
  const dir = workDir(`pg-${backend}`);
  const scratch = backend === "postgres" ? await scratchPostgres("cloud") : undefined;
  const cloud = await startCloud({
    dataDir: path.join(dir, "cloud"),
    args: scratch ? ["--database", scratch.url] : [],
  });
  const count = async (sql) => (scratch ? (await postgresQuery(scratch.url, sql)).n : cloudQuery(cloud, sql).n);
  try {
    const devices = ctx.quick ? 300 : 2000;
    const fleetDir = workDir(`pg-${backend}-fleet`, SHM);
    const enroll = await cpuPer(cloud, devices, () =>
      runSim(cloud, [
        "--enroll",
        "--devices",
        String(devices),
        "--rate",
        "0",
        "--duration",
        "0",
        "--fleet-dir",
        fleetDir,
      ]),
    );
    const reconnect = await cpuPer(cloud, devices, () =>
      runLoad(
        {
          mode: "storm",
          url: cloud.mqttUrl,
          caFile: cloud.caFile,
          clients: fleetClients(fleetDir, devices),
          connectTimeoutMs: 120_000,
        },
        dir,
      ),
    );
    // The ingest ceiling: a backlog published as fast as the cloud stores it, 1000 readings per batch.
    const ingestDevices = 20;
    const backlogEach = ctx.quick ? 10_000 : 50_000;
    const before = await count("SELECT count(*) AS n FROM telemetry");
    const drain = await cpuPer(cloud, ingestDevices * backlogEach, () =>
      runSim(cloud, [
        "--fleet-dir",
        fleetDir,
        "--devices",
        String(ingestDevices),
        "--rate",
        "0",
        "--backlog",
        String(backlogEach),
        "--batch",
        "1000",
        "--until-drained",
        "--duration",
        "10m",
      ]),
    );
    const stored = (await count("SELECT count(*) AS n FROM telemetry")) - before;
    const raw =
      backend === "postgres"
        ? await postgresInsertRate(ctx.quick ? 2000 : 4000)
        : sqliteInsertRate(dir, ctx.quick ? 2000 : 4000);
    return {
      devices,
      enrolledPerSecond: enroll.result.enrollment.perSecond,
      enrollFailed: enroll.result.enrollment.failed,
      cloudCpuMsPerEnrollment: enroll.cpuMsPerOp,
      reconnectPerSecond: reconnect.result.perSecond,
      reconnectFailed: reconnect.result.failed,
      reconnectConnackP99Ms: reconnect.result.connackMs.p99,
      cloudCpuMsPerReconnect: reconnect.cpuMsPerOp,
      storedReadingsPerSecond: drain.result.backlog.drainPerSecond,
      storedEqualsAcked: stored === drain.result.telemetry.acked,
      cloudCpuUsPerReading: drain.cpuMsPerOp === null ? null : round(drain.cpuMsPerOp * 1000, 2),
      rawRowsPerSecond: raw.rowsPerSecond,
      storedVsRaw: ratio(drain.result.backlog.drainPerSecond, raw.rowsPerSecond),
    };
  } finally {
    await cloud.stop();
    await scratch?.drop();
  }
}

export const postgresScenario = {
  name: "postgres",
  title:
    "the cloud on PostgreSQL beside the embedded SQLite: enrollment, reconnect and ingest, cloud CPU per operation",
  async run(ctx) {
    const sqlite = await measureBackend(ctx, "sqlite");
    const postgres = await measureBackend(ctx, "postgres");
    const pgVsRaw = postgres.storedVsRaw;
    const sqliteVsRaw = sqlite.storedVsRaw;
    const exact = sqlite.storedEqualsAcked && postgres.storedEqualsAcked;
    return {
      figures: { sqlite, postgres },
      peers: { rawSqliteRowsPerSecond: sqlite.rawRowsPerSecond, rawPostgresRowsPerSecond: postgres.rawRowsPerSecond },
      ratios: {
        postgresStoredVsRawPostgres: pgVsRaw,
        sqliteStoredVsRawSqlite: sqliteVsRaw,
        postgresVsSqliteEnroll: ratio(postgres.enrolledPerSecond, sqlite.enrolledPerSecond),
        postgresVsSqliteReconnect: ratio(postgres.reconnectPerSecond, sqlite.reconnectPerSecond),
      },
      goals: [
        goal("PostgreSQL stored vs raw PostgreSQL inserts", "≥ 0.6", pgVsRaw, pgVsRaw !== null && pgVsRaw >= 0.6),
        goal("SQLite stored vs raw SQLite inserts", "≥ 0.6", sqliteVsRaw, sqliteVsRaw !== null && sqliteVsRaw >= 0.6),
        goal("stored = acknowledged, both backends", "exact", exact, exact),
      ],
      rows: [
        row(
          "batched ×1000 ingest ceiling, PostgreSQL: stored readings/s",
          postgres.storedReadingsPerSecond,
          `raw PostgreSQL ${postgres.rawRowsPerSecond}`,
          pgVsRaw,
          "≥ 0.6",
          pgVsRaw !== null && pgVsRaw >= 0.6,
        ),
        row(
          "batched ×1000 ingest ceiling, SQLite: stored readings/s",
          sqlite.storedReadingsPerSecond,
          `raw SQLite ${sqlite.rawRowsPerSecond}`,
          sqliteVsRaw,
          "≥ 0.6",
          sqliteVsRaw !== null && sqliteVsRaw >= 0.6,
        ),
        row(
          "cloud CPU per stored reading (PostgreSQL / SQLite)",
          `${postgres.cloudCpuUsPerReading} µs`,
          `SQLite ${sqlite.cloudCpuUsPerReading} µs`,
          ratio(postgres.cloudCpuUsPerReading, sqlite.cloudCpuUsPerReading),
          "reported",
          null,
        ),
        row(
          `enrollment storm (${postgres.devices}), PostgreSQL`,
          `${postgres.enrolledPerSecond}/s, cloud CPU ${postgres.cloudCpuMsPerEnrollment} ms each`,
          `SQLite ${sqlite.enrolledPerSecond}/s, ${sqlite.cloudCpuMsPerEnrollment} ms each`,
          ratio(postgres.enrolledPerSecond, sqlite.enrolledPerSecond),
          "reported",
          null,
        ),
        row(
          `reconnect storm (${postgres.devices}), PostgreSQL`,
          `${postgres.reconnectPerSecond}/s, p99 ${postgres.reconnectConnackP99Ms} ms, cloud CPU ${postgres.cloudCpuMsPerReconnect} ms each`,
          `SQLite ${sqlite.reconnectPerSecond}/s, p99 ${sqlite.reconnectConnackP99Ms} ms, ${sqlite.cloudCpuMsPerReconnect} ms each`,
          ratio(postgres.reconnectPerSecond, sqlite.reconnectPerSecond),
          "reported",
          null,
        ),
      ],
    };
  },
};

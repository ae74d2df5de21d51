// Scenario 7 of issue #7: a phased rollout at scale over simulated devices, 10% of which fail at
// INSTALLING. Two figures: the start rate observed against the configured one, and how soon after
// the failure threshold is crossed new installs stop.
import { randomBytes } from "node:crypto";
import Database from "better-sqlite3";
import { cloudQuery, enrollTypedFleet, runSim, sleep, startFirmwareCloud, uploadImage, workDir } from "./kit.mjs";

const PER_MINUTE = 1000;
const FAILURE_THRESHOLD = 0.05;

/** Every row of a read-only query on the cloud's database. */
function cloudRows(cloud, sql, ...params) {
  const db = new Database(cloud.database, { readonly: true, fileMustExist: true });
  try {
    return db.prepare(sql).all(...params);
  } finally {
    db.close();
  }
}

async function until(check, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(500);
  }
}

/** The most starts inside any window of `windowMs`. */
export function maxInWindow(sortedTimes, windowMs) {
  let most = 0;
  let first = 0;
  for (let last = 0; last < sortedTimes.length; last++) {
    while (sortedTimes[last] - sortedTimes[first] >= windowMs) first++;
    most = Math.max(most, last - first + 1);
  }
  return most;
}

/**
 * When failed ÷ started first reached the threshold, replayed from the cloud's own records: each
 * failure at the time the cloud stored it, against the jobs created by then.
 */
function thresholdCrossedAt(cloud, rolloutId, threshold) {
  const created = cloudRows(
    cloud,
    "SELECT created_at AS t FROM jobs WHERE rollout_id = ? AND rollback = 0 ORDER BY created_at",
    rolloutId,
  ).map((r) => r.t);
  const failures = cloudRows(
    cloud,
    `SELECT updated_at AS t FROM jobs WHERE rollout_id = ? AND rollback = 0 AND status IN ('FAILED', 'ROLLED_BACK')
     AND coalesce(reason, '') <> 'JOB_CANCELLED' ORDER BY updated_at`,
    rolloutId,
  ).map((r) => r.t);
  let started = 0;
  for (let i = 0; i < failures.length; i++) {
    while (started < created.length && created[started] <= failures[i]) started++;
    if ((i + 1) / started >= threshold) return failures[i];
  }
  return null;
}

export function rolloutScenario({ scaled, round, row, goal, cloudNodeArgs, simNodeArgs, shm }) {
  return {
    name: "rollout",
    title: "rollout at scale: simulated devices, 1,000 installs/min, 10% failing, failure threshold 5%",
    async run(ctx) {
      const cloud = await startFirmwareCloud(workDir("rollout"), {
        args: ["--rollout-tick", "200ms"],
        nodeArgs: cloudNodeArgs(ctx, "rollout"),
      });
      const devices = scaled(ctx, 10_000, 200);
      const paceSeconds = ctx.quick ? 20 : 90;
      const fleetDir = workDir("rollout-fleet", shm);
      try {
        await cloud.api("POST", "/api/v1/device-types", { name: "bench-gw", firmwareCompat: "bench-gw" });
        for (const version of ["1.0.0", "1.1.0"]) {
          await uploadImage(cloud, "bench-os", version, "bench-gw", randomBytes(64 * 1024));
        }
        await enrollTypedFleet(cloud, "bench-gw", devices, fleetDir);
        // The fleet stays online and answers its jobs for the whole scenario; 10% fail at INSTALLING.
        const fleet = runSim(
          cloud,
          [
            "--fleet-dir",
            fleetDir,
            "--devices",
            String(devices),
            "--rate",
            "0",
            "--fail-updates",
            "10%",
            "--duration",
            `${paceSeconds + (ctx.quick ? 60 : 180)}s`,
          ],
          { nodeArgs: simNodeArgs(ctx, "rollout") },
        );
        // Most of the fleet online is enough: a device that connects later gets its job then. (At
        // 10,000 the fleet's connect path is slow: aedes' retained-message scan, see scenario 3.)
        await until(
          () => cloudQuery(cloud, "SELECT count(*) AS n FROM devices WHERE online = 1").n >= devices * 0.9,
          600_000,
          "the simulated fleet to connect",
        );

        // 1. The rate, watched over a rollout that never aborts.
        const paced = await cloud.api("POST", "/api/v1/rollouts", {
          firmware: "bench-os@1.0.0",
          target: { query: "type=bench-gw" },
          rate: `${PER_MINUTE}/min`,
        });
        await sleep(paceSeconds * 1000);
        await cloud.api("POST", `/api/v1/rollouts/${paced.id}/abort`);
        const starts = cloudRows(
          cloud,
          "SELECT created_at AS t FROM jobs WHERE rollout_id = ? AND rollback = 0 ORDER BY created_at",
          paced.id,
        ).map((r) => r.t);
        const busiestMinute = maxInWindow(starts, 60_000);
        const spanMinutes = starts.length > 1 ? (starts.at(-1) - starts[0]) / 60_000 : 0;
        const meanPerMinute = spanMinutes > 0 ? (starts.length - 1) / spanMinutes : 0;

        // 2. The abort: phases, a 5% failure threshold, the same rate.
        const guarded = await cloud.api("POST", "/api/v1/rollouts", {
          firmware: "bench-os@1.1.0",
          target: { query: "type=bench-gw" },
          phases: "1%,10%,100%",
          successThreshold: "80%",
          failureThreshold: `${FAILURE_THRESHOLD * 100}%`,
          rate: `${PER_MINUTE}/min`,
        });
        await until(
          () => cloudQuery(cloud, "SELECT state FROM rollouts WHERE id = ?", guarded.id).state === "aborted",
          300_000,
          "the failure threshold to abort the rollout",
        );
        // Jobs already past VERIFYING finish; give them time to report before reading the records.
        await sleep(ctx.quick ? 5_000 : 20_000);
        const crossedAt = thresholdCrossedAt(cloud, guarded.id, FAILURE_THRESHOLD);
        const abortedAt = cloudQuery(cloud, "SELECT updated_at AS t FROM rollouts WHERE id = ?", guarded.id).t;
        const lastStart = cloudQuery(
          cloud,
          "SELECT max(created_at) AS t, count(*) AS n FROM jobs WHERE rollout_id = ? AND rollback = 0",
          guarded.id,
        );
        const lastInstall = cloudQuery(
          cloud,
          `SELECT max(s.ts) AS t FROM job_steps s JOIN jobs j ON j.id = s.job_id
           WHERE j.rollout_id = ? AND s.step = 'INSTALLING'`,
          guarded.id,
        ).t;
        const counts = cloudRows(
          cloud,
          "SELECT state, count(*) AS n FROM rollout_devices WHERE rollout_id = ? GROUP BY state",
          guarded.id,
        );
        // Everything is on record: the fleet need not run out its duration.
        fleet.finish();
        const sim = await fleet;
        const installsStopS =
          crossedAt === null || lastInstall === null ? null : round((lastInstall - crossedAt) / 1000);
        const rateOk = busiestMinute <= PER_MINUTE;
        const stopOk = installsStopS !== null && installsStopS <= 60 && lastStart.t <= abortedAt;
        return {
          figures: {
            devices,
            configuredPerMinute: PER_MINUTE,
            watchedSeconds: paceSeconds,
            started: starts.length,
            busiestMinute,
            meanPerMinute: round(meanPerMinute),
            thresholdCrossedToAbortMs: crossedAt === null ? null : abortedAt - crossedAt,
            jobsStartedAfterAbort: cloudQuery(
              cloud,
              "SELECT count(*) AS n FROM jobs WHERE rollout_id = ? AND rollback = 0 AND created_at > ?",
              guarded.id,
              abortedAt,
            ).n,
            lastInstallAfterThresholdS: installsStopS,
            abortedRollout: Object.fromEntries(counts.map((c) => [c.state, c.n])),
            simUpdates: sim.updates,
          },
          peers: { awsIotJobsMaxPerMinute: PER_MINUTE },
          ratios: { busiestMinuteVsConfigured: round(busiestMinute / PER_MINUTE, 3) },
          goals: [
            goal("observed rate never above the configured", `≤ ${PER_MINUTE}/min`, busiestMinute, rateOk),
            goal("installs stop after the threshold", "≤ 60 s", installsStopS, stopOk),
          ],
          rows: [
            row(
              `rollout rate, ${devices} devices`,
              `busiest minute ${busiestMinute}, mean ${round(meanPerMinute)}/min`,
              `configured ${PER_MINUTE}/min`,
              round(busiestMinute / PER_MINUTE, 3),
              "never above",
              rateOk,
            ),
            row(
              "abort at 5% failures (10% of devices fail)",
              `installs stop ${installsStopS} s after the threshold; ${lastStart.n} started`,
              "",
              null,
              "≤ 60 s",
              stopOk,
            ),
          ],
        };
      } finally {
        await cloud.stop();
      }
    },
  };
}

import { rmSync, statfsSync } from "node:fs";
import {
  compareVersions,
  type ErrorCode,
  FieldgateError,
  formatDuration,
  type JobStatus,
  type SignedManifest,
} from "@fieldgate/shared";
import type { Logger } from "pino";
import type { CheckKind } from "../health/health-check.js";
import {
  type ConfirmGate,
  DEVICE_GATE,
  describeHolding,
  type GateInput,
  holdingChecks,
  holdingKey,
  statusChecks,
} from "./confirm-gate.js";
import { type InstallContext, type Installer, type InstallPlan, runCommand, type VersionCheck } from "./installers.js";
import type { UpdateJobRow, UpdateJobStore } from "./update-job-store.js";
import {
  asksWhichVersionRuns,
  bootAction,
  bootEvent,
  cancellable,
  isTerminal,
  nextState,
  type UpdateEvent,
  type UpdateState,
  WORKING_STATES,
} from "./update-states.js";
import { assertVersionAllowed, type VerifyInput } from "./verify-before-install.js";

/** An update job as delivered: a unique id and the signed manifest of the image to install. */
export interface UpdateJob {
  jobId: string;
  signed: SignedManifest;
  /** A rollout's auto-rollback: may return to the version the last install replaced, and only to it. */
  rollback?: boolean;
}

/** Something with the agent's health: `HealthMonitor` fits. */
export interface HealthSource {
  snapshot(): { status: string; checks?: readonly GateInput[] };
  on(event: "change", listener: (snap: { status: string }) => void): unknown;
  off(event: "change", listener: (snap: { status: string }) => void): unknown;
  /** Runs the checks now, so a confirmation never rests on results from before the activation. */
  runAll?(): Promise<unknown>;
  /** Where a check comes from, for the gate's `@kind` selectors; without it only names select. */
  kindOf?(name: string): CheckKind | undefined;
}

/** The agent's way to the cloud, as far as confirming needs it: `UpdateService` provides it. */
export interface CloudLink {
  /** Whether the cloud acknowledged (PUBACK) a job report sent at or after `since` (epoch ms). */
  reachedSince(since: number): boolean;
  on(event: "reached", listener: () => void): unknown;
  off(event: "reached", listener: () => void): unknown;
}

/** Dependencies of the machine; each is a seam a test can replace. */
export interface UpdateMachineDeps {
  store: UpdateJobStore;
  installer: Installer;
  downloader: { download(signed: SignedManifest): Promise<string> };
  /** `verifyBeforeInstall` from the previous slice. */
  verify: (input: VerifyInput) => Promise<void>;
  health: HealthSource;
  /** With `options.confirmRequiresCloud`, confirming waits until the cloud acknowledged a report sent after activation. */
  cloud?: CloudLink;
  installedVersions: { get(): string | undefined; set(version: string): void; previous(): string | undefined };
  /** Publishes on `jobs/{id}/status`; a failure is logged, never fatal to the job. */
  reporter: (jobId: string, status: JobStatus) => Promise<void>;
  clock: { now(): number };
  logger: Logger;
  /** `updates.enabled`, the firmware keys and the device facts CHECKING_PERMISSIONS needs. */
  updatesEnabled: boolean;
  publicKeys: () => readonly string[];
  deviceFirmwareCompat: string;
  agentVersion: string;
  /** The device certificate's expiry (epoch ms), or undefined when there is no certificate. */
  certificateNotAfter: () => number | undefined;
  /** Free bytes where the image is downloaded and installed; default: statfs of `diskPath`. */
  freeBytes?: () => number;
  diskPath?: string;
  options: {
    confirmDeadlineMs: number;
    jobTimeoutMs: number;
    confirmCommand?: readonly string[];
    /** `updates.confirmGate`; default the device's own checks (`DEVICE_GATE`). */
    confirmGate?: ConfirmGate;
    /** `updates.confirmRequiresCloud`; default true (it needs `cloud`). */
    confirmRequiresCloud?: boolean;
    /** `updates.startJitter`: a random delay in [0, startJitterMs) before a download starts. */
    startJitterMs?: number;
  };
  /** For the start jitter; default Math.random. */
  random?: () => number;
  /** Test seam: called right after a state is persisted and right after its work is done. */
  onPersist?: (state: UpdateState, moment: "persisted" | "done") => void;
}

/** The delay before a download: uniform in [0, jitterMs), whole milliseconds. */
export function startJitterDelay(jitterMs: number, random: () => number = Math.random): number {
  if (jitterMs <= 0) return 0;
  return Math.min(jitterMs - 1, Math.floor(random() * jitterMs));
}

/** The machine was stopped while a step waited: the persisted state resumes on the next start. */
class MachineStopped extends Error {}

const CANCELLED_MESSAGE = "cancelled by the cloud (the rollout was aborted) before anything was installed";

const STEP_COUNT = WORKING_STATES.length - 1;
const MAX_MESSAGE = 2048;

/**
 * Runs firmware update jobs through the table in `update-states.ts`, one at a time. Every state is
 * persisted before the work it names starts, so `resumeOnBoot` can resume or roll back per the
 * table after a crash. An ending (SUCCEEDED, ROLLED_BACK, FAILED) is persisted first and applied
 * second (commit or rollback, marked `finalized`), so a crash between the two re-applies it.
 */
export class UpdateMachine {
  private chain: Promise<void> = Promise.resolve();
  private stopped = false;
  private stopping = new AbortController();
  /** Jobs the cloud cancelled (an aborted rollout); honoured at the next step boundary before INSTALLING. */
  private readonly cancelRequests = new Set<string>();
  /** When each job's activation ended in this process; a job resumed at boot was activated before the start. */
  private readonly activatedAt = new Map<string, number>();
  /** What the latest CONFIRMING report of each job said about the holding checks (`holdingKey`). */
  private readonly reportedHolding = new Map<string, string>();
  private startedAt: number;

  constructor(private readonly deps: UpdateMachineDeps) {
    this.startedAt = deps.clock.now();
  }

  /**
   * Cancels a job while nothing on the device was touched (its state lists `cancel` in the table):
   * it ends FAILED `JOB_CANCELLED` when its current step ends, or at once if it waits in the queue.
   * From INSTALLING on it runs to its end. Returns whether the cancel will be honoured.
   */
  cancel(jobId: string): boolean {
    const row = this.deps.store.get(jobId);
    if (!row || !cancellable(row.state)) return false;
    this.cancelRequests.add(jobId);
    return true;
  }

  /** Recovers persisted jobs (see `resumeOnBoot`); jobs submitted afterwards queue behind them. */
  start(): Promise<void> {
    this.stopped = false;
    this.stopping = new AbortController();
    this.startedAt = this.deps.clock.now();
    return this.resumeOnBoot();
  }

  /** Stops between steps; the persisted state resumes on the next start. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.stopping.abort();
    await this.chain;
  }

  /**
   * Accepts a job. Job ids are unique, so an id seen before is ignored (false). An older job after
   * a newer one is REJECTED with FIRMWARE_NOT_NEWER at CHECKING_PERMISSIONS. Resolves when the job ends.
   */
  async submit(job: UpdateJob): Promise<boolean> {
    const now = this.deps.clock.now();
    const fresh = this.deps.store.insert({
      jobId: job.jobId,
      manifestJson: JSON.stringify(job.signed),
      deadline: now + this.deps.options.jobTimeoutMs,
      now,
      rollback: job.rollback === true,
      rollbackTo: job.rollback === true ? this.deps.installedVersions.previous() : undefined,
    });
    if (!fresh) {
      this.deps.logger.info({ jobId: job.jobId }, "update job seen before; ignored");
      return false;
    }
    this.deps.onPersist?.("QUEUED", "persisted");
    await this.report(job.jobId, { v: 1, ts: now, status: "QUEUED", step: "QUEUED" });
    await this.enqueue(job.jobId);
    return true;
  }

  /**
   * Crash recovery: for every job not finished, re-applies a persisted ending, ends a job past its
   * deadline (JOB_TIMEOUT), or resumes or rolls back per the table's boot column.
   */
  async resumeOnBoot(): Promise<void> {
    for (const row of this.deps.store.unfinished()) {
      await this.enqueue(row.jobId, true);
    }
  }

  private enqueue(jobId: string, boot = false): Promise<void> {
    const run = this.chain.then(() => this.drive(jobId, boot));
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async drive(jobId: string, boot: boolean): Promise<void> {
    let row = this.row(jobId);
    if (boot && !isTerminal(row.state)) {
      if (this.deps.clock.now() >= row.deadline) {
        row = await this.transition(row, "timeout", "JOB_TIMEOUT", "the job's timeout passed while the agent was down");
      } else {
        row = await this.boot(row);
      }
    }
    while (!isTerminal(row.state)) {
      if (this.stopped) return;
      if (this.cancelRequested(row)) {
        row = await this.transition(row, "cancel", "JOB_CANCELLED", CANCELLED_MESSAGE);
        continue;
      }
      row = this.deps.store.update(jobId, { attempt: row.attempt + 1 }, this.deps.clock.now());
      let event: UpdateEvent = "ok";
      let code: ErrorCode | undefined;
      let message: string | undefined;
      try {
        if (this.deps.clock.now() >= row.deadline) throw new FieldgateError("JOB_TIMEOUT");
        row = await this.work(row);
      } catch (err) {
        if (err instanceof MachineStopped) return;
        code = err instanceof FieldgateError ? err.code : "INTERNAL";
        message = (err as Error).message;
        event = code === "FIRMWARE_NOT_NEWER" ? "reject" : code === "JOB_TIMEOUT" ? "timeout" : "fail";
        this.deps.logger.warn({ jobId, state: row.state, code, err: message }, "update step failed");
      }
      if (event === "ok") this.deps.onPersist?.(row.state, "done");
      // A cancel that came during the step wins over its success: the next step would touch the device.
      if (event === "ok" && this.cancelRequested(row)) {
        event = "cancel";
        code = "JOB_CANCELLED";
        message = CANCELLED_MESSAGE;
      }
      row = await this.transition(row, event, code, message);
    }
    this.cancelRequests.delete(jobId);
    this.activatedAt.delete(jobId);
    this.reportedHolding.delete(jobId);
    if (row.finalized === 0) await this.finalize(row);
  }

  private cancelRequested(row: UpdateJobRow): boolean {
    return this.cancelRequests.has(row.jobId) && cancellable(row.state);
  }

  /**
   * A job found unfinished at boot: the table decides. Where the row lists `boot_new`, the
   * installer is asked whether the new version runs (a planned restart); otherwise, or when it
   * does not, the plain `boot` applies (resume before INSTALLING, roll back from it on).
   */
  private async boot(row: UpdateJobRow): Promise<UpdateJobRow> {
    const state = row.state as (typeof WORKING_STATES)[number];
    let code: ErrorCode = "UPDATE_INTERRUPTED";
    let message = `the agent stopped during ${state}`;
    let running = false;
    const installer = this.deps.installer;
    if (asksWhichVersionRuns(state) && installer.checkRunning && row.installPlan !== null) {
      const check = await installer
        .checkRunning(this.context(row))
        .catch(
          (err: Error): VersionCheck => ({ running: false, message: `the running version is unknown: ${err.message}` }),
        );
      if (check.running) running = true;
      else {
        code = check.code ?? code;
        message = `${message}; ${check.message}`;
      }
    }
    const event = bootEvent(state, running);
    if (bootAction(state, event) === "rollback") return this.transition(row, event, code, message);
    this.deps.logger.info(
      { jobId: row.jobId, state },
      event === "boot_new" ? "the new version runs after the restart; confirming it" : "resuming update job",
    );
    return nextState(state, event) === state ? row : this.transition(row, event);
  }

  /** Persists the next state (and the reason), then reports it; an ending is applied by `finalize`. */
  private async transition(
    row: UpdateJobRow,
    event: UpdateEvent,
    code?: ErrorCode,
    message?: string,
  ): Promise<UpdateJobRow> {
    const next = nextState(row.state, event);
    const terminal = isTerminal(next);
    const updated = this.deps.store.update(
      row.jobId,
      {
        state: next,
        ...(code !== undefined && { reason: code, message: message ?? null }),
        finalized: terminal ? 0 : 1,
      },
      this.deps.clock.now(),
    );
    this.deps.onPersist?.(next, "persisted");
    if (!terminal) await this.reportProgress(updated);
    return updated;
  }

  /** The work of the row's state. Returns the row with whatever the work recorded. */
  private async work(row: UpdateJobRow): Promise<UpdateJobRow> {
    const signed = JSON.parse(row.manifestJson) as SignedManifest;
    const m = signed.manifest;
    const now = () => this.deps.clock.now();
    switch (row.state) {
      case "QUEUED":
        return row;
      case "CHECKING_PERMISSIONS": {
        this.checkPermissions(signed, row);
        const installed = this.deps.installedVersions.get();
        return this.deps.store.update(row.jobId, { previousVersion: installed ?? null }, now());
      }
      case "DOWNLOADING": {
        const jitter = startJitterDelay(this.deps.options.startJitterMs ?? 0, this.deps.random);
        if (jitter > 0) {
          this.deps.logger.info(
            { jobId: row.jobId, delayMs: jitter },
            `download starts in ${jitter} ms (start jitter)`,
          );
          await this.withDeadline(this.sleep(jitter), row.deadline);
        }
        const imagePath = await this.withDeadline(this.deps.downloader.download(signed), row.deadline);
        const updated = this.deps.store.update(row.jobId, { imagePath }, now());
        await this.report(row.jobId, {
          v: 1,
          ts: now(),
          status: "IN_PROGRESS",
          step: "DOWNLOADING",
          progress: { done: m.size, total: m.size },
        });
        return updated;
      }
      case "VERIFYING":
        await this.withDeadline(
          this.deps.verify({
            signed,
            imagePath: required(row.imagePath, "image path"),
            publicKeys: this.deps.publicKeys(),
            deviceFirmwareCompat: this.deps.deviceFirmwareCompat,
            installedVersion: row.previousVersion ?? undefined,
            rollback: row.rollback,
            rollbackTo: row.rollbackTo ?? undefined,
            agentVersion: this.deps.agentVersion,
          }),
          row.deadline,
        );
        return row;
      case "INSTALLING": {
        // The plan is persisted before the first byte is written, so recovery knows what to wipe.
        let updated = row;
        if (row.installPlan === null) {
          updated = this.deps.store.update(
            row.jobId,
            { installPlan: JSON.stringify(this.deps.installer.plan()) },
            now(),
          );
        }
        const output = await this.deps.installer.install(
          required(updated.imagePath, "image path"),
          this.context(updated),
        );
        return output === undefined ? updated : this.deps.store.update(row.jobId, { output }, now());
      }
      case "ACTIVATING": {
        // The confirm deadline is fixed before the switch, so a restart in between keeps it.
        const updated =
          row.confirmBy === null
            ? this.deps.store.update(row.jobId, { confirmBy: now() + this.deps.options.confirmDeadlineMs }, now())
            : row;
        await this.deps.installer.activate(this.context(updated));
        this.activatedAt.set(row.jobId, now());
        return updated;
      }
      case "CONFIRMING":
        await this.restartIfPlanned(row);
        await this.confirm(row);
        return row;
      default:
        throw new Error(`no work for ${row.state}`);
    }
  }

  private checkPermissions(signed: SignedManifest, row: UpdateJobRow): void {
    const m = signed.manifest;
    const d = this.deps;
    if (!d.updatesEnabled) throw new FieldgateError("UPDATES_DISABLED", "updates.enabled is false on this device");
    const notAfter = d.certificateNotAfter();
    if (notAfter === undefined) throw new FieldgateError("CERT_UNKNOWN", "the device has no valid certificate");
    if (notAfter <= d.clock.now()) throw new FieldgateError("CERT_EXPIRED", "the device certificate has expired");
    if (!m.compatible.includes(d.deviceFirmwareCompat)) {
      throw new FieldgateError(
        "FIRMWARE_INCOMPATIBLE",
        `${m.name}@${m.version} is for ${m.compatible.join(", ")}, not ${d.deviceFirmwareCompat}`,
      );
    }
    assertVersionAllowed(m.version, {
      installedVersion: d.installedVersions.get(),
      rollback: row.rollback,
      rollbackTo: row.rollbackTo ?? undefined,
    });
    if (m.minAgentVersion !== undefined && compareVersions(d.agentVersion, m.minAgentVersion) < 0) {
      throw new FieldgateError(
        "AGENT_TOO_OLD",
        `the image needs agent ${m.minAgentVersion}; this is ${d.agentVersion}`,
      );
    }
    // The download and the installed copy both live on the device for a moment: twice the size.
    const free = d.freeBytes ? d.freeBytes() : diskFree(d.diskPath ?? ".");
    if (free < m.size * 2) {
      throw new FieldgateError("DISK_FULL", `${free} bytes free; the image needs ${m.size * 2} (twice its size)`);
    }
  }

  /**
   * For installers whose activation restarts the agent or the device: unless the new version
   * already runs, restart and wait. The wait ends with the stop that the restart brings (the next
   * boot confirms), or at the confirm deadline if nothing restarted.
   */
  private async restartIfPlanned(row: UpdateJobRow): Promise<void> {
    const { installer, logger } = this.deps;
    if (!installer.restart || !installer.checkRunning) return;
    const context = this.context(row);
    if ((await installer.checkRunning(context)).running) return;
    logger.info({ jobId: row.jobId }, "restarting into the new version; the next start confirms it");
    await installer.restart(context);
    const confirmBy = row.confirmBy ?? this.deps.clock.now() + this.deps.options.confirmDeadlineMs;
    await this.sleep(Math.max(0, Math.min(row.deadline, confirmBy) - this.deps.clock.now()));
    throw new FieldgateError(
      "UPDATE_BOOT_FAILED",
      "the restart into the new version did not happen before the confirm deadline",
    );
  }

  /** Resolves after `ms`, or rejects with MachineStopped when the machine stops first. */
  private sleep(ms: number): Promise<void> {
    const signal = this.stopping.signal;
    return new Promise((resolve, reject) => {
      if (signal.aborted) {
        reject(new MachineStopped());
        return;
      }
      const onAbort = () => {
        clearTimeout(timer);
        reject(new MachineStopped());
      };
      const timer = setTimeout(() => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      }, ms);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  /**
   * The gate (docs/updates.md#the-confirmation-gate), then the confirm command, by the confirm
   * deadline set at activation (and the job's deadline). Checks run afresh first; while a gate
   * check holds the confirmation back it is reported with the step, again whenever that changes.
   */
  private async confirm(row: UpdateJobRow): Promise<void> {
    const { confirmDeadlineMs, confirmCommand } = this.deps.options;
    const deadline = Math.min(row.deadline, row.confirmBy ?? this.deps.clock.now() + confirmDeadlineMs);
    const health = this.deps.health;
    if (health.runAll) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        health.runAll(),
        new Promise((resolve) => {
          timer = setTimeout(resolve, Math.max(0, deadline - this.deps.clock.now()));
        }),
      ]);
      clearTimeout(timer);
    }
    await this.passGate(row, deadline);
    if (confirmCommand && confirmCommand.length > 0) {
      const r = await runCommand(confirmCommand, Math.max(1, deadline - this.deps.clock.now()));
      if (r.code !== 0) {
        const why = r.timedOut ? "did not finish before the confirm deadline" : `exited with ${r.code ?? "an error"}`;
        throw new FieldgateError("CONFIRM_FAILED", `confirm command ${why}: ${r.output.trim()}`);
      }
    }
  }

  /**
   * Resolves once no gate check holds the confirmation back and (with `confirmRequiresCloud`) the
   * cloud acknowledged a report sent after the activation. At the deadline it rejects:
   * `HEALTH_NOT_OK` naming the checks, or `CLOUD_UNREACHABLE`. A stop rejects with MachineStopped.
   */
  private passGate(row: UpdateJobRow, deadline: number): Promise<void> {
    const { health, cloud, options, clock, logger } = this.deps;
    const gate = options.confirmGate ?? DEVICE_GATE;
    const needsCloud = cloud !== undefined && options.confirmRequiresCloud !== false;
    const since = this.activatedAt.get(row.jobId) ?? this.startedAt;
    const kindOf = (name: string) => health.kindOf?.(name);
    const signal = this.stopping.signal;
    return new Promise<void>((resolve, reject) => {
      let holding: GateInput[] = [];
      const judge = (): boolean => {
        const snap = health.snapshot();
        holding = holdingChecks(gate, snap.checks ?? [], kindOf);
        // The strict gate also holds on an aggregate that is not ok without checks to name.
        const held = holding.length > 0 || (gate === "all" && snap.status !== "ok");
        const key = holdingKey(holding);
        if (this.reportedHolding.get(row.jobId) !== key) void this.reportHolding(row, holding, key);
        if (held) return false;
        if (needsCloud && !cloud?.reachedSince(since)) {
          logger.debug({ jobId: row.jobId }, "confirming waits for the cloud to acknowledge a report");
          return false;
        }
        return true;
      };
      const check = () => {
        if (!judge()) return;
        cleanup();
        resolve();
      };
      const onStop = () => {
        cleanup();
        reject(new MachineStopped());
      };
      const timer = setTimeout(
        () => {
          if (judge()) {
            cleanup();
            resolve();
            return;
          }
          cleanup();
          reject(this.gateFailure(holding, health.snapshot().status));
        },
        Math.max(0, deadline - clock.now()),
      );
      const cleanup = () => {
        clearTimeout(timer);
        health.off("change", check);
        cloud?.off("reached", check);
        signal.removeEventListener("abort", onStop);
      };
      if (signal.aborted) return onStop();
      health.on("change", check);
      cloud?.on("reached", check);
      signal.addEventListener("abort", onStop, { once: true });
      check();
    });
  }

  /** Why the gate did not open by the deadline. */
  private gateFailure(holding: readonly GateInput[], status: string): FieldgateError {
    const after = `${formatDuration(this.deps.options.confirmDeadlineMs)} after activation`;
    if (holding.length > 0) return new FieldgateError("HEALTH_NOT_OK", `${describeHolding(holding)} (${after})`);
    if (this.deps.options.confirmGate === "all" && status !== "ok") {
      return new FieldgateError("HEALTH_NOT_OK", `health was ${status}, not ok, ${after}`);
    }
    return new FieldgateError(
      "CLOUD_UNREACHABLE",
      `the cloud acknowledged no report sent after the activation within ${formatDuration(this.deps.options.confirmDeadlineMs)}; the new version may have lost the connection`,
    );
  }

  /** Reports CONFIRMING with the checks that hold it back (none once they cleared). */
  private async reportHolding(row: UpdateJobRow, holding: readonly GateInput[], key: string): Promise<void> {
    this.reportedHolding.set(row.jobId, key);
    const names = holding.map((c) => c.name);
    this.deps.logger.info(
      { jobId: row.jobId, holding: names },
      holding.length > 0
        ? `confirming waits on health: ${describeHolding(holding)}`
        : "confirming: no gate check holds it back",
    );
    await this.report(row.jobId, {
      v: 1,
      ts: this.deps.clock.now(),
      status: "IN_PROGRESS",
      step: "CONFIRMING",
      progress: { done: STEP_COUNT, total: STEP_COUNT },
      ...(holding.length > 0 && {
        message: `waiting on health: ${describeHolding(holding)}`.slice(0, MAX_MESSAGE),
        checks: statusChecks(holding),
      }),
    });
  }

  /** Applies a persisted ending, marks it applied, then reports it. Idempotent. */
  private async finalize(row: UpdateJobRow): Promise<void> {
    const signed = JSON.parse(row.manifestJson) as SignedManifest;
    if (row.state === "SUCCEEDED") {
      this.deps.installedVersions.set(signed.manifest.version);
      await this.deps.installer.commit(this.context(row));
    } else if (row.installPlan !== null) {
      await this.deps.installer.rollback(this.context(row));
    }
    if (row.imagePath) rmSync(row.imagePath, { force: true });
    const done = this.deps.store.update(row.jobId, { finalized: 1 }, this.deps.clock.now());
    const status = done.state as JobStatus["status"];
    const message = done.state === "SUCCEEDED" ? (done.output ?? undefined) : (done.message ?? undefined);
    await this.report(row.jobId, {
      v: 1,
      ts: this.deps.clock.now(),
      status,
      step: done.state === "SUCCEEDED" ? "CONFIRMING" : undefined,
      ...(done.reason !== null && done.state !== "SUCCEEDED" && { reason: done.reason }),
      ...(message && { message: message.slice(0, MAX_MESSAGE) }),
    });
  }

  private async reportProgress(row: UpdateJobRow): Promise<void> {
    // A CONFIRMING report without checks says none holds it back (yet): the gate reports changes from there.
    if (row.state === "CONFIRMING") this.reportedHolding.set(row.jobId, "");
    const index = WORKING_STATES.indexOf(row.state as (typeof WORKING_STATES)[number]);
    await this.report(row.jobId, {
      v: 1,
      ts: this.deps.clock.now(),
      status: "IN_PROGRESS",
      step: row.state,
      progress:
        row.state === "DOWNLOADING"
          ? { done: 0, total: (JSON.parse(row.manifestJson) as SignedManifest).manifest.size }
          : { done: index, total: STEP_COUNT },
    });
  }

  private async report(jobId: string, status: JobStatus): Promise<void> {
    const clean = Object.fromEntries(Object.entries(status).filter(([, v]) => v !== undefined)) as JobStatus;
    try {
      await this.deps.reporter(jobId, clean);
    } catch (err) {
      this.deps.logger.warn({ jobId, err: (err as Error).message }, "update status report failed");
    }
  }

  private context(row: UpdateJobRow): InstallContext {
    const signed = JSON.parse(row.manifestJson) as SignedManifest;
    return {
      jobId: row.jobId,
      version: signed.manifest.version,
      plan: JSON.parse(required(row.installPlan, "install plan")) as InstallPlan,
      ...(row.confirmBy !== null && { confirmBy: row.confirmBy }),
    };
  }

  private row(jobId: string): UpdateJobRow {
    return required(this.deps.store.get(jobId), `update job ${jobId}`);
  }

  /** Waits for a step, but never past the job's deadline (the step's result is then ignored). */
  private withDeadline<T>(work: Promise<T>, deadline: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new FieldgateError("JOB_TIMEOUT", "the job's timeout passed during this step")),
        Math.max(0, deadline - this.deps.clock.now()),
      );
      work.then(
        (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        (err: unknown) => {
          clearTimeout(timer);
          reject(err);
        },
      );
    });
  }
}

function required<T>(value: T | null | undefined, what: string): T {
  if (value === null || value === undefined) throw new Error(`${what} is missing`);
  return value;
}

function diskFree(path: string): number {
  const s = statfsSync(path);
  return s.bavail * s.bsize;
}

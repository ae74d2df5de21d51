import { ERROR_CODES, type ErrorCode, FieldgateError, type JobStatusCheck, visibleText } from "@fieldgate/shared";
import type { Command } from "commander";
import { FINISHED_JOB_STATUSES, type JobStepView, type JobView } from "../jobs/device-jobs.js";
import { type CliIo, clientFor, wantsJson, withConnection } from "./cli-support.js";
import { renderFields, renderTable } from "./table.js";

const WAIT_POLL_MS = 1000;

/** `devices update` and `devices jobs`: single-device firmware update jobs (issue #5). */
export function addDeviceJobsCommands(devices: Command, io: CliIo): void {
  const print = io.out;
  const clientOf = clientFor(io);

  withConnection(
    devices
      .command("update <uuid>")
      .description("start a firmware update of one device; it runs now, or when the device next connects")
      .requiredOption("--firmware <name@version>", "an uploaded image made for the device's type")
      .option("--wait", "print each step as the device reports it, until the job ends; exit 1 unless it SUCCEEDED"),
  ).action(async (uuid: string, opts: { firmware: string; wait?: boolean }, cmd: Command) => {
    const client = clientOf(cmd);
    const json = wantsJson(cmd);
    const base = `/api/v1/devices/${encodeURIComponent(uuid)}/jobs`;
    let job = await client.request<JobView>("POST", base, { firmware: opts.firmware });
    if (!opts.wait) return print(json ? JSON.stringify(job, null, 2) : `job ${job.id} created for ${uuid}`);
    if (!json) print(`job ${job.id} created for ${uuid}; waiting for the device (Ctrl-C stops waiting, not the job)`);
    let shown = 0;
    for (;;) {
      job = await client.request<JobView>("GET", `${base}/${encodeURIComponent(job.id)}`);
      const steps = job.steps ?? [];
      if (!json) for (const s of steps.slice(shown)) print(stepLine(s));
      shown = steps.length;
      if (isFinished(job.status)) break;
      await sleep(WAIT_POLL_MS);
    }
    if (json) print(JSON.stringify(job, null, 2));
    if (job.status !== "SUCCEEDED") {
      const code = job.reason !== null && job.reason in ERROR_CODES ? (job.reason as ErrorCode) : "INTERNAL";
      throw new FieldgateError(code, `job ${job.id} ended ${job.status}: ${job.message ?? job.reason ?? "no details"}`);
    }
  });

  withConnection(
    devices
      .command("jobs <uuid> [jobId]")
      .description("list the device's update jobs, newest first; with a job id, that job and its report"),
  ).action(async (uuid: string, jobId: string | undefined, _opts: unknown, cmd: Command) => {
    const client = clientOf(cmd);
    const base = `/api/v1/devices/${encodeURIComponent(uuid)}/jobs`;
    if (jobId !== undefined) {
      const job = await client.request<JobView>("GET", `${base}/${encodeURIComponent(jobId)}`);
      if (wantsJson(cmd)) return print(JSON.stringify(job, null, 2));
      print(
        renderFields([
          ["id", job.id],
          ["firmware", `${job.firmware.name ?? "?"}@${job.firmware.version ?? "?"}`],
          ["status", job.status],
          ["step", renderJobStep(job)],
          ["reason", job.reason ?? ""],
          ["message", job.message ?? ""],
          ["created", job.created],
          ["timeout", job.timeoutAt],
        ]),
      );
      for (const s of job.steps ?? []) print(stepLine(s));
      return;
    }
    const page = await client.request<{ items: JobView[] }>("GET", base);
    if (wantsJson(cmd)) return print(JSON.stringify(page, null, 2));
    print(
      renderTable(
        ["ID", "FIRMWARE", "STATUS", "STEP", "REASON", "CREATED"],
        page.items.map((j) => [
          j.id,
          `${j.firmware.name ?? "?"}@${j.firmware.version ?? "?"}`,
          j.status,
          renderJobStep(j, { brief: true }),
          j.reason ?? "",
          j.created,
        ]),
      ),
    );
  });
}

/** The steps of an update, in order: what `devices show` lists for the latest job, as Proficloud does. */
const UPDATE_STEPS = [
  "CHECKING_PERMISSIONS",
  "DOWNLOADING",
  "VERIFYING",
  "INSTALLING",
  "ACTIVATING",
  "CONFIRMING",
] as const;

/**
 * The latest job as a step list: each step done, running, failed or not reached, with its progress;
 * then, once the job ended, its outcome and reason.
 */
export function renderUpdateSteps(job: JobView): string {
  const steps = job.steps ?? [];
  const reached = new Set(steps.map((s) => s.step ?? s.status));
  const finished = isFinished(job.status);
  const lastStep = [...steps].reverse().find((s) => (UPDATE_STEPS as readonly string[]).includes(s.step ?? ""))?.step;
  const lines = [`update ${job.id}: ${job.firmware.name ?? "?"}@${job.firmware.version ?? "?"} (${job.status})`];
  UPDATE_STEPS.forEach((step, i) => {
    let mark = "  ";
    if (step === lastStep && !finished) mark = "..";
    else if (step === lastStep && job.status !== "SUCCEEDED") mark = "!!";
    else if (reached.has(step)) mark = "ok";
    const progress = step === lastStep && job.progress ? ` ${job.progress.done}/${job.progress.total}` : "";
    lines.push(`  ${mark} ${i + 1}. ${step.toLowerCase().replace("_", " ")}${progress}`);
    if (step === lastStep && !finished && job.checks?.length) lines.push(`        ${waitingOn(job.checks)}`);
  });
  if (finished) {
    lines.push(
      `  result: ${job.status}${job.reason ? ` ${job.reason}` : ""}${job.message ? `: ${job.message.split("\n")[0]}` : ""}`,
    );
  }
  // Per line: names, checks and messages are device-sent; the line breaks are the renderer's own.
  return lines.map(visibleText).join("\n");
}

/** Prints the device's latest job; with `follow`, each new report line until the job ends. */
export async function showLatestJob(
  client: { request<T>(method: string, path: string): Promise<T> },
  uuid: string,
  print: (text: string) => void,
  follow: boolean,
): Promise<void> {
  const base = `/api/v1/devices/${encodeURIComponent(uuid)}/jobs`;
  const { items } = await client.request<{ items: JobView[] }>("GET", base);
  const latest = items[0];
  if (!latest) return print("update: none yet");
  let job = await client.request<JobView>("GET", `${base}/${encodeURIComponent(latest.id)}`);
  if (!follow || isFinished(job.status)) return print(renderUpdateSteps(job));
  print(
    `update ${job.id}: ${job.firmware.name ?? "?"}@${job.firmware.version ?? "?"}, live (Ctrl-C stops watching, not the job)`,
  );
  let shown = 0;
  for (;;) {
    const steps = job.steps ?? [];
    for (const s of steps.slice(shown)) print(stepLine(s));
    shown = steps.length;
    if (isFinished(job.status)) break;
    await sleep(WAIT_POLL_MS);
    job = await client.request<JobView>("GET", `${base}/${encodeURIComponent(job.id)}`);
  }
  print(renderUpdateSteps(job));
}

function isFinished(status: string): boolean {
  return (FINISHED_JOB_STATUSES as readonly string[]).includes(status);
}

/**
 * A job's or one report's step as a person reads it: the step, its progress and, while
 * CONFIRMING, the health checks that hold it back (`brief`: their names only, for tables).
 * `devices jobs`, `devices update --wait` and `devices show` all render steps with it.
 */
export function renderJobStep(
  s: Pick<JobStepView, "step" | "progress" | "checks">,
  options: { brief?: boolean } = {},
): string {
  const progress = s.progress ? ` ${s.progress.done}/${s.progress.total}` : "";
  const step = `${s.step ?? ""}${progress}`;
  if (!s.checks?.length) return step;
  const waiting = options.brief ? `waiting on ${s.checks.map((c) => c.name).join(", ")}` : waitingOn(s.checks);
  return `${step}, ${waiting}`;
}

function waitingOn(checks: readonly JobStatusCheck[]): string {
  const each = checks.map((c) => `check "${c.name}" ${c.status}${c.message ? `: ${c.message}` : ""}`);
  return `waiting on health: ${each.join("; ")}`;
}

function stepLine(s: JobStepView): string {
  const why = s.reason ? ` ${s.reason}` : "";
  // With checks the message only repeats them.
  const message = s.message && !s.checks?.length ? `: ${s.message.split("\n")[0]}` : "";
  return visibleText(`${s.ts} ${s.status.padEnd(11)} ${renderJobStep(s)}${why}${message}`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

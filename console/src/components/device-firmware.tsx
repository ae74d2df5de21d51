import type { Device } from "@fieldgate/shared";
import { api } from "../lib/api";
import { formatTime } from "../lib/format";
import { JOB_OUTCOMES as OUTCOME, JOB_STEPS as STEPS } from "../lib/jobs";
import { useResource } from "../lib/use-resource";
import { ScrollBox, Section } from "./device-sections";
import { TableHead } from "./list-table";
import { ErrorNotice, Loading } from "./page";

/** `GET /api/v1/devices/:uuid/jobs[/:id]` (cloud/src/jobs/device-jobs.ts JobView). */
interface JobStep {
  ts: string;
  status: string;
  step: string | null;
  progress: { done: number; total: number } | null;
  reason: string | null;
  message: string | null;
  checks: { name: string; status: string; message?: string }[] | null;
}
interface Job {
  id: string;
  firmware: { name: string | null; version: string | null };
  status: string;
  step: string | null;
  progress: { done: number; total: number } | null;
  reason: string | null;
  message: string | null;
  checks: JobStep["checks"];
  created: string;
  updated: string;
  timeoutAt: string;
  steps?: JobStep[];
}

function firmwareName(job: Job): string {
  return job.firmware.name ? `${job.firmware.name}@${job.firmware.version ?? "?"}` : (job.firmware.version ?? "?");
}

/** Where the job stands: the index of its current (or last) step, -1 before the device reported. */
function stepIndex(job: Job): number {
  if (job.status === "SUCCEEDED") return STEPS.length;
  if (job.status === "CREATED") return -1;
  if (job.status === "QUEUED" && !job.step) return 0;
  const at = STEPS.findIndex((s) => s.key === job.step);
  if (at >= 0) return at;
  // A finished job without a step: the last step its report names.
  const last = [...(job.steps ?? [])].reverse().find((s) => STEPS.some((k) => k.key === s.step));
  return last ? STEPS.findIndex((s) => s.key === last.step) : 0;
}

function progressText(progress: Job["progress"], step: string | null): string {
  if (!progress) return "";
  if (step === "DOWNLOADING" && progress.total > 0)
    return `${Math.round((progress.done / progress.total) * 100)} % (${progress.done} of ${progress.total} bytes)`;
  return `${progress.done}/${progress.total}`;
}

function JobProgress(props: { job: Job }) {
  const { job } = props;
  const at = stepIndex(job);
  const outcome = OUTCOME[job.status];
  const failed = outcome !== undefined && job.status !== "SUCCEEDED";
  return (
    <div class="job">
      <p>
        Update to <strong>{firmwareName(job)}</strong>:{" "}
        <strong data-testid="job-status">
          {outcome ?? (job.status === "CREATED" ? "Waiting for the device" : "In progress")}
        </strong>
        {job.reason && <code> {job.reason}</code>}
        <span class="hint">
          {" "}
          (created {formatTime(job.created)}, updated {formatTime(job.updated)})
        </span>
      </p>
      {job.message && <p class="break">{job.message}</p>}
      <ol class="stepper" aria-label="Update steps">
        {STEPS.map((step, i) => {
          const state = i < at ? "done" : i === at ? (failed ? "failed" : "current") : "todo";
          const words = { done: "done", current: "in progress", failed: OUTCOME[job.status] ?? "", todo: "not yet" }[
            state
          ];
          return (
            <li key={step.key} class={`step step-${state}`} aria-current={state === "current" ? "step" : undefined}>
              <span class="step-mark" aria-hidden="true">
                {state === "done" ? "✓" : state === "failed" ? "✕" : i + 1}
              </span>
              <span class="step-label">
                {step.label} <span class="visually-hidden">({words})</span>
              </span>
              {state === "current" && job.progress && (
                <span class="step-progress">
                  <progress
                    value={job.progress.done}
                    max={job.progress.total || 1}
                    aria-label={`${step.label} progress`}
                  />{" "}
                  <span class="hint">{progressText(job.progress, job.step)}</span>
                </span>
              )}
            </li>
          );
        })}
        <li class={`step step-${job.status === "SUCCEEDED" ? "done" : "todo"}`}>
          <span class="step-mark" aria-hidden="true">
            {job.status === "SUCCEEDED" ? "✓" : "★"}
          </span>
          <span class="step-label">Succeeded</span>
        </li>
      </ol>
      {job.checks && job.checks.length > 0 && (
        <p>
          Waiting on: {job.checks.map((c) => `${c.name} ${c.status}${c.message ? ` (${c.message})` : ""}`).join("; ")}
        </p>
      )}
      {job.steps && job.steps.length > 0 && (
        <details>
          <summary>Report ({job.steps.length} statuses)</summary>
          <ScrollBox label="Update report">
            <table>
              <TableHead columns={["Time", "Status", "Step", "Progress", "Reason and message"]} />
              <tbody>
                {job.steps.map((s, i) => (
                  <tr key={`${s.ts}-${i}`}>
                    <td class="nowrap">{formatTime(s.ts)}</td>
                    <td>{s.status}</td>
                    <td>{s.step ?? ""}</td>
                    <td>{progressText(s.progress, s.step)}</td>
                    <td class="break">
                      {s.reason && <code>{s.reason} </code>}
                      {s.message ?? ""}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </ScrollBox>
        </details>
      )}
    </div>
  );
}

/** Installed firmware, and the current or last update with its steps and report; live on `job` events. */
export function DeviceFirmware(props: { device: Device; tick: number }) {
  const { device } = props;
  const jobs = useResource(
    (signal) => api<{ items: Job[] }>("GET", `/devices/${device.uuid}/jobs`, { signal }),
    [device.uuid, props.tick],
  );
  const latestId = jobs.data?.items[0]?.id;
  const latest = useResource(
    (signal) =>
      latestId ? api<Job>("GET", `/devices/${device.uuid}/jobs/${latestId}`, { signal }) : Promise.resolve(undefined),
    [device.uuid, latestId, props.tick],
  );
  const older = jobs.data?.items.slice(1) ?? [];
  return (
    <Section id="firmware" title="Firmware" wide>
      <p>
        Installed version: <strong data-testid="firmware-version">{device.firmwareVersion ?? "not reported"}</strong>
      </p>
      <ErrorNotice error={jobs.error ?? latest.error} />
      {!jobs.data && jobs.loading && <Loading />}
      {jobs.data && jobs.data.items.length === 0 && <p class="hint">No update was sent to this device.</p>}
      {latest.data && <JobProgress job={latest.data} />}
      {older.length > 0 && (
        <details>
          <summary>Earlier updates ({older.length})</summary>
          <ul>
            {older.map((job) => (
              <li key={job.id}>
                {formatTime(job.created)}: {firmwareName(job)} — {OUTCOME[job.status] ?? job.status}
                {job.reason && <code> {job.reason}</code>}
              </li>
            ))}
          </ul>
        </details>
      )}
    </Section>
  );
}

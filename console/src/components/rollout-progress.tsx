import type { RolloutDevice, RolloutView } from "@fieldgate/shared";
import { isFinishedJob } from "../lib/jobs";
import { TableHead } from "./list-table";

type Counts = RolloutView["counts"];

/** "3 of 5 done: 2 succeeded, 1 failed": the words beside every progress bar. */
export function countsText(counts: Counts): string {
  const finished = counts.succeeded + counts.failed + counts.skipped + counts.cancelled;
  const parts = [
    counts.succeeded && `${counts.succeeded} succeeded`,
    counts.failed && `${counts.failed} failed`,
    counts.inProgress && `${counts.inProgress} running`,
    counts.pending && `${counts.pending} pending`,
    counts.skipped && `${counts.skipped} skipped`,
    counts.cancelled && `${counts.cancelled} cancelled`,
    counts.rolledBack && `${counts.rolledBack} rolled back`,
  ].filter(Boolean);
  return `${finished} of ${counts.total} done${parts.length ? `: ${parts.join(", ")}` : ""}`;
}

/** A rollout's progress: a bar of finished devices, labelled with the counts. */
export function RolloutBar(props: { counts: Counts; label: string }) {
  const { counts } = props;
  const finished = counts.succeeded + counts.failed + counts.skipped + counts.cancelled;
  return (
    <span class="rollout-bar">
      <progress max={counts.total || 1} value={finished} aria-label={props.label} />
      <span>{countsText(counts)}</span>
    </span>
  );
}

export function stateText(rollout: Pick<RolloutView, "state" | "stopReason">): string {
  return rollout.stopReason ? `${rollout.state} (${rollout.stopReason})` : rollout.state;
}

/** Devices pending / running / succeeded / failed / skipped / cancelled per phase, the current one marked. */
export function PhaseTable(props: { rollout: RolloutView }) {
  const { rollout } = props;
  return (
    <div class="table-wrap">
      <table aria-label="Phases">
        <TableHead
          columns={[
            "Phase",
            "Up to",
            "Devices",
            "Pending",
            "Running",
            "Succeeded",
            "Failed",
            "Skipped",
            "Cancelled",
            "Rolled back",
            "Progress",
          ]}
        />
        <tbody>
          {rollout.phases.map((phase) => {
            const current = phase.index === rollout.currentPhase && rollout.state !== "completed";
            return (
              <tr key={phase.index} class={current ? "current-phase" : undefined}>
                <th scope="row">
                  {phase.index + 1}
                  {current && <span class="phase-current"> (current)</span>}
                </th>
                <td>{phase.mark}</td>
                <td>{phase.size}</td>
                <td>{phase.counts.pending}</td>
                <td>{phase.counts.inProgress}</td>
                <td>{phase.counts.succeeded}</td>
                <td>{phase.counts.failed}</td>
                <td>{phase.counts.skipped}</td>
                <td>{phase.counts.cancelled}</td>
                <td>{phase.counts.rolledBack}</td>
                <td>
                  <RolloutBar counts={phase.counts} label={`Phase ${phase.index + 1} progress`} />
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

function jobText(device: RolloutDevice): string {
  const job = device.job;
  if (!job) return "no job yet";
  return job.status;
}

function stepText(device: RolloutDevice): string {
  const job = device.job;
  // A finished job's status says how it ended; its steps are on the device page.
  if (!job?.step || isFinishedJob(job.status)) return "";
  const progress =
    job.progress && job.progress.total > 0 ? ` ${Math.floor((job.progress.done / job.progress.total) * 100)}%` : "";
  return `${job.step}${progress}`;
}

/** Each device with its state in the rollout and its job's status and step. */
export function RolloutDeviceTable(props: { devices: RolloutDevice[]; total: number }) {
  return (
    <>
      <div class="table-wrap">
        <table aria-label="Devices in this rollout">
          <TableHead
            columns={["Device", "Phase", "State", "Job", "Step", "From version", "Attempts", "Reason", "Rollback"]}
          />
          <tbody>
            {props.devices.map((d) => (
              <tr key={d.device} class={`rollout-device state-${d.state}`}>
                <td>
                  <a href={`/devices/${d.device}`}>{d.name || d.device}</a>
                  {d.name && <div class="hint mono">{d.device}</div>}
                </td>
                <td>{d.phase + 1}</td>
                <td>{d.state}</td>
                <td>{jobText(d)}</td>
                <td>{stepText(d)}</td>
                <td>{d.fromVersion ?? "unknown"}</td>
                <td>{d.attempts}</td>
                <td>{[d.reason, d.message].filter(Boolean).join(": ")}</td>
                <td>{d.rollback ?? ""}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {props.total > props.devices.length && (
        <p class="hint">
          Showing the first {props.devices.length} of {props.total} devices; the counts above cover them all.
        </p>
      )}
    </>
  );
}

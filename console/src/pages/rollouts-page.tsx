import type { RolloutDeviceList, RolloutView } from "@fieldgate/shared";
import { useRef, useState } from "preact/hooks";
import { useLocation, useRoute } from "preact-iso";
import { ConfirmDialog, Dialog } from "../components/dialog";
import { TableHead } from "../components/list-table";
import { ErrorNotice, Loading, PageHeader } from "../components/page";
import { RolloutForm } from "../components/rollout-form";
import { PhaseTable, RolloutBar, RolloutDeviceTable, stateText } from "../components/rollout-progress";
import { api } from "../lib/api";
import { formatRelative, formatTime } from "../lib/format";
import { useLive } from "../lib/live";
import { useSession } from "../lib/session";
import { useAction } from "../lib/use-confirm";
import { useItems, useResource } from "../lib/use-resource";

/** /rollouts: every rollout the session may read, newest first, kept current live; "New rollout" for writers. */
export function RolloutsPage() {
  const session = useSession();
  const location = useLocation();
  const canWrite = session.can("firmware:write");
  const { data: rollouts, error, reload } = useItems<RolloutView>("/rollouts");
  const [creating, setCreating] = useState(false);
  useLive(
    (event) => event.kind === "rollout",
    () => void reload(),
  );

  return (
    <section>
      <PageHeader title="Rollouts">
        {canWrite && (
          <button type="button" class="primary" onClick={() => setCreating(true)}>
            New rollout
          </button>
        )}
      </PageHeader>
      <ErrorNotice error={error} />
      {rollouts === undefined ? (
        !error && <Loading />
      ) : rollouts.length === 0 ? (
        <p>No rollouts yet.</p>
      ) : (
        <div class="table-wrap">
          <table aria-label="Rollouts">
            <TableHead columns={["Rollout", "Image", "State", "Phase", "Progress", "Created"]} />
            <tbody>
              {rollouts.map((r) => (
                <tr key={r.id} class={`rollout-row state-${r.state}`}>
                  <td>
                    <a href={`/rollouts/${r.id}`}>Rollout {r.id}</a>
                  </td>
                  <td>
                    {r.firmware.name}@{r.firmware.version}
                  </td>
                  <td>{stateText(r)}</td>
                  <td>
                    {Math.min(r.currentPhase + 1, r.phases.length)} of {r.phases.length}
                  </td>
                  <td>
                    <RolloutBar counts={r.counts} label={`Rollout ${r.id} progress`} />
                  </td>
                  <td title={formatTime(r.created)}>
                    {formatRelative(r.created)} by {r.createdBy}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {creating && (
        <Dialog title="New rollout" wide onClose={() => setCreating(false)}>
          <RolloutForm
            onCancel={() => setCreating(false)}
            onCreated={(rollout) => {
              setCreating(false);
              location.route(`/rollouts/${rollout.id}`);
            }}
          />
        </Dialog>
      )}
    </section>
  );
}

type Action = "pause" | "resume" | "abort";

/** /rollouts/:id: progress per phase and per device, live; pause, resume and abort for writers. */
export function RolloutPage() {
  const { params } = useRoute();
  const id = Number(params.id);
  const session = useSession();
  const canWrite = session.can("firmware:write");
  const { busy, error: actionError, run, clearError } = useAction();
  const [confirmAbort, setConfirmAbort] = useState(false);
  const members = useRef(new Set<string>());

  const loaded = useResource(
    async (signal) => {
      const [view, list] = await Promise.all([
        api<RolloutView>("GET", `/rollouts/${id}`, { signal }),
        api<RolloutDeviceList>("GET", `/rollouts/${id}/devices`, { signal }),
      ]);
      members.current = new Set(list.items.map((d) => d.device));
      return { id, view, list };
    },
    [id],
  );
  const { error, reload } = loaded;
  // What the last action answered stands until a newer load arrives.
  const [acted, setActed] = useState<{ view: RolloutView; at: number } | undefined>(undefined);
  // Another rollout's answer is not shown while this one loads.
  const current = loaded.data?.id === id ? loaded.data : undefined;
  const rollout = acted && acted.view.id === id && acted.at >= loaded.loadedAt ? acted.view : current?.view;
  const devices = current?.list;
  useLive(
    (event) =>
      (event.kind === "rollout" && event.id === id) || (event.kind === "job" && members.current.has(event.uuid)),
    () => void reload(),
  );

  const act = (action: Action) =>
    run(async () => {
      setActed({ view: await api<RolloutView>("POST", `/rollouts/${id}/${action}`), at: Date.now() });
      setConfirmAbort(false);
      void reload();
    });

  if (!rollout) {
    return (
      <section>
        <PageHeader title={`Rollout ${params.id ?? ""}`} />
        <ErrorNotice error={error} />
        {!error && <Loading />}
        <p>
          <a href="/rollouts">All rollouts</a>
        </p>
      </section>
    );
  }
  const open = rollout.state === "running" || rollout.state === "paused";
  return (
    <section>
      <PageHeader title={`Rollout ${rollout.id}: ${rollout.firmware.name}@${rollout.firmware.version}`}>
        {canWrite && rollout.state === "running" && (
          <button type="button" disabled={busy} onClick={() => void act("pause")}>
            Pause
          </button>
        )}
        {canWrite && rollout.state === "paused" && (
          <button type="button" class="primary" disabled={busy} onClick={() => void act("resume")}>
            Resume
          </button>
        )}
        {canWrite && open && (
          <button
            type="button"
            class="danger"
            disabled={busy}
            onClick={() => {
              clearError();
              setConfirmAbort(true);
            }}
          >
            Abort
          </button>
        )}
      </PageHeader>
      <p>
        <a href="/rollouts">All rollouts</a>
      </p>
      <ErrorNotice error={error} />
      {!confirmAbort && <ErrorNotice error={actionError} />}

      <section class="panel fw-panel" aria-labelledby="rollout-status">
        <h2 id="rollout-status">Status</h2>
        <dl class="facts">
          <dt>State</dt>
          <dd class="rollout-state">{stateText(rollout)}</dd>
          {rollout.stopMessage && (
            <>
              <dt>Why</dt>
              <dd>{rollout.stopMessage}</dd>
            </>
          )}
          {rollout.waitingFor && (
            <>
              <dt>Waiting for</dt>
              <dd>
                {rollout.waitingFor}
                {rollout.nextWindowAt && ` (next window ${formatTime(rollout.nextWindowAt)})`}
              </dd>
            </>
          )}
          <dt>Progress</dt>
          <dd>
            <RolloutBar counts={rollout.counts} label="Rollout progress" />
          </dd>
          <dt>Phase</dt>
          <dd>
            {Math.min(rollout.currentPhase + 1, rollout.phases.length)} of {rollout.phases.length}
          </dd>
        </dl>
      </section>

      <section aria-labelledby="rollout-phases">
        <h2 id="rollout-phases">Phases</h2>
        <PhaseTable rollout={rollout} />
      </section>

      <section aria-labelledby="rollout-devices">
        <h2 id="rollout-devices">Devices</h2>
        {devices ? <RolloutDeviceTable devices={devices.items} total={devices.total} /> : <Loading />}
      </section>

      <section class="panel fw-panel" aria-labelledby="rollout-settings">
        <h2 id="rollout-settings">Settings</h2>
        <dl class="facts">
          <dt>Target</dt>
          <dd>{targetText(rollout.target)}</dd>
          <dt>Phases</dt>
          <dd>{rollout.phases.map((p) => p.mark).join(", ")}</dd>
          <dt>Success threshold</dt>
          <dd>{rollout.successThreshold}</dd>
          <dt>Failure threshold</dt>
          <dd>{rollout.failureThreshold}</dd>
          <dt>Rate</dt>
          <dd>{rollout.rate ?? "unlimited"}</dd>
          <dt>Maintenance window</dt>
          <dd>{rollout.maintenanceWindow ?? "any time"}</dd>
          <dt>Timeout per device</dt>
          <dd>{rollout.timeout}</dd>
          <dt>Retries</dt>
          <dd>{rollout.retries}</dd>
          <dt>Auto-rollback</dt>
          <dd>{rollout.autoRollback ? "yes" : "no"}</dd>
          <dt>Created</dt>
          <dd>
            {formatTime(rollout.created)} by {rollout.createdBy}
          </dd>
        </dl>
      </section>

      {confirmAbort && (
        <ConfirmDialog
          title={`Abort rollout ${rollout.id}?`}
          confirmLabel="Abort rollout"
          danger
          busy={busy}
          onConfirm={() => void act("abort")}
          onClose={() => setConfirmAbort(false)}
        >
          <p>
            No new install starts and pending devices are cancelled. Installs not yet installing are cancelled; those
            already installing run to their end.
            {rollout.autoRollback && " Every device the rollout updated is sent back to its previous version."} An
            aborted rollout cannot be resumed.
          </p>
          <ErrorNotice error={actionError} />
        </ConfirmDialog>
      )}
    </section>
  );
}

function targetText(target: RolloutView["target"]): string {
  if (target.devices) return `${target.devices.length} device${target.devices.length === 1 ? "" : "s"} by UUID`;
  if (target.tag) return `tag ${target.tag}`;
  if (target.group !== undefined) return `group ${target.group} and its sub-groups`;
  if (target.query) return `devices matching ${target.query}`;
  return "—";
}

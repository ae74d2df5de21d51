import type { DesiredConfig, DeviceConfigView, DeviceLogPage } from "@fieldgate/shared";
import { useEffect, useState } from "preact/hooks";
import { api } from "../lib/api";
import { formatTime } from "../lib/format";
import type { Resource } from "../lib/use-resource";
import { useResource } from "../lib/use-resource";
import { ScrollBox, Section } from "./device-sections";
import { TableHead } from "./list-table";
import { ErrorNotice, Loading } from "./page";

/** pino's levels, lowest first (shared/src/config-schemas.ts LOG_LEVELS; types only come from shared). */
const LEVELS = ["trace", "debug", "info", "warn", "error", "fatal"] as const;

export interface ConfigResource extends Resource<DeviceConfigView> {
  /** Re-reads every 2 s (at most a minute) while the state is pending: the device's answer shows by itself. */
  watch(): void;
}

export function useDeviceConfig(uuid: string, tick: number): ConfigResource {
  const resource = useResource(
    (signal) => api<DeviceConfigView>("GET", `/devices/${uuid}/config`, { signal }),
    [uuid, tick],
  );
  const [watchSince, setWatchSince] = useState(0);
  const pending = resource.data?.state === "pending";
  const { reload, loading, loadedAt } = resource;
  useEffect(() => {
    if (!watchSince || loading) return;
    // Done once an answer read after the change is no longer pending, or after a minute.
    if ((loadedAt > watchSince && !pending) || Date.now() - watchSince > 60_000) {
      setWatchSince(0);
      return;
    }
    const timer = setTimeout(reload, 2000);
    return () => clearTimeout(timer);
  }, [watchSince, pending, loading, loadedAt, reload]);
  return {
    ...resource,
    watch: () => {
      setWatchSince(Date.now());
      reload();
    },
  };
}

export function DeviceLogs(props: { uuid: string; tick: number; config: ConfigResource; writable: boolean }) {
  const [level, setLevel] = useState("");
  const logs = useResource(
    (signal) =>
      api<DeviceLogPage>("GET", `/devices/${props.uuid}/logs`, {
        query: { level: level || undefined, limit: 200 },
        signal,
      }),
    [props.uuid, level, props.tick],
  );
  return (
    <Section id="logs" title="Logs" wide>
      <div class="toolbar">
        <label class="inline">
          Show level
          <select value={level} onChange={(event) => setLevel(event.currentTarget.value)}>
            <option value="">All levels</option>
            {LEVELS.map((l) => (
              <option key={l} value={l}>
                {l} and above
              </option>
            ))}
          </select>
        </label>
        <ForwardLevel uuid={props.uuid} config={props.config} writable={props.writable} />
      </div>
      <ErrorNotice error={logs.error} />
      {!logs.data && logs.loading && <Loading />}
      {logs.data && logs.data.items.length === 0 && <p class="hint">No log lines{level ? " at this level" : ""}.</p>}
      {logs.data && logs.data.items.length > 0 && (
        <ScrollBox label="Log lines" tall>
          <table class="logs">
            <caption class="visually-hidden">Log lines, newest first</caption>
            <TableHead columns={["Time", "Level", "Message"]} />
            <tbody>
              {logs.data.items.map((line) => (
                <tr key={line.id} class={`level-${line.level}`}>
                  <td class="nowrap">{formatTime(line.ts)}</td>
                  <td>{line.level}</td>
                  <td class="mono break">{line.msg}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </ScrollBox>
      )}
    </Section>
  );
}

/** `logForward.level` of the desired config: what the agent forwards to the cloud (docs/logs.md). */
function ForwardLevel(props: { uuid: string; config: ConfigResource; writable: boolean }) {
  const view = props.config.data;
  const desired = view?.desired.logForward?.level ?? "";
  const [choice, setChoice] = useState(desired);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  useEffect(() => setChoice(desired), [desired]);
  const reported = (view?.reported as { forwardLevel?: string } | null | undefined)?.forwardLevel;
  const save = async () => {
    if (!view) return;
    setBusy(true);
    setError(undefined);
    const { logForward, ...rest } = view.desired;
    const next: DesiredConfig = { ...rest };
    const forward = { ...(logForward ?? {}) };
    if (choice) forward.level = choice as (typeof LEVELS)[number];
    else delete forward.level;
    if (Object.keys(forward).length > 0) next.logForward = forward;
    try {
      await api("PUT", `/devices/${props.uuid}/config`, { body: next });
      props.config.watch();
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  };
  return (
    <div class="forward-level">
      {props.writable ? (
        <>
          <label class="inline">
            Forwarded log level
            <select value={choice} onChange={(event) => setChoice(event.currentTarget.value)} disabled={!view}>
              <option value="">The agent's default</option>
              {LEVELS.map((l) => (
                <option key={l} value={l}>
                  {l}
                </option>
              ))}
            </select>
          </label>
          <button type="button" onClick={save} disabled={busy || !view || choice === desired}>
            {busy ? "Saving…" : "Set level"}
          </button>
        </>
      ) : (
        <span>
          Forwarded log level: <strong>{desired || "the agent's default"}</strong>
        </span>
      )}
      <span class="hint" data-testid="reported-forward-level">
        {reported ? `device forwards ${reported}` : "not reported yet"}
        {view && view.state === "pending" && " (change pending)"}
      </span>
      <ErrorNotice error={error} />
    </div>
  );
}

const STATE_WORDS: Record<string, string> = {
  none: "Nothing desired: the device runs its own configuration.",
  pending: "Pending: the device has not acknowledged this version yet (it gets it when it connects).",
  applied: "Applied: the device runs this version.",
  rejected: "Rejected: the device refused this version and keeps the last good one.",
};

/** The desired config (what the cloud asks for) beside the reported one (what the device applied). */
export function DeviceConfigSection(props: { uuid: string; config: ConfigResource; writable: boolean }) {
  const view = props.config.data;
  const [editing, setEditing] = useState(false);
  const [text, setText] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  const start = () => {
    setText(JSON.stringify(view?.desired ?? {}, null, 2));
    setError(undefined);
    setEditing(true);
  };
  const save = async (event: Event) => {
    event.preventDefault();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (failure) {
      setError(new Error(`The desired config is not valid JSON: ${(failure as Error).message}`));
      return;
    }
    setBusy(true);
    setError(undefined);
    try {
      await api("PUT", `/devices/${props.uuid}/config`, { body });
      setEditing(false);
      props.config.watch();
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  };
  const reportedError = (view?.reported as { error?: string } | null | undefined)?.error;
  return (
    <Section id="config" title="Configuration" wide>
      <ErrorNotice error={props.config.error} />
      {!view && props.config.loading && <Loading />}
      {view && (
        <>
          <p data-testid="config-state">
            <strong>Version {view.version}</strong> — {STATE_WORDS[view.state] ?? view.state}
            {view.updatedAt && <span class="hint"> Set {formatTime(view.updatedAt)}.</span>}
          </p>
          {reportedError && <p class="error-notice">{reportedError}</p>}
          <div class="config-columns">
            <div>
              <h3>Desired</h3>
              {editing ? (
                <form class="form" onSubmit={save}>
                  <label>
                    Desired config (JSON)
                    <textarea
                      class="mono"
                      rows={10}
                      value={text}
                      onInput={(event) => setText(event.currentTarget.value)}
                    />
                  </label>
                  <ErrorNotice error={error} />
                  <div class="actions">
                    <button type="button" onClick={() => setEditing(false)}>
                      Cancel
                    </button>
                    <button type="submit" class="primary" disabled={busy}>
                      {busy ? "Saving…" : "Save desired config"}
                    </button>
                  </div>
                </form>
              ) : (
                <>
                  <pre class="json" data-testid="desired-config">
                    {JSON.stringify(view.desired, null, 2)}
                  </pre>
                  {props.writable && (
                    <button type="button" onClick={start}>
                      Edit desired config
                    </button>
                  )}
                </>
              )}
            </div>
            <div>
              <h3>Reported</h3>
              {view.reported ? (
                <pre class="json" data-testid="reported-config">
                  {JSON.stringify(view.reported, null, 2)}
                </pre>
              ) : (
                <p class="hint">The device has not reported its configuration yet.</p>
              )}
            </div>
          </div>
        </>
      )}
    </Section>
  );
}

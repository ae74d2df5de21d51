import type { CreateRolloutBody, Group, RolloutTarget, RolloutView } from "@fieldgate/shared";
import { useEffect, useState } from "preact/hooks";
import { api } from "../lib/api";
import type { FirmwareImage } from "../lib/firmware";
import { useAction } from "../lib/use-confirm";
import { useItems } from "../lib/use-resource";
import { ErrorNotice } from "./page";

type TargetKind = "devices" | "tag" | "group" | "query";

const TARGETS: { kind: TargetKind; label: string }[] = [
  { kind: "devices", label: "Devices (UUIDs)" },
  { kind: "tag", label: "Tag" },
  { kind: "group", label: "Group" },
  { kind: "query", label: "Device list filter" },
];

/**
 * Starts a rollout with exactly the options `POST /api/v1/rollouts` takes (docs/rollouts.md):
 * one target, phases, thresholds, rate, maintenance window, timeout, retries, auto-rollback.
 * Empty fields are left out, so the cloud's defaults apply.
 */
export function RolloutForm(props: { onCreated: (rollout: RolloutView) => void; onCancel: () => void }) {
  const imageList = useItems<FirmwareImage>("/firmware");
  const images = imageList.data ?? [];
  // Without the groups, a group target is typed by hand.
  const groups = useItems<Group>("/groups").data ?? [];
  const [firmware, setFirmware] = useState("");
  const [kind, setKind] = useState<TargetKind>("devices");
  const [devices, setDevices] = useState("");
  const [tag, setTag] = useState("");
  const [group, setGroup] = useState("");
  const [query, setQuery] = useState("");
  const [phases, setPhases] = useState("");
  const [successThreshold, setSuccessThreshold] = useState("");
  const [failureThreshold, setFailureThreshold] = useState("");
  const [rate, setRate] = useState("");
  const [maintenanceWindow, setMaintenanceWindow] = useState("");
  const [timeout, setTimeoutText] = useState("");
  const [retries, setRetries] = useState("");
  const [autoRollback, setAutoRollback] = useState(false);
  const { busy, error: submitError, run } = useAction();
  const error = submitError ?? imageList.error;

  useEffect(() => {
    const first = imageList.data?.[0];
    if (first) setFirmware((current) => current || `${first.name}@${first.version}`);
  }, [imageList.data]);

  const target = (): RolloutTarget => {
    switch (kind) {
      case "devices":
        return { devices: devices.split(/[\s,]+/).filter(Boolean) };
      case "tag":
        return { tag: tag.trim() };
      case "group":
        return { group: /^\d+$/.test(group) ? Number(group) : group };
      case "query":
        return { query: query.trim().replace(/^\?/, "") };
    }
  };

  const submit = (event: Event) => {
    event.preventDefault();
    const optional = (value: string) => value.trim() || undefined;
    const body: CreateRolloutBody = {
      firmware,
      target: target(),
      phases: optional(phases),
      successThreshold: optional(successThreshold),
      failureThreshold: optional(failureThreshold),
      rate: optional(rate),
      maintenanceWindow: optional(maintenanceWindow),
      timeout: optional(timeout),
      retries: retries.trim() === "" ? undefined : Number(retries),
      autoRollback: autoRollback || undefined,
    };
    void run(async () => props.onCreated(await api<RolloutView>("POST", "/rollouts", { body })));
  };

  return (
    <form class="form rollout-form" onSubmit={submit}>
      <div class="field">
        <label>
          Image
          <select
            aria-describedby="hint-image"
            value={firmware}
            required
            onChange={(e) => setFirmware(e.currentTarget.value)}
          >
            {images.length === 0 && <option value="">No image uploaded yet</option>}
            {images.map((image) => (
              <option key={`${image.name}@${image.version}`} value={`${image.name}@${image.version}`}>
                {image.name}@{image.version} ({image.compatible.join(", ")})
              </option>
            ))}
          </select>
        </label>
        <span class="hint" id="hint-image">
          Devices whose type the image is not made for, or that run it already, are skipped.
        </span>
      </div>

      <fieldset class="rollout-target">
        <legend>Target</legend>
        <div class="radio-row">
          {TARGETS.map((t) => (
            <label key={t.kind} class="radio">
              <input type="radio" name="target" checked={kind === t.kind} onChange={() => setKind(t.kind)} />
              {t.label}
            </label>
          ))}
        </div>
        {kind === "devices" && (
          <div class="field">
            <label>
              Device UUIDs
              <textarea
                aria-describedby="hint-device-uuids"
                rows={3}
                required
                value={devices}
                onInput={(e) => setDevices(e.currentTarget.value)}
              />
            </label>
            <span class="hint" id="hint-device-uuids">
              One device or several, separated by commas, spaces or new lines; updated in this order.
            </span>
          </div>
        )}
        {kind === "tag" && (
          <div class="field">
            <label>
              Tag
              <input aria-describedby="hint-tag" required value={tag} onInput={(e) => setTag(e.currentTarget.value)} />
            </label>
            <span class="hint" id="hint-tag">
              The active devices carrying this tag.
            </span>
          </div>
        )}
        {kind === "group" && (
          <div class="field">
            <label>
              Group
              <select
                aria-describedby="hint-group"
                required
                value={group}
                onChange={(e) => setGroup(e.currentTarget.value)}
              >
                <option value="">Choose a group</option>
                {groups.map((g) => (
                  <option key={g.id} value={String(g.id)}>
                    {g.fullName}
                  </option>
                ))}
              </select>
            </label>
            <span class="hint" id="hint-group">
              The group and all its sub-groups.
            </span>
          </div>
        )}
        {kind === "query" && (
          <div class="field">
            <label>
              Device list filter
              <input
                aria-describedby="hint-device-list-filter"
                required
                value={query}
                onInput={(e) => setQuery(e.currentTarget.value)}
              />
            </label>
            <span class="hint" id="hint-device-list-filter">
              The device list's filters as a query string, e.g. type=gw&amp;online=true (no limit, offset or sort).
            </span>
          </div>
        )}
        <p class="hint">The target is resolved once, now: devices added later do not join.</p>
      </fieldset>

      <div class="field">
        <label>
          Phases
          <input
            aria-describedby="hint-phases"
            value={phases}
            placeholder="100%"
            onInput={(e) => setPhases(e.currentTarget.value)}
          />
        </label>

        <span class="hint" id="hint-phases">
          Cumulative marks: percentages ending at 100% (1%,10%,50%,100%) or device counts (5,50,500). Default: one
          phase, 100%.
        </span>
      </div>
      <div class="field">
        <label>
          Success threshold
          <input
            aria-describedby="hint-success-threshold"
            value={successThreshold}
            placeholder="100%"
            onInput={(e) => setSuccessThreshold(e.currentTarget.value)}
          />
        </label>
        <span class="hint" id="hint-success-threshold">
          A finished phase advances at this success share; below it the rollout holds (paused).
        </span>
      </div>
      <div class="field">
        <label>
          Failure threshold
          <input
            aria-describedby="hint-failure-threshold"
            value={failureThreshold}
            placeholder="100%"
            onInput={(e) => setFailureThreshold(e.currentTarget.value)}
          />
        </label>
        <span class="hint" id="hint-failure-threshold">
          The rollout aborts when failed ÷ started reaches this share. Default 100% (never).
        </span>
      </div>
      <div class="field">
        <label>
          Rate
          <input
            aria-describedby="hint-rate"
            value={rate}
            placeholder="unlimited"
            onInput={(e) => setRate(e.currentTarget.value)}
          />
        </label>
        <span class="hint" id="hint-rate">
          Most installs started per unit, evenly spaced: 100/min, 2/s, 500/h.
        </span>
      </div>
      <div class="field">
        <label>
          Maintenance window
          <input
            aria-describedby="hint-maintenance-window"
            value={maintenanceWindow}
            placeholder="any time"
            onInput={(e) => setMaintenanceWindow(e.currentTarget.value)}
          />
        </label>
        <span class="hint" id="hint-maintenance-window">
          "cron, duration[, time zone]", e.g. "0 2 * * *, 2h, Europe/Berlin"; UTC by default.
        </span>
      </div>
      <div class="field">
        <label>
          Timeout per device
          <input
            aria-describedby="hint-timeout-per-device"
            value={timeout}
            placeholder="60m"
            onInput={(e) => setTimeoutText(e.currentTarget.value)}
          />
        </label>
        <span class="hint" id="hint-timeout-per-device">
          The time each device's job has from its creation, e.g. 30m or 2h.
        </span>
      </div>
      <div class="field">
        <label>
          Retries
          <input
            aria-describedby="hint-retries"
            type="number"
            min={0}
            max={10}
            value={retries}
            placeholder="0"
            onInput={(e) => setRetries(e.currentTarget.value)}
          />
        </label>
        <span class="hint" id="hint-retries">
          New attempts for a failed device before it counts as failed (0–10).
        </span>
      </div>
      <label class="checkbox">
        <span>
          <input type="checkbox" checked={autoRollback} onChange={(e) => setAutoRollback(e.currentTarget.checked)} />{" "}
          Auto-rollback
        </span>
        <span class="hint">On abort, send every device the rollout updated back to the version it ran before.</span>
      </label>

      <ErrorNotice error={error} />
      <div class="actions">
        <button type="button" onClick={props.onCancel}>
          Cancel
        </button>
        <button type="submit" class="primary" disabled={busy || !firmware}>
          {busy ? "Starting…" : "Start rollout"}
        </button>
      </div>
    </form>
  );
}

/**
 * The Proficloud colours: white for ok, yellow with a triangle for warning, red for critical,
 * and a grey background keeping the last status's icon while the device is offline. The words
 * are always there too, so the colour is never the only signal.
 */
export type HealthStatus = "ok" | "warning" | "critical" | "unknown";

const ICONS: Record<HealthStatus, string> = { ok: "●", warning: "▲", critical: "■", unknown: "○" };
const WORDS: Record<HealthStatus, string> = { ok: "OK", warning: "Warning", critical: "Critical", unknown: "Unknown" };

export function healthOf(health: string | null): HealthStatus {
  return health === "ok" || health === "warning" || health === "critical" ? health : "unknown";
}

/** The row class a device list row takes: health-ok, health-warning, health-critical or offline. */
export function healthClass(health: string | null, online: boolean, everSeen: boolean): string {
  if (!everSeen) return "never-connected";
  return online ? `health-${healthOf(health)}` : `offline health-was-${healthOf(health)}`;
}

export function HealthBadge(props: { health: string | null; online: boolean; lastSeen: string | null }) {
  const status = healthOf(props.health);
  if (!props.lastSeen && !props.online) {
    return (
      <span class="health-badge never" data-health="never">
        <span aria-hidden="true">◌</span> Never connected
      </span>
    );
  }
  const label = props.online ? WORDS[status] : `Offline (last: ${WORDS[status]})`;
  return (
    <span
      class={`health-badge ${props.online ? `health-${status}` : "offline"}`}
      data-health={props.online ? status : "offline"}
    >
      <span aria-hidden="true" class={`icon icon-${status}`}>
        {ICONS[status]}
      </span>{" "}
      {label}
    </span>
  );
}

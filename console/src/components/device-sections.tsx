import type {
  Device,
  DeviceCertificateList,
  DeviceEventPage,
  DeviceHealth as DeviceHealthView,
} from "@fieldgate/shared";
import type { ComponentChildren } from "preact";
import { useState } from "preact/hooks";
import { api } from "../lib/api";
import { formatRelative, formatTime } from "../lib/format";
import { useResource } from "../lib/use-resource";
import { HealthBadge, healthOf } from "./health-badge";
import { TableHead } from "./list-table";
import { ErrorNotice, Loading } from "./page";

/** A titled section of the device page; `id` makes it linkable and names it for screen readers. */
export function Section(props: { id: string; title: string; children: ComponentChildren; wide?: boolean }) {
  return (
    <section
      class={props.wide ? "panel device-section wide" : "panel device-section"}
      id={props.id}
      aria-labelledby={`${props.id}-title`}
    >
      <h2 id={`${props.id}-title`}>{props.title}</h2>
      {props.children}
    </section>
  );
}

/**
 * A table that may scroll: focusable, so keyboard users can scroll it too, and named for
 * screen readers by `label`.
 */
export function ScrollBox(props: { label: string; children: ComponentChildren; tall?: boolean }) {
  return (
    // biome-ignore lint/a11y/noNoninteractiveTabindex: a scrollable region must take focus to scroll by keyboard (WCAG 2.1.1)
    <section class={props.tall ? "table-wrap scroll-y" : "table-wrap"} aria-label={props.label} tabIndex={0}>
      {props.children}
    </section>
  );
}

function CopyButton(props: { text: string; label: string }) {
  const [copied, setCopied] = useState(false);
  return (
    <button
      type="button"
      class="small"
      aria-label={props.label}
      onClick={async () => {
        try {
          await navigator.clipboard.writeText(props.text);
          setCopied(true);
        } catch {
          setCopied(false);
        }
      }}
    >
      {copied ? "Copied" : "Copy"}
    </button>
  );
}

export function DeviceInformation(props: { device: Device }) {
  const d = props.device;
  return (
    <Section id="information" title="Information">
      <dl class="facts">
        <dt>uuid</dt>
        <dd class="uuid-row">
          <code data-testid="device-uuid">{d.uuid}</code> <CopyButton text={d.uuid} label="Copy uuid" />
        </dd>
        <dt>Name</dt>
        <dd data-testid="device-name">{d.name || <span class="hint">none</span>}</dd>
        <dt>Location</dt>
        <dd>{d.location || <span class="hint">none</span>}</dd>
        <dt>Comment</dt>
        <dd class="prewrap">{d.comment || <span class="hint">none</span>}</dd>
        <dt>Tags</dt>
        <dd>
          {d.tags.length === 0 ? (
            <span class="hint">none</span>
          ) : (
            <ul class="chips" aria-label="Tags">
              {d.tags.map((tag) => (
                <li class="chip" key={tag}>
                  {tag}
                </li>
              ))}
            </ul>
          )}
        </dd>
        <dt>Group</dt>
        <dd>{d.group.fullName}</dd>
        <dt>Type</dt>
        <dd>{d.type?.name ?? <span class="hint">none</span>}</dd>
        <dt>Created</dt>
        <dd>{formatTime(d.createdAt)}</dd>
        <dt>Health</dt>
        <dd>
          <HealthBadge health={d.health} online={d.online} lastSeen={d.lastSeen} />
        </dd>
        <dt>Last seen</dt>
        <dd>
          {d.online ? "online now" : d.lastSeen ? `${formatRelative(d.lastSeen)} (${formatTime(d.lastSeen)})` : "never"}
          {!d.online && d.offlineReason && <span class="hint"> — {d.offlineReason}</span>}
        </dd>
        {d.retiredAt && (
          <>
            <dt>Retired</dt>
            <dd>
              {formatTime(d.retiredAt)}
              {d.replacedBy && (
                <>
                  , replaced by <a href={`/devices/${d.replacedBy}`}>{d.replacedBy}</a>
                </>
              )}
            </dd>
          </>
        )}
      </dl>
    </Section>
  );
}

const CHECK_ORDER: Record<string, number> = { critical: 0, warning: 1, unknown: 2, ok: 3 };

/** What needs a look first: critical, warning, unknown, then ok; in the device's order within each. */
function sortedChecks<T extends { status: string }>(checks: T[]): T[] {
  return checks
    .map((check, i) => ({ check, i }))
    .sort((a, b) => (CHECK_ORDER[a.check.status] ?? 2) - (CHECK_ORDER[b.check.status] ?? 2) || a.i - b.i)
    .map((x) => x.check);
}

const CHECK_WORDS: Record<string, string> = { ok: "OK", warning: "Warning", critical: "Critical", unknown: "Unknown" };

export function DeviceHealthChecks(props: { uuid: string; tick: number }) {
  const health = useResource(
    (signal) => api<DeviceHealthView>("GET", `/devices/${props.uuid}/health`, { signal }),
    [props.uuid, props.tick],
  );
  const h = health.data;
  return (
    <Section id="health" title="Health">
      <ErrorNotice error={health.error} />
      {!h && health.loading && <Loading />}
      {h && h.checks.length === 0 && <p class="hint">The device has not reported its health yet.</p>}
      {h && h.checks.length > 0 && (
        <>
          <p class="hint">
            Reported {formatTime(h.reportedAt)} (received {formatRelative(h.receivedAt)}).
          </p>
          <ul class="checks" aria-label="Health checks">
            {sortedChecks(h.checks).map((check) => {
              const status = check.status === "unknown" ? "unknown" : healthOf(check.status);
              return (
                <li key={check.name} class={`check check-${status}`} data-check={check.name}>
                  <span class="check-status">
                    <span aria-hidden="true" class={`icon icon-${status}`}>
                      {status === "ok" ? "●" : status === "warning" ? "▲" : status === "critical" ? "■" : "○"}
                    </span>{" "}
                    {CHECK_WORDS[status]}
                  </span>
                  <span class="check-name">{check.name}</span>
                  <span class="check-message">{check.message ?? ""}</span>
                </li>
              );
            })}
          </ul>
        </>
      )}
    </Section>
  );
}

const PRESENCE = new Set(["DEVICE_ONLINE", "DEVICE_OFFLINE"]);

/** Presence history (online/offline with reasons) and the other events, from the same history. */
export function DeviceHistory(props: { uuid: string; tick: number }) {
  const events = useResource(
    (signal) => api<DeviceEventPage>("GET", `/devices/${props.uuid}/events`, { query: { limit: 200 }, signal }),
    [props.uuid, props.tick],
  );
  const items = events.data?.items ?? [];
  const presence = items.filter((e) => PRESENCE.has(e.code));
  const others = items.filter((e) => !PRESENCE.has(e.code));
  return (
    <>
      <Section id="presence" title="Presence history" wide>
        <ErrorNotice error={events.error} />
        {!events.data && events.loading && <Loading />}
        {events.data && presence.length === 0 && <p class="hint">The device has never connected.</p>}
        {presence.length > 0 && (
          <ScrollBox label="Online and offline changes" tall>
            <table>
              <caption class="visually-hidden">Presence history, newest first</caption>
              <TableHead columns={["Time", "State", "Reason"]} />
              <tbody>
                {presence.map((e, i) => (
                  <tr key={`${e.ts}-${i}`}>
                    <td class="nowrap">{formatTime(e.ts)}</td>
                    <td>{e.code === "DEVICE_ONLINE" ? "Online" : "Offline"}</td>
                    <td>{e.message}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </ScrollBox>
        )}
      </Section>
      <Section id="events" title="Events" wide>
        {events.data && others.length === 0 && <p class="hint">No events.</p>}
        {others.length > 0 && (
          <ScrollBox label="Event list" tall>
            <table>
              <caption class="visually-hidden">Events, newest first</caption>
              <TableHead columns={["Time", "Severity", "Code", "Message"]} />
              <tbody>
                {others.map((e, i) => (
                  <tr key={`${e.ts}-${i}`} class={`severity-${e.severity}`}>
                    <td class="nowrap">{formatTime(e.ts)}</td>
                    <td>{e.severity}</td>
                    <td>
                      <code>{e.code}</code>
                    </td>
                    <td class="break">
                      {e.message}
                      {e.field && <span class="hint"> ({e.field})</span>}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </ScrollBox>
        )}
      </Section>
    </>
  );
}

export function DeviceCertificates(props: { device: Device; tick: number }) {
  const { device } = props;
  const list = useResource(
    (signal) => api<DeviceCertificateList>("GET", `/devices/${device.uuid}/certificates`, { signal }),
    [device.uuid, props.tick],
  );
  const cert = device.certificate;
  const renewals = list.data?.items.filter((c) => c.revokeReason === "renewed").length ?? 0;
  return (
    <Section id="certificate" title="Certificate" wide>
      {cert ? (
        <dl class="facts">
          <dt>Serial</dt>
          <dd>
            <code class="break" data-testid="certificate-serial">
              {cert.serial}
            </code>
          </dd>
          <dt>Issued</dt>
          <dd>{formatTime(cert.issuedAt)}</dd>
          <dt>Expires</dt>
          <dd>
            {formatTime(cert.notAfter)} ({formatRelative(cert.notAfter)})
          </dd>
          <dt>Renewals</dt>
          <dd>{list.data ? renewals : "…"}</dd>
        </dl>
      ) : (
        <p data-testid="no-certificate">
          No valid certificate: the device {device.window.open ? "may enroll now (the window is open)" : "must enroll"}.
        </p>
      )}
      <ErrorNotice error={list.error} />
      {list.data && list.data.items.length > 0 && (
        <ScrollBox label="Issue history">
          <table>
            <caption>All certificates, newest first</caption>
            <TableHead columns={["Serial", "Issued", "Expires", "State"]} />
            <tbody>
              {list.data.items.map((c) => (
                <tr key={c.serial}>
                  <td>
                    <code class="break">{c.serial}</code>
                  </td>
                  <td class="nowrap">{formatTime(c.issuedAt)}</td>
                  <td class="nowrap">{formatTime(c.notAfter)}</td>
                  <td>
                    {c.current
                      ? "Current"
                      : c.revokedAt
                        ? `${c.revokeReason === "renewed" ? "Renewed" : "Revoked"} ${formatTime(c.revokedAt)}${c.revokeReason && c.revokeReason !== "renewed" ? ` (${c.revokeReason})` : ""}`
                        : "Superseded"}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </ScrollBox>
      )}
    </Section>
  );
}

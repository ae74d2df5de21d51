import type { TelemetryPage } from "@fieldgate/shared";
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { api, apiPath } from "../lib/api";
import { formatTime } from "../lib/format";
import { useResource } from "../lib/use-resource";
import { ScrollBox, Section } from "./device-sections";
import { TableHead } from "./list-table";
import { ErrorNotice, Loading } from "./page";

type Reading = TelemetryPage["items"][number];
type RangeKey = "1h" | "24h" | "7d" | "custom";
const RANGES: { key: RangeKey; label: string; ms: number }[] = [
  { key: "1h", label: "Last hour", ms: 3_600_000 },
  { key: "24h", label: "Last 24 hours", ms: 86_400_000 },
  { key: "7d", label: "Last 7 days", ms: 7 * 86_400_000 },
  { key: "custom", label: "Custom", ms: 0 },
];
/** The API's largest page; a range with more readings shows the newest this many (the export has all). */
const LIMIT = 10_000;
const TABLE_ROWS = 200;

/** `2026-12-04T20:15` in local time, for <input type="datetime-local">. */
function localInput(ms: number): string {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60_000);
  return d.toISOString().slice(0, 16);
}

interface Metric {
  key: string;
  name: string;
  source: string | null;
  unit: string | null;
  /** Oldest first: seconds, values. */
  xs: number[];
  ys: number[];
}

function metricsOf(items: Reading[]): Metric[] {
  const byKey = new Map<string, Metric>();
  // Items come newest first; charts want oldest first.
  for (let i = items.length - 1; i >= 0; i--) {
    const r = items[i] as Reading;
    if (typeof r.value !== "number") continue;
    const key = r.source ? `${r.source}/${r.name}` : r.name;
    let metric = byKey.get(key);
    if (!metric) {
      metric = { key, name: r.name, source: r.source, unit: r.unit, xs: [], ys: [] };
      byKey.set(key, metric);
    }
    metric.xs.push(Date.parse(r.ts) / 1000);
    metric.ys.push(r.value);
  }
  return [...byKey.values()].sort((a, b) => a.key.localeCompare(b.key));
}

function MetricChart(props: { metric: Metric }) {
  const { metric } = props;
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const height = 170;
    const plot = new uPlot(
      {
        width: Math.max(200, el.clientWidth),
        height,
        legend: { show: false },
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: true } },
        series: [{}, { label: metric.key, stroke: "#0b5cad", width: 2, points: { show: metric.xs.length < 60 } }],
        axes: [{ stroke: "#5b6676" }, { stroke: "#5b6676", size: 56 }],
      },
      [metric.xs, metric.ys],
      el,
    );
    const observer = new ResizeObserver(() => plot.setSize({ width: Math.max(200, el.clientWidth), height }));
    observer.observe(el);
    return () => {
      observer.disconnect();
      plot.destroy();
    };
  }, [metric]);
  const last = metric.ys[metric.ys.length - 1];
  const min = Math.min(...metric.ys);
  const max = Math.max(...metric.ys);
  const unit = metric.unit ? ` ${metric.unit}` : "";
  const summary = `${metric.ys.length} readings, latest ${last}${unit}, min ${min}${unit}, max ${max}${unit}`;
  return (
    <figure class="metric-chart" data-metric={metric.key}>
      <figcaption>
        <strong>{metric.key}</strong>
        {metric.unit && <span class="hint"> ({metric.unit})</span>} <span class="hint">{summary}</span>
      </figcaption>
      <div ref={box} class="chart-box" role="img" aria-label={`Chart of ${metric.key}: ${summary}`} />
    </figure>
  );
}

export function DeviceTelemetry(props: { uuid: string; tick: number }) {
  const [range, setRange] = useState<RangeKey>("1h");
  const now = Date.now();
  const [customFrom, setCustomFrom] = useState(localInput(now - 86_400_000));
  const [customTo, setCustomTo] = useState(localInput(now));
  const [applied, setApplied] = useState<{ from: string; to: string } | undefined>(undefined);

  const chosenRange = (): { from: string; to?: string } => {
    if (range === "custom" && applied) return applied;
    const ms = RANGES.find((r) => r.key === range)?.ms ?? 3_600_000;
    return { from: new Date(Date.now() - ms).toISOString() };
  };
  const shown = chosenRange();
  const telemetry = useResource(
    (signal) =>
      api<TelemetryPage>("GET", `/devices/${props.uuid}/telemetry`, {
        query: { from: shown.from, to: shown.to, limit: LIMIT },
        signal,
      }),
    // A relative range moves with the live ticks; a custom one stays put.
    [props.uuid, range, applied, range === "custom" ? 0 : props.tick],
  );
  const items = telemetry.data?.items ?? [];
  const metrics = useMemo(() => metricsOf(items), [telemetry.data]);
  const csv = apiPath(`/devices/${props.uuid}/telemetry`, { format: "csv", from: shown.from, to: shown.to });

  const applyCustom = (event: Event) => {
    event.preventDefault();
    const from = new Date(customFrom);
    const to = new Date(customTo);
    if (Number.isNaN(from.getTime()) || Number.isNaN(to.getTime())) return;
    // The inputs are to the minute: "to" takes in its whole minute.
    setApplied({ from: from.toISOString(), to: new Date(to.getTime() + 59_999).toISOString() });
  };

  return (
    <Section id="telemetry" title="Telemetry" wide>
      <div class="toolbar">
        <label class="inline">
          Time range
          <select
            value={range}
            onChange={(event) => {
              const key = event.currentTarget.value as RangeKey;
              setRange(key);
              if (key !== "custom") setApplied(undefined);
            }}
          >
            {RANGES.map((r) => (
              <option key={r.key} value={r.key}>
                {r.label}
              </option>
            ))}
          </select>
        </label>
        {range === "custom" && (
          <form class="custom-range" onSubmit={applyCustom}>
            <label class="inline">
              From
              <input
                type="datetime-local"
                value={customFrom}
                required
                onInput={(event) => setCustomFrom(event.currentTarget.value)}
              />
            </label>
            <label class="inline">
              To
              <input
                type="datetime-local"
                value={customTo}
                required
                onInput={(event) => setCustomTo(event.currentTarget.value)}
              />
            </label>
            <button type="submit">Show range</button>
          </form>
        )}
        <a class="button" href={csv} download={`${props.uuid}-telemetry.csv`}>
          Export CSV
        </a>
      </div>
      <ErrorNotice error={telemetry.error} />
      {range === "custom" && !applied && <p class="hint">Choose from and to, then show the range.</p>}
      {!telemetry.data && telemetry.loading && <Loading />}
      {telemetry.data && items.length === 0 && <p class="hint">No readings in this range.</p>}
      {items.length >= LIMIT && (
        <p class="hint">Showing the newest {LIMIT} readings of this range; the CSV export has all of them.</p>
      )}
      <div class="charts">
        {metrics.map((metric) => (
          <MetricChart key={metric.key} metric={metric} />
        ))}
      </div>
      {items.length > 0 && (
        <>
          <h3>Readings</h3>
          <ScrollBox label="Readings table" tall>
            <table>
              <caption class="visually-hidden">Readings, newest first</caption>
              <TableHead columns={["Time", "Metric", "Value", "Unit", "Source"]} />
              <tbody>
                {items.slice(0, TABLE_ROWS).map((r) => (
                  <tr key={`${r.stream}-${r.seq}-${r.name}-${r.ts}`}>
                    <td class="nowrap">{formatTime(r.ts)}</td>
                    <td>{r.name}</td>
                    <td class="num">{String(r.value)}</td>
                    <td>{r.unit ?? ""}</td>
                    <td>{r.source ?? "agent"}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </ScrollBox>
          {items.length > TABLE_ROWS && (
            <p class="hint">
              The newest {TABLE_ROWS} of {items.length} readings; export the range for all.
            </p>
          )}
        </>
      )}
    </Section>
  );
}

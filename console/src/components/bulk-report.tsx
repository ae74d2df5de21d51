import type { BulkReport, BulkRowResult } from "@fieldgate/shared";
import { downloadText, formatTime, toCsv } from "../lib/format";
import { TableHead } from "./list-table";

const VERB: Record<BulkReport["operation"], string> = {
  import: "registered",
  edit: "changed",
  transfer: "moved",
  replace: "replaced",
  delete: "deleted",
};

/** What a run did or would do: a summary line, then one table row per CSV data row. */
export function BulkReportView(props: { report: BulkReport }) {
  const { report } = props;
  const { ok, failed } = report.summary;
  const outcome = report.dryRun
    ? `Dry run: ${ok} ${ok === 1 ? "row" : "rows"} would be ${VERB[report.operation]}, ${failed} failed. Nothing was written.`
    : report.applied
      ? `Applied: ${ok} ${ok === 1 ? "row" : "rows"} ${VERB[report.operation]}, ${failed} failed.`
      : `Not applied: ${failed} ${failed === 1 ? "row" : "rows"} failed, so nothing was written (atomic mode).`;
  const replace = report.operation === "replace";
  return (
    <section class="panel bulk-report" aria-labelledby="bulk-report-title">
      <h2 id="bulk-report-title">{report.dryRun ? "Dry-run report" : "Report"}</h2>
      <p role="status" class={failed > 0 ? "bulk-outcome failed" : "bulk-outcome"}>
        {outcome}
      </p>
      <div class="table-wrap">
        <table>
          <caption class="visually-hidden">One row per CSV data row</caption>
          <thead>
            <tr>
              <th scope="col">Line</th>
              <th scope="col">{replace ? "New uuid" : "Uuid"}</th>
              {replace && <th scope="col">Old uuid</th>}
              {report.operation === "import" && <th scope="col">Name</th>}
              <th scope="col">Status</th>
              <th scope="col">Error</th>
            </tr>
          </thead>
          <tbody>
            {report.rows.map((row) => (
              <tr key={row.line} class={row.status === "error" ? "row-error" : undefined} data-line={row.line}>
                <td>{row.line}</td>
                <td class="mono">{row.uuid ?? ""}</td>
                {replace && <td class="mono">{row.oldUuid ?? ""}</td>}
                {report.operation === "import" && <td>{row.name ?? ""}</td>}
                <td>{row.status === "ok" ? "OK" : "Error"}</td>
                <td>
                  {row.status === "error" && (
                    <>
                      <span class="mono">{row.code}</span>
                      {row.field && <> (column {row.field})</>}: {row.message}
                    </>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}

/** The columns of the CLI's --out file (docs/bulk-csv.md). */
export function tokensCsv(rows: readonly BulkRowResult[]): string {
  return toCsv(
    ["line", "uuid", "name", "old_uuid", "token", "window_expires_at"],
    rows.map((r) => [r.line, r.uuid, r.name, r.oldUuid, r.token, r.windowExpiresAt]),
  );
}

/** The enrollment tokens of new devices, shown once, with a CSV download. */
export function BulkTokens(props: { rows: readonly BulkRowResult[]; onDismiss: () => void }) {
  const rows = props.rows.filter((r) => r.token);
  if (rows.length === 0) return null;
  const download = () =>
    downloadText(`fieldgate-tokens-${new Date().toISOString().replace(/[:.]/g, "-")}.csv`, tokensCsv(rows));
  return (
    <section class="panel token-panel bulk-tokens" aria-labelledby="bulk-tokens-title">
      <h2 id="bulk-tokens-title">Enrollment tokens</h2>
      <p>
        The {rows.length} new {rows.length === 1 ? "device's token is" : "devices' tokens are"} shown{" "}
        <strong>only now</strong>: download them before leaving this page. Each device must enroll before its window
        closes.
      </p>
      <div class="actions start">
        <button type="button" class="primary" onClick={download}>
          Download tokens (CSV)
        </button>
        <button type="button" onClick={props.onDismiss}>
          Done, hide the tokens
        </button>
      </div>
      <div class="table-wrap">
        <table>
          <TableHead columns={["Line", "Uuid", "Name", "Token", "Window closes"]} />
          <tbody>
            {rows.map((row) => (
              <tr key={row.line}>
                <td>{row.line}</td>
                <td class="mono">{row.uuid}</td>
                <td>{row.name ?? ""}</td>
                <td class="mono token-cell" data-testid="bulk-token">
                  {row.token}
                </td>
                <td>{formatTime(row.windowExpiresAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}

import fs from "node:fs";
import path from "node:path";
import {
  BULK_CSV_MAX_BYTES,
  type BulkOperation,
  type BulkReport,
  type BulkRowResult,
  FieldgateError,
} from "@fieldgate/shared";
import type { Command } from "commander";
import { toCsv } from "../bulk/csv-output.js";
import { ApiClient, type ConnectionOptions } from "./api-client.js";
import { type CliIo, confirm, ExitCode, withConnection } from "./cli-support.js";
import { renderTable } from "./table.js";

interface BulkOptions extends ConnectionOptions {
  json?: boolean;
  dryRun?: boolean;
  mode?: string;
}

interface TokenOptions {
  out?: string;
}

/**
 * `devices import | bulk-edit | transfer | replace | bulk-delete <file>`: the bulk series. Each
 * sends the file to the API and prints the per-row report; the exit code is 1 when a row failed.
 * Enrollment tokens go only to the `--out` CSV (mode 0600), never to the terminal.
 */
export function addBulkCommands(devices: Command, io: CliIo): void {
  const bulk = (command: Command) =>
    withConnection(
      command
        .option("--dry-run", "validate every row and report; change nothing")
        .option("--mode <mode>", "atomic: all rows or none; rows: apply each valid row", "atomic"),
    );

  bulk(
    devices
      .command("import <file>")
      .description("register a series of devices from CSV; their one-time tokens go to --out")
      .option("--name-prefix <prefix>", "name rows without a name <prefix>1, <prefix>2, … after the highest in use")
      .option("--group <group>", "group for rows without a group cell (default: your own group)")
      .option("--type <type>", "device type for rows without a type cell")
      .option("--out <file>", "where to write the tokens CSV (default ./fieldgate-tokens-<time>.csv)"),
  ).action(async (file: string, opts: BulkOptions & TokenOptions & ImportFlags, cmd: Command) => {
    const query = { namePrefix: opts.namePrefix, group: opts.group, type: opts.type };
    await runBulk(cmd, io, "import", file, opts, query);
  });

  bulk(
    devices.command("bulk-edit <file>").description("set name, location, comment, tags and type by uuid from CSV"),
  ).action(async (file: string, opts: BulkOptions, cmd: Command) => {
    await runBulk(cmd, io, "edit", file, opts, {});
  });

  bulk(
    devices
      .command("transfer <file>")
      .description("move the listed devices to a group, and optionally a type")
      .requiredOption("--to-group <group>", "the target group (id or name path)")
      .option("--to-type <type>", "the device type they all get")
      .option("--keep-history", "keep their telemetry, events and logs (the default)")
      .option("--drop-history", "delete their telemetry, events and logs"),
  ).action(async (file: string, opts: BulkOptions & TransferFlags, cmd: Command) => {
    if (opts.keepHistory && opts.dropHistory) {
      throw new FieldgateError("VALIDATION_FAILED", "give --keep-history or --drop-history, not both", "drop-history");
    }
    const query = { toGroup: opts.toGroup, toType: opts.toType, history: opts.dropHistory ? "drop" : "keep" };
    await runBulk(cmd, io, "transfer", file, opts, query);
  });

  bulk(
    devices
      .command("replace <file>")
      .description("replace old devices by new ones (old_uuid,new_uuid): the old are revoked and retired")
      .option("--keep-history", "move the old devices' telemetry, events and logs to the new ones")
      .option("--out <file>", "where to write the new devices' tokens (default ./fieldgate-tokens-<time>.csv)"),
  ).action(async (file: string, opts: BulkOptions & TokenOptions & { keepHistory?: boolean }, cmd: Command) => {
    await runBulk(cmd, io, "replace", file, opts, { keepHistory: opts.keepHistory === true ? "true" : undefined });
  });

  bulk(
    devices
      .command("bulk-delete <file>")
      .description("delete the listed devices with all their data, irretrievably")
      .option("-y, --yes", "do not ask for confirmation"),
  ).action(async (file: string, opts: BulkOptions & { yes?: boolean }, cmd: Command) => {
    await runBulk(cmd, io, "delete", file, opts, {}, opts.yes === true);
  });
}

interface ImportFlags {
  namePrefix?: string;
  group?: string;
  type?: string;
}

interface TransferFlags {
  toGroup: string;
  toType?: string;
  keepHistory?: boolean;
  dropHistory?: boolean;
}

async function runBulk(
  cmd: Command,
  io: CliIo,
  operation: BulkOperation,
  file: string,
  opts: BulkOptions & TokenOptions,
  extra: Record<string, string | undefined>,
  confirmed = true,
): Promise<void> {
  const print = io.out;
  const global = cmd.optsWithGlobals<BulkOptions>();
  if (opts.mode !== "atomic" && opts.mode !== "rows") {
    throw new FieldgateError("VALIDATION_FAILED", "--mode must be atomic or rows", "mode");
  }
  if (!confirmed && !opts.dryRun && !io.stdin.isTTY) {
    throw new FieldgateError("VALIDATION_FAILED", "refusing without --yes when not on a terminal", "yes");
  }
  const csv = readCsv(file);
  const issuesTokens = (operation === "import" || operation === "replace") && !opts.dryRun;
  // Decided before the request: once devices exist, their tokens must have somewhere to go.
  const out = issuesTokens ? tokenFile(opts.out) : undefined;
  const client = ApiClient.fromOptions(global, io.env);
  const send = (dryRun: boolean) => {
    const params = new URLSearchParams({ mode: opts.mode ?? "atomic", dryRun: String(dryRun) });
    for (const [key, value] of Object.entries(extra)) if (value !== undefined) params.set(key, value);
    // The CSV travels as one JSON string, which the API accepts beside text/csv.
    return client.request<BulkReport>("POST", `/api/v1/devices/bulk/${operation}?${params}`, csv, "text/csv");
  };

  if (!confirmed && !opts.dryRun) {
    const preview = await send(true);
    const count = preview.summary.ok;
    if (count === 0 || (opts.mode === "atomic" && preview.summary.failed > 0)) {
      printReport(print, preview, global.json === true);
      throw new ExitCode(1);
    }
    await confirm(
      io,
      `Delete ${count} device(s) with all their telemetry, events and certificates? Type ${count} to confirm: `,
      String(count),
    );
  }

  const report = await send(opts.dryRun === true);
  const withTokens = report.rows.filter((r) => r.token !== undefined);
  if (out && withTokens.length > 0) writeTokens(out, withTokens);
  printReport(print, report, global.json === true);
  if (out && withTokens.length > 0 && global.json !== true) {
    print(
      `enrollment tokens of ${withTokens.length} device(s) written to ${out} (mode 0600); they are shown only there`,
    );
  }
  if (report.summary.failed > 0) throw new ExitCode(1);
}

function printReport(print: (text: string) => void, report: BulkReport, json: boolean): void {
  if (json) {
    const rows = report.rows.map(({ token, ...row }) => (token ? { ...row, token: "[written to --out]" } : row));
    print(JSON.stringify({ ...report, rows }, null, 2));
    return;
  }
  print(
    renderTable(
      ["LINE", "UUID", "STATUS", "CODE", "MESSAGE"],
      report.rows.map((r) => [String(r.line), r.uuid ?? "", r.status, r.code ?? "", rowMessage(r)]),
    ),
  );
  print(summaryText(report));
}

function rowMessage(row: BulkRowResult): string {
  if (row.status === "error") return `${row.message ?? ""}${row.field ? ` (field: ${row.field})` : ""}`;
  const parts = [row.oldUuid ? `replaces ${row.oldUuid}` : "", row.name ? `name ${row.name}` : ""];
  return parts.filter(Boolean).join("; ");
}

function summaryText(report: BulkReport): string {
  const counts = `${report.summary.ok} ok, ${report.summary.failed} failed`;
  if (report.dryRun) return `dry run of ${report.operation}: ${counts}; nothing was changed`;
  if (!report.applied) return `${report.operation} (atomic): ${counts}; nothing was applied because a row failed`;
  return `${report.operation} (${report.mode}): ${counts}; the ok rows were applied`;
}

function readCsv(file: string): string {
  const size = fs.statSync(file, { throwIfNoEntry: false })?.size ?? 0;
  if (size > BULK_CSV_MAX_BYTES) {
    throw new FieldgateError(
      "VALIDATION_FAILED",
      `${file} has ${size} bytes; a bulk file may have at most ${BULK_CSV_MAX_BYTES} (${BULK_CSV_MAX_BYTES / 1024 / 1024} MiB): split it into several files (keep the header row in each) and run the command on each`,
      "file",
    );
  }
  try {
    return fs.readFileSync(file, "utf8");
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new FieldgateError("CONFIG_INVALID", `cannot read the CSV file ${JSON.stringify(file)} (${why})`, "file");
  }
}

function tokenFile(out: string | undefined): string {
  const file = out ?? `fieldgate-tokens-${new Date().toISOString().replace(/[:.]/g, "-")}.csv`;
  if (fs.existsSync(file)) {
    throw new FieldgateError("CONFIG_INVALID", `${file} exists; tokens files are never overwritten`, "out");
  }
  const dir = path.dirname(path.resolve(file));
  if (!fs.existsSync(dir)) throw new FieldgateError("CONFIG_INVALID", `no directory ${dir}`, "out");
  return file;
}

/** The tokens CSV: secrets, so created 0600 and never over an existing file. */
export function writeTokens(file: string, rows: readonly BulkRowResult[]): void {
  const csv = toCsv(
    ["line", "uuid", "name", "old_uuid", "token", "window_expires_at"],
    rows.map((r) => [
      String(r.line),
      r.uuid ?? "",
      r.name ?? "",
      r.oldUuid ?? "",
      r.token ?? "",
      r.windowExpiresAt ?? "",
    ]),
  );
  fs.writeFileSync(file, csv, { mode: 0o600, flag: "wx" });
}

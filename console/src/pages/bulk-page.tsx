import type { BulkOperation, BulkReport, DeviceType } from "@fieldgate/shared";
import { useState } from "preact/hooks";
import { BulkReportView, BulkTokens } from "../components/bulk-report";
import { ConfirmDialog } from "../components/dialog";
import { Field, SelectField, TextField } from "../components/field";
import { FileDrop } from "../components/file-drop";
import { ErrorNotice, PageHeader } from "../components/page";
import { api, type Query } from "../lib/api";
import { useGroups } from "../lib/groups";
import { BULK_MAX_BYTES } from "../lib/limits";
import { useSession } from "../lib/session";
import { useResource } from "../lib/use-resource";

const OPERATIONS: { value: BulkOperation; label: string; columns: string }[] = [
  {
    value: "import",
    label: "New devices (import)",
    columns: "uuid (required), name, location, comment, tags, group, type, factory_public_key",
  },
  { value: "edit", label: "Edit devices", columns: "uuid (required) and any of name, location, comment, tags, type" },
  { value: "transfer", label: "Transfer to a group", columns: "uuid" },
  { value: "replace", label: "Replace hardware", columns: "old_uuid, new_uuid (required), factory_public_key" },
  { value: "delete", label: "Delete devices", columns: "uuid" },
];

interface Options {
  mode: "atomic" | "rows";
  namePrefix: string;
  group: string;
  type: string;
  toGroup: string;
  toType: string;
  history: "keep" | "drop";
  keepHistory: boolean;
}

const INITIAL: Options = {
  mode: "atomic",
  namePrefix: "",
  group: "",
  type: "",
  toGroup: "",
  toType: "",
  history: "keep",
  keepHistory: false,
};

function queryOf(operation: BulkOperation, options: Options, dryRun: boolean): Query {
  const common = { mode: options.mode, dryRun: dryRun || undefined };
  switch (operation) {
    case "import":
      return { ...common, namePrefix: options.namePrefix, group: options.group, type: options.type };
    case "transfer":
      return { ...common, toGroup: options.toGroup, toType: options.toType, history: options.history };
    case "replace":
      return { ...common, keepHistory: options.keepHistory || undefined };
    default:
      return common;
  }
}

/**
 * The bulk series from CSV (docs/bulk-csv.md): choose the operation and a file, see the dry run's
 * per-row report, then apply it; new devices' tokens are shown once, with a CSV download.
 */
export function BulkPage() {
  const session = useSession();
  const canWrite = session.can("devices:write");
  const { groups } = useGroups();
  const canReadTypes = session.can("types:read");
  // Without types:read (or when they fail to load) the type choices offer none.
  const types =
    useResource(
      async (signal) =>
        canReadTypes ? (await api<{ items: DeviceType[] }>("GET", "/device-types", { signal })).items : [],
      [canReadTypes],
    ).data ?? [];
  const [operation, setOperation] = useState<BulkOperation>("import");
  const [options, setOptions] = useState<Options>(INITIAL);
  const [file, setFile] = useState<File | undefined>(undefined);
  const [report, setReport] = useState<BulkReport | undefined>(undefined);
  const [tokens, setTokens] = useState<BulkReport["rows"] | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  const [busy, setBusy] = useState(false);
  const [confirmingDelete, setConfirmingDelete] = useState(false);

  // Any change of what would be sent makes the last dry run stale.
  const change = <K extends keyof Options>(key: K, value: Options[K]) => {
    setOptions((current) => ({ ...current, [key]: value }));
    setReport(undefined);
  };
  const chooseFile = (chosen: File | undefined) => {
    setFile(chosen);
    setReport(undefined);
    setError(
      chosen && chosen.size > BULK_MAX_BYTES
        ? new Error("The file is larger than 32 MiB: split it into several files, each with the header row.")
        : undefined,
    );
  };

  const run = async (dryRun: boolean) => {
    if (!file) return;
    setBusy(true);
    setError(undefined);
    try {
      const answer = await api<BulkReport>("POST", `/devices/bulk/${operation}`, {
        query: queryOf(operation, options, dryRun),
        raw: { body: file, contentType: "text/csv" },
      });
      setReport(answer);
      if (!dryRun && answer.applied && answer.rows.some((row) => row.token)) setTokens(answer.rows);
    } catch (caught) {
      setReport(undefined);
      setError(caught);
    } finally {
      setBusy(false);
    }
  };

  if (!canWrite) {
    return (
      <section>
        <PageHeader title="Bulk operations" />
        <p>
          Your role cannot change devices, so there is nothing to run here. Bulk series need device-manager or admin.
        </p>
      </section>
    );
  }

  const described = OPERATIONS.find((op) => op.value === operation);
  const previewed = report?.dryRun === true;
  const groupOptions = (groups ?? []).filter((g) => session.can("devices:write", g.fullName));
  const groupChoices = groupOptions.map((g) => ({ value: String(g.id), label: g.fullName }));
  const okRows = report?.summary.ok ?? 0;

  return (
    <section>
      <PageHeader title="Bulk operations" />
      {tokens && <BulkTokens rows={tokens} onDismiss={() => setTokens(undefined)} />}
      <form
        class="panel form bulk-form"
        aria-label="Bulk operation"
        onSubmit={(event) => {
          event.preventDefault();
          void run(true);
        }}
      >
        <Field label="Operation" hint={<>Columns: {described?.columns}. A header row is required.</>}>
          {(field) => (
            <select
              {...field}
              name="operation"
              value={operation}
              onChange={(e) => {
                setOperation(e.currentTarget.value as BulkOperation);
                setReport(undefined);
              }}
            >
              {OPERATIONS.map((op) => (
                <option key={op.value} value={op.value}>
                  {op.label}
                </option>
              ))}
            </select>
          )}
        </Field>
        <FileDrop
          label="CSV file"
          accept=".csv,text/csv,text/plain"
          file={file}
          onFile={chooseFile}
          hint="Or drop a CSV file here. At most 100,000 rows and 32 MiB."
        />
        {operation === "import" && (
          <>
            <TextField
              label="Name prefix"
              hint="Rows without a name get this prefix and a number, like press-8."
              name="namePrefix"
              maxLength={100}
              value={options.namePrefix}
              onChange={(v) => change("namePrefix", v)}
            />
            <SelectField
              label="Group of rows without one"
              name="group"
              value={options.group}
              options={[{ value: "", label: "Your own group" }, ...groupChoices]}
              onChange={(v) => change("group", v)}
            />
            <TypeSelect
              label="Type of rows without one"
              types={types}
              value={options.type}
              onChange={(v) => change("type", v)}
            />
          </>
        )}
        {operation === "transfer" && (
          <>
            <SelectField
              label="Target group"
              name="toGroup"
              required
              value={options.toGroup}
              options={[{ value: "", label: "Choose a group", disabled: true }, ...groupChoices]}
              onChange={(v) => change("toGroup", v)}
            />
            <TypeSelect
              label="New type for all"
              types={types}
              value={options.toType}
              onChange={(v) => change("toType", v)}
            />
            <SelectField
              label="History"
              name="history"
              value={options.history}
              options={[
                { value: "keep", label: "Keep telemetry, events and logs" },
                { value: "drop", label: "Drop telemetry, events and logs" },
              ]}
              onChange={(v) => change("history", v as Options["history"])}
            />
          </>
        )}
        {operation === "replace" && (
          <label class="checkbox">
            <input
              type="checkbox"
              name="keepHistory"
              checked={options.keepHistory}
              onChange={(e) => change("keepHistory", e.currentTarget.checked)}
            />
            Move the old devices' telemetry, events and logs to the new ones
          </label>
        )}
        <SelectField
          label="Mode"
          name="mode"
          value={options.mode}
          options={[
            { value: "atomic", label: "All rows or none (atomic)" },
            { value: "rows", label: "Each valid row (rows)" },
          ]}
          onChange={(v) => change("mode", v as Options["mode"])}
        />
        <ErrorNotice error={error} />
        <div class="actions start">
          <button type="submit" class={previewed ? undefined : "primary"} disabled={!file || busy}>
            Dry run
          </button>
          <button
            type="button"
            class={operation === "delete" ? "danger" : "primary"}
            disabled={!previewed || busy || okRows === 0}
            onClick={() => (operation === "delete" ? setConfirmingDelete(true) : void run(false))}
          >
            Apply
          </button>
        </div>
        <p class="hint">Apply runs after a dry run of the same file and options; the dry run writes nothing.</p>
      </form>
      {report && <BulkReportView report={report} />}
      {confirmingDelete && (
        <ConfirmDialog
          title={`Delete ${okRows} ${okRows === 1 ? "device" : "devices"}?`}
          confirmLabel={`Delete ${okRows} ${okRows === 1 ? "device" : "devices"}`}
          danger
          busy={busy}
          onClose={() => setConfirmingDelete(false)}
          onConfirm={async () => {
            setConfirmingDelete(false);
            await run(false);
          }}
        >
          <p>Each listed device is deleted with all its data, and its live session is dropped.</p>
        </ConfirmDialog>
      )}
    </section>
  );
}

function TypeSelect(props: { label: string; types: DeviceType[]; value: string; onChange: (value: string) => void }) {
  return (
    <SelectField
      label={props.label}
      value={props.value}
      options={[
        { value: "", label: "None" },
        ...props.types.map((t) => ({ value: String(t.id), label: `${t.name} (${t.group.fullName})` })),
      ]}
      onChange={props.onChange}
    />
  );
}

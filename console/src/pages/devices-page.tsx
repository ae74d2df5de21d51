import type { Device, DeviceList, DeviceType, Group } from "@fieldgate/shared";
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { useLocation } from "preact-iso";
import { AddDeviceDialog } from "../components/add-device-dialog";
import { HealthBadge, healthClass } from "../components/health-badge";
import { ErrorNotice, Loading, PageHeader } from "../components/page";
import { api, describeError } from "../lib/api";
import {
  apiQueryOf,
  COLUMNS,
  type ColumnId,
  columnOf,
  csvRows,
  type DeviceListState,
  hasFilter,
  MAX_COLUMNS,
  PAGE_SIZES,
  readSavedFilters,
  type SavedFilter,
  savedFiltersKey,
  searchOf,
  stateFromSearch,
  writeSavedFilters,
} from "../lib/device-list";
import { downloadText, toCsv } from "../lib/format";
import { useLive } from "../lib/live";
import { useSession } from "../lib/session";
import { useItems, useResource } from "../lib/use-resource";

const EXPORT_PAGE = 1000;
const number = new Intl.NumberFormat("en-US");

/**
 * The home page: every device the session may read, in the Proficloud colours, filtered,
 * sorted and paged by the API, with the whole state in the URL (docs/console.md, "Devices").
 */
export function DevicesPage() {
  const location = useLocation();
  const session = useSession();
  const search = location.url.includes("?") ? location.url.slice(location.url.indexOf("?")) : "";
  const state = useMemo(() => stateFromSearch(search), [search]);
  const [adding, setAdding] = useState(false);
  const [exporting, setExporting] = useState(false);
  const [exportError, setExportError] = useState<unknown>(undefined);
  // Without them the add dialog offers no group or type choice; the list still works.
  const groups = useItems<Group>("/groups").data ?? [];
  const types = useItems<DeviceType>("/device-types").data ?? [];

  /** Moves to a new state; a changed filter or sort goes back to page 1. */
  const update = (change: Partial<DeviceListState>, keepPage = false) => {
    const next = { ...state, ...change };
    if (!keepPage) next.offset = 0;
    location.route(`/${searchOf(next)}`, true);
  };

  // A newer request (the filter changed again) drops the answer of the one before.
  const {
    data: list,
    error,
    reload: load,
  } = useResource(
    (signal) =>
      api<DeviceList>("GET", "/devices", {
        query: { ...apiQueryOf(state), limit: state.limit, offset: state.offset },
        signal,
      }),
    [search],
  );

  // Live: a device event (or a poll tick) re-reads the page; see the useLive call below.
  const shown = useMemo(() => new Set(list?.items.map((d) => d.uuid)), [list]);
  const debounce = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  // Any device's change may add it to the filter or the page (a new device, a move, a status the
  // filter asks for): re-read at most once a second, so a fleet's burst costs one request.
  useLive(
    (event) => event.kind === "device",
    (event) => {
      if (debounce.current) return;
      const delay = event.kind === "device" && shown.has(event.uuid) ? 300 : 1000;
      debounce.current = setTimeout(() => {
        debounce.current = undefined;
        void load();
      }, delay);
    },
  );
  useEffect(() => () => clearTimeout(debounce.current), []);

  const exportCsv = async () => {
    setExporting(true);
    setExportError(undefined);
    try {
      const devices: Device[] = [];
      for (let offset = 0; ; offset += EXPORT_PAGE) {
        const page = await api<DeviceList>("GET", "/devices", {
          query: { ...apiQueryOf(state), limit: EXPORT_PAGE, offset },
        });
        devices.push(...page.items);
        if (page.items.length < EXPORT_PAGE || devices.length >= page.total) break;
      }
      const header = state.columns.map((id) => columnOf(id).label);
      downloadText("devices.csv", toCsv(header, csvRows(devices, state.columns)));
    } catch (failure) {
      setExportError(failure);
    } finally {
      setExporting(false);
    }
  };

  const savedKey = savedFiltersKey(session.whoami.organization, session.whoami.user?.email ?? session.whoami.id);

  return (
    <section class="devices-page">
      <PageHeader title="Devices">
        <button type="button" onClick={exportCsv} disabled={exporting || !list}>
          {exporting ? "Exporting…" : "Export CSV"}
        </button>
        {session.can("devices:write") && (
          <button type="button" class="primary" onClick={() => setAdding(true)}>
            Add device
          </button>
        )}
      </PageHeader>
      <ErrorNotice error={exportError} />
      <Filters state={state} groups={groups} types={types} update={update} />
      <div class="list-tools">
        <SavedFilters storageKey={savedKey} search={search} state={state} />
        <ColumnChooser columns={state.columns} onChange={(columns) => update({ columns }, true)} />
      </div>
      <ErrorNotice error={error} />
      {list === undefined && !error && <Loading />}
      {list && <DeviceTable list={list} state={state} update={update} />}
      {adding && (
        <AddDeviceDialog
          groups={groups}
          types={types}
          onAdded={() => void load()}
          onClose={() => {
            setAdding(false);
            void load();
          }}
        />
      )}
    </section>
  );
}

function DeviceTable(props: {
  list: DeviceList;
  state: DeviceListState;
  update: (change: Partial<DeviceListState>, keepPage?: boolean) => void;
}) {
  const { list, state, update } = props;
  const columns = state.columns.map(columnOf);
  const first = list.items.length ? list.offset + 1 : 0;
  const last = list.offset + list.items.length;
  const pages = Math.max(1, Math.ceil(list.total / state.limit));
  const pageNo = Math.floor(state.offset / state.limit) + 1;
  const sortBy = (column: string) => {
    const current = state.sort.replace(/^-/, "");
    const descending = state.sort.startsWith("-");
    update({ sort: current === column && !descending ? `-${column}` : column });
  };
  return (
    <>
      <p class="device-count" role="status" data-testid="device-count">
        <strong>
          {number.format(list.items.length)} / {number.format(list.total)}
        </strong>{" "}
        devices{list.items.length > 0 && list.total > list.items.length && ` (rows ${first}–${last})`}
      </p>
      <div class="table-wrap device-table-wrap">
        <table class="device-table">
          <caption class="visually-hidden">Devices, one row each, coloured by health</caption>
          <thead>
            <tr>
              {columns.map((column) => {
                const sorted = state.sort.replace(/^-/, "") === column.sort;
                const aria = sorted ? (state.sort.startsWith("-") ? "descending" : "ascending") : undefined;
                return (
                  <th key={column.id} scope="col" aria-sort={column.sort ? (aria ?? "none") : undefined}>
                    {column.sort ? (
                      <button type="button" class="sort-button" onClick={() => sortBy(column.sort as string)}>
                        {column.label}
                        <span aria-hidden="true" class="sort-mark">
                          {aria === "ascending" ? " ▲" : aria === "descending" ? " ▼" : ""}
                        </span>
                      </button>
                    ) : (
                      column.label
                    )}
                  </th>
                );
              })}
            </tr>
          </thead>
          <tbody>
            {list.items.map((device) => (
              <tr
                key={device.uuid}
                class={healthClass(device.health, device.online, Boolean(device.lastSeen))}
                data-uuid={device.uuid}
              >
                {columns.map((column) => (
                  <td key={column.id} data-column={column.id}>
                    <Cell device={device} column={column.id} />
                  </td>
                ))}
              </tr>
            ))}
            {list.items.length === 0 && (
              <tr>
                <td colSpan={columns.length} class="empty">
                  {hasFilter(state) ? "No device matches this filter." : "No devices yet."}
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      <nav class="pager" aria-label="Pages">
        <button type="button" disabled={state.offset === 0} onClick={() => update({ offset: 0 }, true)}>
          First
        </button>
        <button
          type="button"
          disabled={state.offset === 0}
          onClick={() => update({ offset: Math.max(0, state.offset - state.limit) }, true)}
        >
          Previous
        </button>
        <span class="page-no">
          Page {pageNo} of {pages}
        </span>
        <button
          type="button"
          disabled={last >= list.total}
          onClick={() => update({ offset: state.offset + state.limit }, true)}
        >
          Next
        </button>
        <div class="field">
          <label for="devices-rows-per-page">Rows per page</label>
          <select
            id="devices-rows-per-page"
            value={String(state.limit)}
            onChange={(e) => update({ limit: Number(e.currentTarget.value) })}
          >
            {PAGE_SIZES.map((size) => (
              <option key={size} value={String(size)}>
                {size}
              </option>
            ))}
          </select>
        </div>
      </nav>
    </>
  );
}

function Cell(props: { device: Device; column: ColumnId }) {
  const { device, column } = props;
  const href = `/devices/${device.uuid}`;
  switch (column) {
    case "status":
      return <HealthBadge health={device.health} online={device.online} lastSeen={device.lastSeen} />;
    case "name":
      return <a href={href}>{device.name || <span class="muted">(no name)</span>}</a>;
    case "uuid":
      return (
        <a href={href} class="mono">
          {device.uuid}
        </a>
      );
    case "tags":
      return (
        <span class="tag-list">
          {device.tags.map((tag) => (
            <span key={tag} class="tag">
              {tag}
            </span>
          ))}
        </span>
      );
    default: {
      const definition = columnOf(column);
      const iso = definition.time?.(device);
      if (iso) return <time dateTime={iso}>{definition.text(device)}</time>;
      return <>{definition.text(device)}</>;
    }
  }
}

/** A text field that tells the page only after a short pause, so typing does not fetch per key. */
function TextFilter(props: {
  label: string;
  value: string;
  onCommit: (value: string) => void;
  type?: "text" | "search";
}) {
  const [text, setText] = useState(props.value);
  const ref = useRef<HTMLInputElement>(null);
  const timer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  useEffect(() => {
    if (document.activeElement !== ref.current) setText(props.value);
  }, [props.value]);
  useEffect(() => () => clearTimeout(timer.current), []);
  const commit = (value: string) => {
    clearTimeout(timer.current);
    if (value !== props.value) props.onCommit(value);
  };
  return (
    <label>
      {props.label}
      <input
        ref={ref}
        type="text"
        value={text}
        onInput={(e) => {
          const value = e.currentTarget.value;
          setText(value);
          clearTimeout(timer.current);
          timer.current = setTimeout(() => commit(value), 350);
        }}
        onKeyDown={(e) => {
          if (e.key === "Enter") commit(e.currentTarget.value);
        }}
        onBlur={(e) => commit(e.currentTarget.value)}
      />
    </label>
  );
}

/** datetime-local wants local time without a zone; the URL and the API take ISO. */
function localInputOf(iso: string): string {
  const date = new Date(iso);
  if (!iso || Number.isNaN(date.getTime())) return "";
  const local = new Date(date.getTime() - date.getTimezoneOffset() * 60_000);
  return local.toISOString().slice(0, 16);
}
function isoOf(local: string): string {
  const date = new Date(local);
  return local && !Number.isNaN(date.getTime()) ? date.toISOString() : "";
}

function Filters(props: {
  state: DeviceListState;
  groups: Group[];
  types: DeviceType[];
  update: (change: Partial<DeviceListState>) => void;
}) {
  const { state, groups, types, update } = props;
  const columnFilters =
    state.uuid ||
    state.name ||
    state.location ||
    state.tags.length ||
    state.type ||
    state.status ||
    state.online ||
    state.lastSeenFrom ||
    state.lastSeenTo ||
    state.firmwareVersion ||
    state.retired;
  const typeNames = [...new Set(types.map((t) => t.name))].sort();
  return (
    <search class="device-filters" aria-label="Filter devices">
      <div class="filter-main">
        <TextFilter label="Search" value={state.q} onCommit={(q) => update({ q })} />
        <div class="field">
          <label for="devices-group">Group</label>
          <select
            id="devices-group"
            value={state.group}
            onChange={(e) => update({ group: e.currentTarget.value, includeSubgroups: state.includeSubgroups })}
          >
            <option value="">All groups</option>
            {groups.map((g) => (
              <option key={g.id} value={String(g.id)}>
                {g.fullName}
              </option>
            ))}
          </select>
        </div>
        <label class="checkbox">
          <input
            type="checkbox"
            checked={state.includeSubgroups}
            onChange={(e) => update({ includeSubgroups: e.currentTarget.checked })}
          />
          Include sub-groups
        </label>
        {hasFilter(state) && (
          <button
            type="button"
            class="link-button"
            onClick={() =>
              update({
                q: "",
                uuid: "",
                name: "",
                location: "",
                tags: [],
                type: "",
                group: "",
                includeSubgroups: false,
                status: "",
                online: "",
                lastSeenFrom: "",
                lastSeenTo: "",
                firmwareVersion: "",
                retired: false,
              })
            }
          >
            Clear filters
          </button>
        )}
      </div>
      <details class="column-filters" open={Boolean(columnFilters)}>
        <summary>Column filters</summary>
        <div class="filter-grid">
          <TextFilter label="UUID starts with" value={state.uuid} onCommit={(uuid) => update({ uuid })} />
          <TextFilter label="Name contains" value={state.name} onCommit={(name) => update({ name })} />
          <TextFilter label="Location contains" value={state.location} onCommit={(location) => update({ location })} />
          <TextFilter
            label="Tags (all of, comma-separated)"
            value={state.tags.join(", ")}
            onCommit={(text) =>
              update({
                tags: text
                  .split(/[,\s]+/)
                  .map((t) => t.trim())
                  .filter(Boolean),
              })
            }
          />
          <div class="field">
            <label for="devices-type">Type</label>
            <select id="devices-type" value={state.type} onChange={(e) => update({ type: e.currentTarget.value })}>
              <option value="">Any type</option>
              {typeNames.map((name) => (
                <option key={name} value={name}>
                  {name}
                </option>
              ))}
            </select>
          </div>
          <div class="field">
            <label for="devices-health">Health</label>
            <select
              id="devices-health"
              value={state.status}
              onChange={(e) => update({ status: e.currentTarget.value })}
            >
              <option value="">Any health</option>
              <option value="ok">OK</option>
              <option value="warning">Warning</option>
              <option value="critical">Critical</option>
            </select>
          </div>
          <div class="field">
            <label for="devices-presence">Presence</label>
            <select
              id="devices-presence"
              value={state.online}
              onChange={(e) => update({ online: e.currentTarget.value })}
            >
              <option value="">Online or offline</option>
              <option value="true">Online</option>
              <option value="false">Offline</option>
            </select>
          </div>
          <TextFilter
            label="Firmware version (exact)"
            value={state.firmwareVersion}
            onCommit={(firmwareVersion) => update({ firmwareVersion })}
          />
          <label>
            Last seen from
            <input
              type="datetime-local"
              value={localInputOf(state.lastSeenFrom)}
              onChange={(e) => update({ lastSeenFrom: isoOf(e.currentTarget.value) })}
            />
          </label>
          <label>
            Last seen before
            <input
              type="datetime-local"
              value={localInputOf(state.lastSeenTo)}
              onChange={(e) => update({ lastSeenTo: isoOf(e.currentTarget.value) })}
            />
          </label>
          <label class="checkbox">
            <input
              type="checkbox"
              checked={state.retired}
              onChange={(e) => update({ retired: e.currentTarget.checked })}
            />
            Retired devices only
          </label>
        </div>
      </details>
    </search>
  );
}

/** Up to MAX_COLUMNS columns, in the order they were picked (the CSV keeps that order). */
function ColumnChooser(props: { columns: ColumnId[]; onChange: (columns: ColumnId[]) => void }) {
  const [refusal, setRefusal] = useState("");
  const toggle = (id: ColumnId, checked: boolean, input: HTMLInputElement) => {
    if (checked) {
      if (props.columns.length >= MAX_COLUMNS) {
        input.checked = false;
        setRefusal(`At most ${MAX_COLUMNS} columns: untick one before adding ${columnOf(id).label}.`);
        return;
      }
      setRefusal("");
      props.onChange([...props.columns, id]);
    } else {
      if (props.columns.length === 1) {
        input.checked = true;
        setRefusal("Keep at least one column.");
        return;
      }
      setRefusal("");
      props.onChange(props.columns.filter((c) => c !== id));
    }
  };
  return (
    <details class="column-chooser">
      <summary>
        Columns ({props.columns.length} of at most {MAX_COLUMNS})
      </summary>
      <fieldset>
        <legend class="visually-hidden">Columns shown</legend>
        {COLUMNS.map((column) => (
          <label key={column.id} class="checkbox">
            <input
              type="checkbox"
              checked={props.columns.includes(column.id)}
              onChange={(e) => toggle(column.id, e.currentTarget.checked, e.currentTarget)}
            />
            {column.label}
          </label>
        ))}
      </fieldset>
      {refusal && (
        <p class="error-notice" role="alert">
          {refusal}
        </p>
      )}
    </details>
  );
}

/** Named filters of this user in this organization, kept in the browser (localStorage). */
function SavedFilters(props: { storageKey: string; search: string; state: DeviceListState }) {
  const location = useLocation();
  const [saved, setSaved] = useState<SavedFilter[]>(() => readSavedFilters(props.storageKey));
  const [name, setName] = useState("");
  const [chosen, setChosen] = useState("");
  const [problem, setProblem] = useState("");
  useEffect(() => setSaved(readSavedFilters(props.storageKey)), [props.storageKey]);
  const store = (next: SavedFilter[]) => {
    try {
      writeSavedFilters(props.storageKey, next);
      setSaved(next);
      setProblem("");
    } catch (failure) {
      setProblem(`The browser did not store the filter: ${describeError(failure)}`);
    }
  };
  const save = (event: Event) => {
    event.preventDefault();
    const trimmed = name.trim();
    if (!trimmed) {
      setProblem("Name the filter first.");
      return;
    }
    const search = searchOf({ ...props.state, offset: 0 });
    store([...saved.filter((f) => f.name !== trimmed), { name: trimmed, search }]);
    setChosen(trimmed);
    setName("");
  };
  const pick = (value: string) => {
    setChosen(value);
    const filter = saved.find((f) => f.name === value);
    if (filter) location.route(`/${filter.search}`, true);
  };
  return (
    <div class="saved-filters">
      <div class="field">
        <label for="devices-saved-filters">Saved filters</label>
        <select id="devices-saved-filters" value={chosen} onChange={(e) => pick(e.currentTarget.value)}>
          <option value="">{saved.length ? "Choose a saved filter" : "None saved yet"}</option>
          {saved.map((f) => (
            <option key={f.name} value={f.name}>
              {f.name}
            </option>
          ))}
        </select>
      </div>
      {chosen && saved.some((f) => f.name === chosen) && (
        <button
          type="button"
          onClick={() => {
            store(saved.filter((f) => f.name !== chosen));
            setChosen("");
          }}
        >
          Delete “{chosen}”
        </button>
      )}
      <form class="save-filter" onSubmit={save}>
        <label class="inline">
          Filter name
          <input value={name} maxLength={64} onInput={(e) => setName(e.currentTarget.value)} />
        </label>
        <button type="submit">Save filter</button>
      </form>
      {problem && (
        <p class="error-notice" role="alert">
          {problem}
        </p>
      )}
    </div>
  );
}

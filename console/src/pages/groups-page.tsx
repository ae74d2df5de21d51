import type { Group } from "@fieldgate/shared";
import { useState } from "preact/hooks";
import { ConfirmDialog } from "../components/dialog";
import { DescriptionField, TextField } from "../components/field";
import { FormDialog } from "../components/form-dialog";
import { GroupSelect, TimezoneSelect } from "../components/group-select";
import { GroupTree } from "../components/group-tree";
import { ErrorNotice, Loading, PageHeader } from "../components/page";
import { api } from "../lib/api";
import { formatTime } from "../lib/format";
import { useGroups } from "../lib/groups";
import { useSession } from "../lib/session";
import { useAction } from "../lib/use-confirm";

type Editing =
  | { kind: "create"; parentId?: number }
  | { kind: "edit"; group: Group }
  | { kind: "move"; group: Group }
  | { kind: "delete"; group: Group };

/** The group tree: create (with parent and time zone), edit, move and delete groups. */
export function GroupsPage() {
  const session = useSession();
  const { groups, error, reload } = useGroups();
  const [selectedId, setSelectedId] = useState<number | undefined>(undefined);
  const [editing, setEditing] = useState<Editing | undefined>(undefined);

  if (!groups) return error ? <ErrorNotice error={error} /> : <Loading />;
  const writable = groups.filter((g) => session.can("groups:write", g.fullName));
  const selected = groups.find((g) => g.id === selectedId) ?? groups[0];
  const canWrite = selected !== undefined && session.can("groups:write", selected.fullName);
  const done = async (select?: number) => {
    setEditing(undefined);
    await reload();
    if (select !== undefined) setSelectedId(select);
  };

  return (
    <section aria-labelledby="groups-title">
      <PageHeader title="Groups">
        {writable.length > 0 && (
          <button type="button" class="primary" onClick={() => setEditing({ kind: "create", parentId: selected?.id })}>
            New group
          </button>
        )}
      </PageHeader>
      <ErrorNotice error={error} />
      <div class="groups-layout">
        <div class="panel">
          <GroupTree groups={groups} selectedId={selected?.id} onSelect={setSelectedId} label="Groups" />
        </div>
        {selected && (
          <section class="panel group-details" aria-labelledby="group-details-title">
            <h2 id="group-details-title">{selected.name}</h2>
            <dl class="facts">
              <dt>Full name</dt>
              <dd class="mono">{selected.fullName}</dd>
              <dt>Description</dt>
              <dd>{selected.description || "—"}</dd>
              <dt>Time zone</dt>
              <dd>{selected.timezone}</dd>
              <dt>Devices</dt>
              <dd>{selected.devices}</dd>
              <dt>Sub-groups</dt>
              <dd>{selected.subgroups}</dd>
              <dt>Created</dt>
              <dd>{formatTime(selected.createdAt)}</dd>
            </dl>
            {canWrite && (
              <div class="actions start">
                <button type="button" onClick={() => setEditing({ kind: "create", parentId: selected.id })}>
                  New sub-group
                </button>
                <button type="button" onClick={() => setEditing({ kind: "edit", group: selected })}>
                  Edit
                </button>
                {selected.parentId !== null && (
                  <button type="button" onClick={() => setEditing({ kind: "move", group: selected })}>
                    Move
                  </button>
                )}
                {selected.parentId !== null && (
                  <button type="button" class="danger" onClick={() => setEditing({ kind: "delete", group: selected })}>
                    Delete
                  </button>
                )}
              </div>
            )}
          </section>
        )}
      </div>
      {editing?.kind === "create" && (
        <CreateGroupDialog
          parents={writable}
          parentId={writable.some((g) => g.id === editing.parentId) ? editing.parentId : writable[0]?.id}
          onClose={() => setEditing(undefined)}
          onDone={(id) => done(id)}
        />
      )}
      {editing?.kind === "edit" && (
        <EditGroupDialog group={editing.group} onClose={() => setEditing(undefined)} onDone={() => done()} />
      )}
      {editing?.kind === "move" && (
        <MoveGroupDialog
          group={editing.group}
          parents={writable.filter(
            (g) =>
              g.id !== editing.group.id &&
              g.id !== editing.group.parentId &&
              !g.fullName.startsWith(`${editing.group.fullName}/`),
          )}
          onClose={() => setEditing(undefined)}
          onDone={() => done(editing.group.id)}
        />
      )}
      {editing?.kind === "delete" && (
        <DeleteGroupDialog
          group={editing.group}
          onClose={() => setEditing(undefined)}
          onDone={() => done(editing.group.parentId ?? undefined)}
        />
      )}
    </section>
  );
}

function CreateGroupDialog(props: {
  parents: Group[];
  parentId: number | undefined;
  onClose: () => void;
  onDone: (id: number) => void;
}) {
  const [parent, setParent] = useState(props.parentId);
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [timezone, setTimezone] = useState("");
  const parentGroup = props.parents.find((g) => g.id === parent);
  return (
    <FormDialog
      title="New group"
      submitLabel="Create group"
      onClose={props.onClose}
      onSubmit={async () => {
        const created = await api<Group>("POST", "/groups", {
          body: { name, parent, description, ...(timezone && { timezone }) },
        });
        props.onDone(created.id);
      }}
    >
      <GroupSelect label="Parent group" name="parent" groups={props.parents} value={parent} onChange={setParent} />
      <GroupNameField value={name} onChange={setName} hint="No slashes; unique among its sibling groups." />
      <DescriptionField value={description} onChange={setDescription} />
      <TimezoneSelect
        value={timezone}
        onChange={setTimezone}
        inheritLabel={`Same as the parent${parentGroup ? ` (${parentGroup.timezone})` : ""}`}
      />
    </FormDialog>
  );
}

function EditGroupDialog(props: { group: Group; onClose: () => void; onDone: () => void }) {
  const [name, setName] = useState(props.group.name);
  const [description, setDescription] = useState(props.group.description);
  const [timezone, setTimezone] = useState(props.group.timezone);
  return (
    <FormDialog
      title={`Edit group ${props.group.name}`}
      submitLabel="Save"
      onClose={props.onClose}
      onSubmit={async () => {
        await api("PATCH", `/groups/${props.group.id}`, { body: { name, description, timezone } });
        props.onDone();
      }}
    >
      <GroupNameField value={name} onChange={setName} />
      <DescriptionField value={description} onChange={setDescription} />
      <TimezoneSelect value={timezone} onChange={setTimezone} />
    </FormDialog>
  );
}

function MoveGroupDialog(props: { group: Group; parents: Group[]; onClose: () => void; onDone: () => void }) {
  const [parent, setParent] = useState<number | undefined>(props.parents[0]?.id);
  return (
    <FormDialog
      title={`Move group ${props.group.name}`}
      submitLabel="Move"
      onClose={props.onClose}
      onSubmit={async () => {
        await api("POST", `/groups/${props.group.id}/move`, { body: { parent } });
        props.onDone();
      }}
    >
      <p>
        <span class="mono">{props.group.fullName}</span> moves with its sub-groups, devices, device types and API
        credentials under the new parent.
      </p>
      <GroupSelect label="New parent group" name="parent" groups={props.parents} value={parent} onChange={setParent} />
    </FormDialog>
  );
}

function DeleteGroupDialog(props: { group: Group; onClose: () => void; onDone: () => void }) {
  const action = useAction();
  const [recursive, setRecursive] = useState(false);
  return (
    <ConfirmDialog
      title={`Delete group ${props.group.name}?`}
      confirmLabel={recursive ? "Delete group and everything in it" : "Delete group"}
      danger
      busy={action.busy}
      onClose={props.onClose}
      onConfirm={() =>
        action.run(async () => {
          await api("DELETE", `/groups/${props.group.id}`, { query: { recursive: recursive || undefined } });
          props.onDone();
        })
      }
    >
      <p>
        The group <span class="mono">{props.group.fullName}</span> is deleted. A group that still holds devices or
        sub-groups is refused: move or delete them first, or delete everything in it.
      </p>
      <label class="checkbox">
        <input type="checkbox" checked={recursive} onChange={(e) => setRecursive(e.currentTarget.checked)} />
        Also delete everything in it: its sub-groups, their devices with all their data, device types and API
        credentials
      </label>
      <ErrorNotice error={action.error} />
    </ConfirmDialog>
  );
}

function GroupNameField(props: { value: string; onChange: (name: string) => void; hint?: string }) {
  return <TextField label="Name" name="name" required maxLength={64} pattern="[^\/]+" {...props} />;
}

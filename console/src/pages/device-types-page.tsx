import type { DeviceType } from "@fieldgate/shared";
import { useState } from "preact/hooks";
import { DeviceTypeDialog } from "../components/device-type-form";
import { ConfirmDialog } from "../components/dialog";
import { ListTable } from "../components/list-table";
import { ErrorNotice, Loading, PageHeader } from "../components/page";
import { RowActions } from "../components/row-actions";
import { api } from "../lib/api";
import { formatTime } from "../lib/format";
import { useGroups } from "../lib/groups";
import { useSession } from "../lib/session";
import { useConfirm } from "../lib/use-confirm";
import { useItems } from "../lib/use-resource";

/** Device types: keep-alive and firmware compatibility shared by devices of one kind. */
export function DeviceTypesPage() {
  const session = useSession();
  const { groups } = useGroups();
  const { data: types, error, reload } = useItems<DeviceType>("/device-types");
  const [editing, setEditing] = useState<{ type?: DeviceType } | undefined>(undefined);
  const deleting = useConfirm<DeviceType>();

  const writableGroups = (groups ?? []).filter((g) => session.can("types:write", g.fullName));
  const done = async () => {
    setEditing(undefined);
    await reload();
  };
  const remove = async (type: DeviceType) => {
    await api("DELETE", `/device-types/${type.id}`);
    void reload();
  };

  return (
    <section>
      <PageHeader title="Device types">
        {writableGroups.length > 0 && (
          <button type="button" class="primary" onClick={() => setEditing({})}>
            New device type
          </button>
        )}
      </PageHeader>
      <ErrorNotice error={error} />
      {!types ? (
        !error && <Loading />
      ) : types.length === 0 ? (
        <p>No device types yet.</p>
      ) : (
        <ListTable
          caption="Device types"
          columns={["Name", "Group", "Keep-alive", "Firmware compatibility", "Devices", "Created"]}
          actions
        >
          {types.map((type) => (
            <tr key={type.id}>
              <th scope="row">
                {type.name}
                {type.description && <div class="hint">{type.description}</div>}
              </th>
              <td class="mono">{type.group.fullName}</td>
              <td>{type.keepaliveMinutes ? `${type.keepaliveMinutes} min` : "none"}</td>
              <td class="mono">{type.firmwareCompat}</td>
              <td>{type.devices}</td>
              <td>{formatTime(type.createdAt)}</td>
              <td class="row-actions">
                {session.can("types:write", type.group.fullName) && (
                  <RowActions
                    name={type.name}
                    actions={[
                      { label: "Edit", onClick: () => setEditing({ type }) },
                      { label: "Delete", danger: true, onClick: () => deleting.ask(type) },
                    ]}
                  />
                )}
              </td>
            </tr>
          ))}
        </ListTable>
      )}
      {editing && (
        <DeviceTypeDialog
          type={editing.type}
          groups={writableGroups}
          onClose={() => setEditing(undefined)}
          onDone={done}
        />
      )}
      {deleting.target && (
        <ConfirmDialog
          title={`Delete device type ${deleting.target.name}?`}
          confirmLabel="Delete device type"
          danger
          busy={deleting.busy}
          onClose={deleting.cancel}
          onConfirm={() => deleting.confirm(remove)}
        >
          <p>
            The type <span class="mono">{deleting.target.name}</span> is deleted. A type that devices still use is
            refused: change their type first.
          </p>
          <ErrorNotice error={deleting.error} />
        </ConfirmDialog>
      )}
    </section>
  );
}

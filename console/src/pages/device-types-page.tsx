import type { DeviceType } from "@fieldgate/shared";
import { useCallback, useEffect, useState } from "preact/hooks";
import { DeviceTypeDialog } from "../components/device-type-form";
import { ConfirmDialog } from "../components/dialog";
import { ErrorNotice, Loading, PageHeader } from "../components/page";
import { api } from "../lib/api";
import { formatTime } from "../lib/format";
import { useGroups } from "../lib/groups";
import { useSession } from "../lib/session";

/** Device types: keep-alive and firmware compatibility shared by devices of one kind. */
export function DeviceTypesPage() {
  const session = useSession();
  const { groups } = useGroups();
  const [types, setTypes] = useState<DeviceType[] | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  const [editing, setEditing] = useState<{ type?: DeviceType } | undefined>(undefined);
  const [deleting, setDeleting] = useState<DeviceType | undefined>(undefined);
  const [deleteError, setDeleteError] = useState<unknown>(undefined);

  const reload = useCallback(async () => {
    try {
      setTypes((await api<{ items: DeviceType[] }>("GET", "/device-types")).items);
      setError(undefined);
    } catch (caught) {
      setError(caught);
    }
  }, []);
  useEffect(() => {
    void reload();
  }, [reload]);

  const writableGroups = (groups ?? []).filter((g) => session.can("types:write", g.fullName));
  const done = async () => {
    setEditing(undefined);
    await reload();
  };
  const remove = async (type: DeviceType) => {
    setDeleteError(undefined);
    try {
      await api("DELETE", `/device-types/${type.id}`);
      setDeleting(undefined);
      await reload();
    } catch (caught) {
      setDeleteError(caught);
    }
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
        <div class="table-wrap">
          <table>
            <caption class="visually-hidden">Device types</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Group</th>
                <th scope="col">Keep-alive</th>
                <th scope="col">Firmware compatibility</th>
                <th scope="col">Devices</th>
                <th scope="col">Created</th>
                <th scope="col">
                  <span class="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
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
                      <>
                        <button type="button" aria-label={`Edit ${type.name}`} onClick={() => setEditing({ type })}>
                          Edit
                        </button>
                        <button
                          type="button"
                          class="danger"
                          aria-label={`Delete ${type.name}`}
                          onClick={() => {
                            setDeleteError(undefined);
                            setDeleting(type);
                          }}
                        >
                          Delete
                        </button>
                      </>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {editing && (
        <DeviceTypeDialog
          type={editing.type}
          groups={writableGroups}
          onClose={() => setEditing(undefined)}
          onDone={done}
        />
      )}
      {deleting && (
        <ConfirmDialog
          title={`Delete device type ${deleting.name}?`}
          confirmLabel="Delete device type"
          danger
          onClose={() => setDeleting(undefined)}
          onConfirm={() => remove(deleting)}
        >
          <p>
            The type <span class="mono">{deleting.name}</span> is deleted. A type that devices still use is refused:
            change their type first.
          </p>
          <ErrorNotice error={deleteError} />
        </ConfirmDialog>
      )}
    </section>
  );
}

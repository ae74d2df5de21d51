import type { Group, User } from "@fieldgate/shared";
import { useState } from "preact/hooks";
import { ConfirmDialog } from "../components/dialog";
import { TextField } from "../components/field";
import { FormDialog } from "../components/form-dialog";
import { ListTable } from "../components/list-table";
import { ErrorNotice, Loading, PageHeader } from "../components/page";
import { RoleAccess, RoleTable } from "../components/role-access";
import { type RoleBinding, RoleEditor } from "../components/role-editor";
import { RowActions } from "../components/row-actions";
import { api } from "../lib/api";
import { formatTime } from "../lib/format";
import { rootNameOf, useGroups } from "../lib/groups";
import { PASSWORD_MIN_LENGTH } from "../lib/limits";
import { useSession } from "../lib/session";
import { useConfirm } from "../lib/use-confirm";
import { useResource } from "../lib/use-resource";

/** Users of the organization with their roles on groups; admins of the root group manage them. */
export function UsersPage() {
  const session = useSession();
  const { groups } = useGroups();
  const [editing, setEditing] = useState<{ user?: User } | undefined>(undefined);
  const deleting = useConfirm<User>();

  // Users belong to the organization: reading them takes users:read on its root group, and
  // changing them users:write there.
  const root = session.whoami.grants[0] ? rootNameOf(session.whoami.grants[0].group.fullName) : undefined;
  const canRead = root !== undefined && session.can("users:read", root);
  const canWrite = root !== undefined && session.can("users:write", root);

  const {
    data: users,
    error,
    reload,
  } = useResource(
    async (signal) => (canRead ? (await api<{ items: User[] }>("GET", "/users", { signal })).items : undefined),
    [canRead],
  );
  const done = async () => {
    setEditing(undefined);
    await reload();
  };
  const remove = async (user: User) => {
    await api("DELETE", `/users/${user.id}`);
    void reload();
  };

  return (
    <section>
      <PageHeader title="Users">
        {canWrite && (
          <button type="button" class="primary" onClick={() => setEditing({})}>
            New user
          </button>
        )}
      </PageHeader>
      <RoleTable />
      <ErrorNotice error={error} />
      {!canRead ? (
        <p>Users belong to the whole organization: only roles held on its root group list them.</p>
      ) : !users ? (
        !error && <Loading />
      ) : (
        <ListTable caption="Users" columns={["Email", "Name", "Roles", "Last login"]} actions>
          {users.map((user) => (
            <tr key={user.id}>
              <th scope="row">{user.email}</th>
              <td>{user.name}</td>
              <td>
                {user.roles.length === 0
                  ? "none"
                  : user.roles.map((r) => (
                      <RoleAccess key={`${r.group.id}-${r.role}`} role={r.role} group={r.group.fullName} />
                    ))}
              </td>
              <td>{formatTime(user.lastLoginAt)}</td>
              <td class="row-actions">
                {canWrite && (
                  <RowActions
                    name={user.email}
                    actions={[
                      { label: "Edit", onClick: () => setEditing({ user }) },
                      { label: "Delete", danger: true, onClick: () => deleting.ask(user) },
                    ]}
                  />
                )}
              </td>
            </tr>
          ))}
        </ListTable>
      )}
      {editing && (
        <UserDialog user={editing.user} groups={groups ?? []} onClose={() => setEditing(undefined)} onDone={done} />
      )}
      {deleting.target && (
        <ConfirmDialog
          title={`Delete user ${deleting.target.email}?`}
          confirmLabel="Delete user"
          danger
          busy={deleting.busy}
          onClose={deleting.cancel}
          onConfirm={() => deleting.confirm(remove)}
        >
          <p>
            <span class="mono">{deleting.target.email}</span> can no longer log in; their sessions end now.
          </p>
          <ErrorNotice error={deleting.error} />
        </ConfirmDialog>
      )}
    </section>
  );
}

function UserDialog(props: { user?: User; groups: Group[]; onClose: () => void; onDone: () => void }) {
  const user = props.user;
  const [email, setEmail] = useState(user?.email ?? "");
  const [name, setName] = useState(user?.name ?? "");
  const [password, setPassword] = useState("");
  const [roles, setRoles] = useState<RoleBinding[]>(
    user
      ? user.roles.map((r) => ({ group: r.group.id, role: r.role }))
      : [{ group: props.groups[0]?.id, role: "viewer" }],
  );
  const submit = async () => {
    const bindings = roles.map((r) => ({ group: r.group, role: r.role }));
    if (user) {
      await api("PATCH", `/users/${user.id}`, { body: { name, roles: bindings, ...(password && { password }) } });
    } else {
      await api("POST", "/users", { body: { email, name, password, roles: bindings } });
    }
    props.onDone();
  };
  return (
    <FormDialog
      title={user ? `Edit user ${user.email}` : "New user"}
      submitLabel={user ? "Save" : "Create user"}
      wide
      onClose={props.onClose}
      onSubmit={submit}
    >
      {!user && (
        <TextField
          label="Email"
          name="email"
          type="email"
          required
          maxLength={254}
          autoComplete="off"
          value={email}
          onChange={setEmail}
        />
      )}
      <TextField label="Name" name="name" maxLength={128} value={name} onChange={setName} />
      <TextField
        label={user ? "New password" : "Password"}
        hint={
          <>
            At least {PASSWORD_MIN_LENGTH} characters.{user ? " Empty keeps it; a new one ends their sessions." : ""}
          </>
        }
        name="password"
        type="password"
        autoComplete="new-password"
        required={!user}
        minLength={PASSWORD_MIN_LENGTH}
        maxLength={1024}
        value={password}
        onChange={setPassword}
      />
      <RoleEditor groups={props.groups} value={roles} onChange={setRoles} />
    </FormDialog>
  );
}

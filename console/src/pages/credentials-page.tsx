import type { Credential, CredentialWithSecret, Group } from "@fieldgate/shared";
import { useState } from "preact/hooks";
import { ConfirmDialog } from "../components/dialog";
import { SelectField, TextField } from "../components/field";
import { FormDialog } from "../components/form-dialog";
import { GroupSelect } from "../components/group-select";
import { ListTable } from "../components/list-table";
import { ErrorNotice, Loading, PageHeader } from "../components/page";
import { RoleAccess, RoleTable } from "../components/role-access";
import { RowActions } from "../components/row-actions";
import { SecretPanel } from "../components/secret-panel";
import { api } from "../lib/api";
import { formatTime } from "../lib/format";
import { useGroups } from "../lib/groups";
import { ROLE_NAMES, writableAreas } from "../lib/roles";
import { useSession } from "../lib/session";
import { useConfirm } from "../lib/use-confirm";
import { useItems } from "../lib/use-resource";

/** API credentials per group, with a role: create and regenerate (the secret shown once), delete. */
export function CredentialsPage() {
  const session = useSession();
  const { groups } = useGroups();
  const { data: credentials, error, reload } = useItems<Credential>("/credentials");
  const [creating, setCreating] = useState(false);
  const [secret, setSecret] = useState<CredentialWithSecret | undefined>(undefined);
  const confirming = useConfirm<{ kind: "regenerate" | "delete"; credential: Credential }>();

  const writableGroups = (groups ?? []).filter((g) => session.can("credentials:write", g.fullName));
  const confirm = async ({ kind, credential }: { kind: "regenerate" | "delete"; credential: Credential }) => {
    if (kind === "regenerate") {
      setSecret(await api<CredentialWithSecret>("POST", `/credentials/${credential.id}/regenerate`));
    } else {
      await api("DELETE", `/credentials/${credential.id}`);
      if (secret?.credential.id === credential.id) setSecret(undefined);
    }
    void reload();
  };

  return (
    <section>
      <PageHeader title="API credentials">
        {writableGroups.length > 0 && (
          <button type="button" class="primary" onClick={() => setCreating(true)}>
            New API credential
          </button>
        )}
      </PageHeader>
      {secret && (
        <SecretPanel
          id={secret.credential.id}
          name={secret.credential.name}
          secret={secret.secret}
          onDismiss={() => setSecret(undefined)}
        />
      )}
      <ErrorNotice error={error} />
      {!credentials ? (
        !error && <Loading />
      ) : credentials.length === 0 ? (
        <p>No API credentials in your groups.</p>
      ) : (
        <ListTable caption="API credentials" columns={["Name", "Id", "Role", "Created", "Last used"]} actions>
          {credentials.map((credential) => (
            <tr key={credential.id}>
              <th scope="row">{credential.name}</th>
              <td class="mono">{credential.id}</td>
              <td>
                <RoleAccess role={credential.role} group={credential.group.fullName} />
              </td>
              <td>{formatTime(credential.createdAt)}</td>
              <td>{formatTime(credential.lastUsedAt)}</td>
              <td class="row-actions">
                {session.can("credentials:write", credential.group.fullName) && (
                  <RowActions
                    name={credential.name}
                    actions={[
                      { label: "Regenerate", onClick: () => confirming.ask({ kind: "regenerate", credential }) },
                      {
                        label: "Delete",
                        danger: true,
                        onClick: () => confirming.ask({ kind: "delete", credential }),
                      },
                    ]}
                  />
                )}
              </td>
            </tr>
          ))}
        </ListTable>
      )}
      <RoleTable />
      {creating && (
        <CreateCredentialDialog
          groups={writableGroups}
          onClose={() => setCreating(false)}
          onDone={async (created) => {
            setCreating(false);
            setSecret(created);
            await reload();
          }}
        />
      )}
      {confirming.target && (
        <ConfirmDialog
          title={
            confirming.target.kind === "regenerate"
              ? `Regenerate the secret of ${confirming.target.credential.name}?`
              : `Delete API credential ${confirming.target.credential.name}?`
          }
          confirmLabel={confirming.target.kind === "regenerate" ? "Regenerate secret" : "Delete credential"}
          danger
          busy={confirming.busy}
          onClose={confirming.cancel}
          onConfirm={() => confirming.confirm(confirm)}
        >
          <p>
            {confirming.target.kind === "regenerate"
              ? "A new secret is made and shown once; the current secret stops working at once, so everything using it must get the new one."
              : "The credential and its secret stop working at once."}
          </p>
          <ErrorNotice error={confirming.error} />
        </ConfirmDialog>
      )}
    </section>
  );
}

function CreateCredentialDialog(props: {
  groups: Group[];
  onClose: () => void;
  onDone: (created: CredentialWithSecret) => void;
}) {
  const [name, setName] = useState("");
  const [group, setGroup] = useState<number | undefined>(props.groups[0]?.id);
  const [role, setRole] = useState("viewer");
  return (
    <FormDialog
      title="New API credential"
      submitLabel="Create credential"
      onClose={props.onClose}
      onSubmit={async () => {
        props.onDone(await api<CredentialWithSecret>("POST", "/credentials", { body: { name, group, role } }));
      }}
    >
      <TextField
        label="Name"
        hint={<>What uses it, like "ERP sync".</>}
        name="name"
        required
        maxLength={128}
        value={name}
        onChange={setName}
      />
      <GroupSelect
        label="Group"
        groups={props.groups}
        value={group}
        onChange={setGroup}
        hint="It reaches this group and the groups below it."
      />
      <SelectField
        label="Role"
        name="role"
        value={role}
        options={ROLE_NAMES.map((r) => ({ value: r, label: `${r} (changes: ${writableAreas(r)})` }))}
        onChange={setRole}
      />
    </FormDialog>
  );
}

import type { Group } from "@fieldgate/shared";
import { accessOf, ROLE_NAMES } from "../lib/roles";
import { SelectField } from "./field";
import { GroupSelect } from "./group-select";

export interface RoleBinding {
  group: number | undefined;
  role: string;
}

/** Several group + role pairs: add a line, change it, remove it. */
export function RoleEditor(props: {
  groups: readonly Group[];
  value: RoleBinding[];
  onChange: (value: RoleBinding[]) => void;
}) {
  const set = (index: number, change: Partial<RoleBinding>) =>
    props.onChange(props.value.map((binding, i) => (i === index ? { ...binding, ...change } : binding)));
  return (
    <fieldset class="role-editor">
      <legend>Roles</legend>
      {props.value.length === 0 && <p class="hint">No role: the user can log in but sees nothing.</p>}
      {props.value.map((binding, index) => (
        <div class="role-line" key={index}>
          <GroupSelect
            label="Group"
            name={`role-group-${index}`}
            groups={props.groups}
            value={binding.group}
            onChange={(group) => set(index, { group })}
          />
          <SelectField
            label="Role"
            name={`role-${index}`}
            value={binding.role}
            options={ROLE_NAMES.map((role) => ({
              value: role,
              label: `${role} (devices ${accessOf(role, "devices")})`,
            }))}
            onChange={(role) => set(index, { role })}
          />
          <button
            type="button"
            aria-label={`Remove role ${index + 1}`}
            onClick={() => props.onChange(props.value.filter((_, i) => i !== index))}
          >
            Remove
          </button>
        </div>
      ))}
      <button
        type="button"
        onClick={() => props.onChange([...props.value, { group: props.groups[0]?.id, role: "viewer" }])}
      >
        Add role
      </button>
    </fieldset>
  );
}

import type { Group } from "@fieldgate/shared";
import { timeZones } from "../lib/groups";
import { SelectField } from "./field";

/** A labelled choice of group by full name; `value` is the group id. */
export function GroupSelect(props: {
  label: string;
  groups: readonly Group[];
  value: number | undefined;
  onChange: (id: number) => void;
  name?: string;
  hint?: string;
}) {
  return (
    <SelectField
      label={props.label}
      hint={props.hint}
      name={props.name ?? "group"}
      required
      value={props.value === undefined ? "" : String(props.value)}
      options={[
        ...(props.value === undefined ? [{ value: "", label: "Choose a group", disabled: true }] : []),
        ...props.groups.map((group) => ({ value: String(group.id), label: group.fullName })),
      ]}
      onChange={(value) => props.onChange(Number(value))}
    />
  );
}

/** An IANA time zone from the browser's list; `inheritLabel` offers "" (keep the parent's). */
export function TimezoneSelect(props: { value: string; onChange: (zone: string) => void; inheritLabel?: string }) {
  const zones = timeZones();
  if (props.value && !zones.includes(props.value)) zones.unshift(props.value);
  return (
    <SelectField
      label="Time zone"
      name="timezone"
      value={props.value}
      options={[
        ...(props.inheritLabel !== undefined ? [{ value: "", label: props.inheritLabel }] : []),
        ...zones.map((zone) => ({ value: zone, label: zone })),
      ]}
      onChange={props.onChange}
    />
  );
}

import type { Group } from "@fieldgate/shared";
import { timeZones } from "../lib/groups";
import { Field } from "./field";

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
    <Field label={props.label} hint={props.hint}>
      {(field) => (
        <select
          {...field}
          name={props.name ?? "group"}
          required
          value={props.value === undefined ? "" : String(props.value)}
          onChange={(e) => props.onChange(Number(e.currentTarget.value))}
        >
          {props.value === undefined && (
            <option value="" disabled>
              Choose a group
            </option>
          )}
          {props.groups.map((group) => (
            <option key={group.id} value={String(group.id)}>
              {group.fullName}
            </option>
          ))}
        </select>
      )}
    </Field>
  );
}

/** An IANA time zone from the browser's list; `inheritLabel` offers "" (keep the parent's). */
export function TimezoneSelect(props: { value: string; onChange: (zone: string) => void; inheritLabel?: string }) {
  const zones = timeZones();
  if (props.value && !zones.includes(props.value)) zones.unshift(props.value);
  return (
    <Field label="Time zone">
      {(field) => (
        <select {...field} name="timezone" value={props.value} onChange={(e) => props.onChange(e.currentTarget.value)}>
          {props.inheritLabel !== undefined && <option value="">{props.inheritLabel}</option>}
          {zones.map((zone) => (
            <option key={zone} value={zone}>
              {zone}
            </option>
          ))}
        </select>
      )}
    </Field>
  );
}

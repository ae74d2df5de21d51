import type { DeviceType, Group } from "@fieldgate/shared";
import { useState } from "preact/hooks";
import { api } from "../lib/api";
import { DescriptionField, TextAreaField, TextField } from "./field";
import { FormDialog } from "./form-dialog";
import { GroupSelect } from "./group-select";

/** JSON typed into a textarea: "" is none; anything else must parse to the expected shape. */
function parseJson(text: string, what: string, shape: "object" | "array"): unknown {
  if (!text.trim()) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error(`${what} is not valid JSON`);
  }
  const ok = shape === "array" ? Array.isArray(value) : typeof value === "object" && value && !Array.isArray(value);
  if (!ok) throw new Error(`${what} must be a JSON ${shape}`);
  return value;
}

const show = (value: unknown) => (value === null || value === undefined ? "" : JSON.stringify(value, null, 2));

/**
 * Create or edit a device type: name, description, keep-alive, firmware compatibility, and the
 * default links and health thresholds as JSON. The group is chosen on create only.
 */
export function DeviceTypeDialog(props: {
  type?: DeviceType;
  groups: Group[];
  onClose: () => void;
  onDone: () => void;
}) {
  const type = props.type;
  const [group, setGroup] = useState<number | undefined>(type?.group.id ?? props.groups[0]?.id);
  const [name, setName] = useState(type?.name ?? "");
  const [description, setDescription] = useState(type?.description ?? "");
  const [keepalive, setKeepalive] = useState(type?.keepaliveMinutes ? String(type.keepaliveMinutes) : "");
  const [firmwareCompat, setFirmwareCompat] = useState(type?.firmwareCompat ?? "");
  const [thresholds, setThresholds] = useState(show(type?.healthThresholds));
  const [links, setLinks] = useState(show(type?.defaultLinks));

  const submit = async () => {
    const healthThresholds = parseJson(thresholds, "Health thresholds", "object");
    const defaultLinks = parseJson(links, "Default links", "array");
    const keepaliveMinutes = keepalive ? Number(keepalive) : undefined;
    if (type) {
      await api("PATCH", `/device-types/${type.id}`, {
        body: {
          name,
          description,
          keepaliveMinutes: keepaliveMinutes ?? null,
          ...(firmwareCompat && { firmwareCompat }),
          healthThresholds: healthThresholds ?? null,
          defaultLinks: defaultLinks ?? null,
        },
      });
    } else {
      await api("POST", "/device-types", {
        body: {
          name,
          group,
          description,
          ...(keepaliveMinutes !== undefined && { keepaliveMinutes }),
          ...(firmwareCompat && { firmwareCompat }),
          ...(healthThresholds !== undefined && { healthThresholds }),
          ...(defaultLinks !== undefined && { defaultLinks }),
        },
      });
    }
    props.onDone();
  };

  return (
    <FormDialog
      title={type ? `Edit device type ${type.name}` : "New device type"}
      submitLabel={type ? "Save" : "Create device type"}
      wide
      onClose={props.onClose}
      onSubmit={submit}
    >
      {type ? (
        <p>
          In group <span class="mono">{type.group.fullName}</span>, used by {type.devices}{" "}
          {type.devices === 1 ? "device" : "devices"}.
        </p>
      ) : (
        <GroupSelect
          label="Group"
          groups={props.groups}
          value={group}
          onChange={setGroup}
          hint="Devices in this group and the groups below it can have this type."
        />
      )}
      <TextField
        label="Name"
        hint="Letters, digits, _ . : -"
        name="name"
        required
        maxLength={128}
        pattern="[A-Za-z0-9_.:\-]+"
        value={name}
        onChange={setName}
      />
      <DescriptionField value={description} onChange={setDescription} />
      <TextField
        label="Keep-alive (minutes)"
        hint="Minutes without a message before the device's KEEPALIVE_MISSED event; empty: none."
        name="keepaliveMinutes"
        type="number"
        min={1}
        max={525600}
        value={keepalive}
        onChange={setKeepalive}
      />
      <TextField
        label="Firmware compatibility"
        hint="Firmware images declaring this compatibility string can be installed on these devices."
        name="firmwareCompat"
        maxLength={128}
        placeholder={type ? undefined : "the type's name"}
        value={firmwareCompat}
        onChange={setFirmwareCompat}
      />
      <TextAreaField
        label="Health thresholds (JSON object of numbers)"
        name="healthThresholds"
        class="mono"
        rows={3}
        placeholder='{"cpu_temp_c": 85}'
        value={thresholds}
        onChange={setThresholds}
      />
      <TextAreaField
        label="Default links (JSON array of objects)"
        name="defaultLinks"
        class="mono"
        rows={3}
        placeholder='[{"title": "Manual", "url": "https://…"}]'
        value={links}
        onChange={setLinks}
      />
    </FormDialog>
  );
}

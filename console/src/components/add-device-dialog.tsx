import type { DeviceType, DeviceWithToken, Group } from "@fieldgate/shared";
import { useRef, useState } from "preact/hooks";
import { api } from "../lib/api";
import { useSession } from "../lib/session";
import { useAction } from "../lib/use-confirm";
import { Dialog } from "./dialog";
import { TagChip } from "./field";
import { FormActions } from "./form-dialog";
import { ErrorNotice } from "./page";
import { TokenDialog } from "./token-panel";

/** As the API checks them (shared/src/schemas.ts CreateDeviceBody). */
const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const TAG = /^[A-Za-z0-9_.:-]+$/;
const MAX_TAGS = 32;

/** A type may be used in its own group and every group below it (as the API checks). */
function typeFits(type: DeviceType, group: Group | undefined): boolean {
  if (!group) return false;
  return group.fullName === type.group.fullName || group.fullName.startsWith(`${type.group.fullName}/`);
}

/**
 * Add device: the form of POST /api/v1/devices, then the one-time enrollment token with its
 * copy button and the enrollment window's countdown.
 */
export function AddDeviceDialog(props: {
  groups: Group[];
  types: DeviceType[];
  onAdded: (answer: DeviceWithToken) => void;
  onClose: () => void;
}) {
  const session = useSession();
  const writable = props.groups.filter((g) => session.can("devices:write", g.fullName));
  const root = writable.find((g) => g.parentId === null) ?? writable[0];
  const [uuid, setUuid] = useState("");
  const [name, setName] = useState("");
  const [location, setLocation] = useState("");
  const [comment, setComment] = useState("");
  const [tags, setTags] = useState<string[]>([]);
  const [groupId, setGroupId] = useState(root ? String(root.id) : "");
  const [typeId, setTypeId] = useState("");
  const [factoryKey, setFactoryKey] = useState("");
  const [uuidProblem, setUuidProblem] = useState("");
  const { busy, error, run } = useAction();
  const [added, setAdded] = useState<DeviceWithToken | undefined>(undefined);

  const group = writable.find((g) => String(g.id) === groupId);
  const fitting = props.types.filter((t) => typeFits(t, group));

  const checkUuid = (value: string) => {
    const trimmed = value.trim();
    const problem = !trimmed
      ? "A uuid is required."
      : UUID.test(trimmed)
        ? ""
        : "Not a uuid: 32 hex digits in the form 8-4-4-4-12, like 123e4567-e89b-42d3-a456-426614174000.";
    setUuidProblem(problem);
    return problem === "";
  };

  const submit = async (event: Event) => {
    event.preventDefault();
    if (!checkUuid(uuid)) return;
    await run(async () => {
      const answer = await api<DeviceWithToken>("POST", "/devices", {
        body: {
          uuid: uuid.trim(),
          ...(name.trim() && { name: name.trim() }),
          ...(location.trim() && { location: location.trim() }),
          ...(comment.trim() && { comment: comment.trim() }),
          ...(tags.length > 0 && { tags }),
          ...(group && { group: group.id }),
          ...(typeId && { type: Number(typeId) }),
          ...(factoryKey.trim() && { factoryPublicKey: factoryKey.trim() }),
        },
      });
      setAdded(answer);
      props.onAdded(answer);
    });
  };

  if (added) {
    return (
      <TokenDialog title="Device added" result={added} onClose={props.onClose}>
        <p>
          <a href={`/devices/${added.device.uuid}`}>{added.device.name || added.device.uuid}</a> is added to{" "}
          {added.device.group.fullName}.
        </p>
      </TokenDialog>
    );
  }

  return (
    <Dialog title="Add device" onClose={props.onClose}>
      <form class="form add-device-form" onSubmit={submit} noValidate>
        <label>
          UUID (required)
          <input
            value={uuid}
            required
            autocomplete="off"
            spellcheck={false}
            maxLength={36}
            aria-invalid={uuidProblem ? true : undefined}
            aria-describedby={uuidProblem ? "add-device-uuid-problem" : undefined}
            onInput={(e) => {
              setUuid(e.currentTarget.value);
              if (uuidProblem) checkUuid(e.currentTarget.value);
            }}
            onBlur={(e) => e.currentTarget.value && checkUuid(e.currentTarget.value)}
          />
          {uuidProblem && (
            <span class="field-problem" id="add-device-uuid-problem">
              {uuidProblem}
            </span>
          )}
        </label>
        <label>
          Name
          <input value={name} maxLength={128} onInput={(e) => setName(e.currentTarget.value)} />
        </label>
        <label>
          Location
          <input value={location} maxLength={256} onInput={(e) => setLocation(e.currentTarget.value)} />
        </label>
        <label>
          Comment
          <textarea value={comment} maxLength={1024} rows={2} onInput={(e) => setComment(e.currentTarget.value)} />
        </label>
        <TagInput tags={tags} onChange={setTags} />
        <div class="field">
          <label for="add-device-group">Group</label>
          <select
            id="add-device-group"
            value={groupId}
            onChange={(e) => {
              const next = writable.find((g) => String(g.id) === e.currentTarget.value);
              setGroupId(e.currentTarget.value);
              const type = props.types.find((t) => String(t.id) === typeId);
              if (type && !typeFits(type, next)) setTypeId("");
            }}
          >
            {writable.map((g) => (
              <option key={g.id} value={String(g.id)}>
                {g.fullName}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="add-device-type">Type</label>
          <select
            id="add-device-type"
            aria-describedby="add-device-type-hint"
            value={typeId}
            onChange={(e) => setTypeId(e.currentTarget.value)}
          >
            <option value="">No type</option>
            {fitting.map((t) => (
              <option key={t.id} value={String(t.id)}>
                {t.name}
              </option>
            ))}
          </select>
          <span class="hint" id="add-device-type-hint">
            Types defined for this group or a group above it.
          </span>
        </div>
        <div class="field">
          <label for="add-device-key">Factory public key (optional)</label>
          <textarea
            id="add-device-key"
            aria-describedby="add-device-key-hint"
            class="mono"
            rows={4}
            maxLength={4096}
            placeholder="-----BEGIN PUBLIC KEY-----"
            value={factoryKey}
            onInput={(e) => setFactoryKey(e.currentTarget.value)}
          />
          <span class="hint" id="add-device-key-hint">
            SPKI PEM (P-256 or Ed25519): the device may then enroll with a factory proof.
          </span>
        </div>
        <ErrorNotice error={error} />
        <FormActions submitLabel="Add device" busyLabel="Adding…" busy={busy} onCancel={props.onClose} />
      </form>
    </Dialog>
  );
}

/** Tags as chips: Enter or a comma confirms one, × (or Backspace in the empty field) removes one. */
function TagInput(props: { tags: string[]; onChange: (tags: string[]) => void }) {
  const [text, setText] = useState("");
  const [problem, setProblem] = useState("");
  const input = useRef<HTMLInputElement>(null);
  const add = (raw: string) => {
    const parts = raw
      .split(",")
      .map((t) => t.trim())
      .filter(Boolean);
    let next = props.tags;
    for (const tag of parts) {
      if (!TAG.test(tag) || tag.length > 64) {
        setProblem(`“${tag}” is not a tag: up to 64 letters, digits and _ . : -`);
        return false;
      }
      if (next.length >= MAX_TAGS) {
        setProblem(`At most ${MAX_TAGS} tags.`);
        return false;
      }
      if (!next.includes(tag)) next = [...next, tag];
    }
    setProblem("");
    props.onChange(next);
    setText("");
    return true;
  };
  const remove = (tag: string) => {
    props.onChange(props.tags.filter((t) => t !== tag));
    input.current?.focus();
  };
  return (
    <div class="tag-input">
      <label for="add-device-tag">Tags</label>
      {props.tags.length > 0 && (
        <ul class="chips" aria-label="Tags added">
          {props.tags.map((tag) => (
            <TagChip key={tag} tag={tag} onRemove={() => remove(tag)} />
          ))}
        </ul>
      )}
      <input
        id="add-device-tag"
        ref={input}
        value={text}
        aria-describedby="add-device-tag-hint"
        onInput={(e) => {
          const value = e.currentTarget.value;
          if (!value.includes(",") || !add(value)) setText(value);
        }}
        onKeyDown={(e) => {
          if (e.key === "Enter") {
            e.preventDefault();
            if (text.trim()) add(text);
          } else if (e.key === "Backspace" && !text && props.tags.length > 0) {
            props.onChange(props.tags.slice(0, -1));
          }
        }}
        onBlur={() => text.trim() && add(text)}
      />
      <span class="hint" id="add-device-tag-hint">
        Confirm each tag with Enter or a comma.
      </span>
      {problem && (
        <span class="field-problem" role="alert">
          {problem}
        </span>
      )}
    </div>
  );
}

import type { Device } from "@fieldgate/shared";
import { useState } from "preact/hooks";
import { ApiError, api } from "../lib/api";
import { Dialog } from "./dialog";
import { ErrorNotice } from "./page";

/**
 * Tags as chips: type one and press Enter (or Add); each chip has its own remove button. The
 * cloud checks the tags on save and its refusal is shown as it says.
 */
export function TagEditor(props: { tags: string[]; onChange: (tags: string[]) => void; invalid?: number }) {
  const [draft, setDraft] = useState("");
  const add = () => {
    const tag = draft.trim();
    if (tag && !props.tags.includes(tag)) props.onChange([...props.tags, tag]);
    setDraft("");
  };
  return (
    <fieldset class="tag-editor">
      <legend>Tags</legend>
      <ul class="chips" aria-label="Tags">
        {props.tags.length === 0 && <li class="hint">No tags</li>}
        {props.tags.map((tag, i) => (
          <li class={i === props.invalid ? "chip invalid" : "chip"} key={tag}>
            <span>{tag}</span>
            {i === props.invalid && <span class="visually-hidden"> (refused)</span>}
            <button
              type="button"
              class="chip-remove"
              aria-label={`Remove tag ${tag}`}
              onClick={() => props.onChange(props.tags.filter((t) => t !== tag))}
            >
              ×
            </button>
          </li>
        ))}
      </ul>
      <div class="tag-add">
        <label>
          New tag
          <input
            value={draft}
            onInput={(event) => setDraft(event.currentTarget.value)}
            onKeyDown={(event) => {
              if (event.key === "Enter") {
                event.preventDefault();
                add();
              }
            }}
          />
        </label>
        <button type="button" onClick={add}>
          Add tag
        </button>
      </div>
    </fieldset>
  );
}

/** The index of the tag the API refused (`field` = `tags[1]`), to mark its chip. */
function refusedTag(error: unknown): number | undefined {
  const match = error instanceof ApiError ? /^tags\[(\d+)\]$/.exec(error.field ?? "") : null;
  return match ? Number(match[1]) : undefined;
}

/** The editable fields: name, location, comment and tags; the uuid never changes. */
export function DeviceEditDialog(props: { device: Device; onClose: () => void; onSaved: (device: Device) => void }) {
  const { device } = props;
  const [name, setName] = useState(device.name);
  const [location, setLocation] = useState(device.location);
  const [comment, setComment] = useState(device.comment);
  const [tags, setTags] = useState(device.tags);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  const save = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const saved = await api<Device>("PATCH", `/devices/${device.uuid}`, { body: { name, location, comment, tags } });
      props.onSaved(saved);
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog title="Edit device" onClose={props.onClose}>
      <form class="form" onSubmit={save}>
        <p class="hint">
          uuid <code>{device.uuid}</code> (cannot change)
        </p>
        <label>
          Name
          <input value={name} onInput={(event) => setName(event.currentTarget.value)} />
        </label>
        <label>
          Location
          <input value={location} onInput={(event) => setLocation(event.currentTarget.value)} />
        </label>
        <label>
          Comment
          <textarea rows={3} value={comment} onInput={(event) => setComment(event.currentTarget.value)} />
        </label>
        <TagEditor tags={tags} onChange={setTags} invalid={refusedTag(error)} />
        <ErrorNotice error={error} />
        <div class="actions">
          <button type="button" onClick={props.onClose}>
            Cancel
          </button>
          <button type="submit" class="primary" disabled={busy}>
            {busy ? "Saving…" : "Save"}
          </button>
        </div>
      </form>
    </Dialog>
  );
}

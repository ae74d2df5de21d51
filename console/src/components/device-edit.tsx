import type { Device } from "@fieldgate/shared";
import { useState } from "preact/hooks";
import { ApiError, api } from "../lib/api";
import { useAction } from "../lib/use-confirm";
import { Dialog } from "./dialog";
import { TagChip } from "./field";
import { FormActions } from "./form-dialog";
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
          <TagChip
            key={tag}
            tag={tag}
            invalid={i === props.invalid}
            onRemove={() => props.onChange(props.tags.filter((t) => t !== tag))}
          />
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
  const { busy, error, run } = useAction();
  const save = (event: Event) => {
    event.preventDefault();
    void run(async () => {
      props.onSaved(await api<Device>("PATCH", `/devices/${device.uuid}`, { body: { name, location, comment, tags } }));
    });
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
        <FormActions submitLabel="Save" busyLabel="Saving…" busy={busy} onCancel={props.onClose} />
      </form>
    </Dialog>
  );
}

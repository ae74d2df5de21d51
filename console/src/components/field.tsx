import type {
  ComponentChildren,
  InputHTMLAttributes,
  PartialInputHTMLAttributes,
  TextareaHTMLAttributes,
} from "preact";
import { useId } from "preact/hooks";

export interface FieldAttributes {
  id: string;
  "aria-describedby"?: string;
}

/**
 * A label, its control and a hint: the label names the control by `for` (so its name is the
 * label alone, not the selected option or the hint), and the hint describes it.
 */
export function Field(props: {
  label: ComponentChildren;
  hint?: ComponentChildren;
  class?: string;
  children: (attributes: FieldAttributes) => ComponentChildren;
}) {
  const id = useId();
  const hintId = `${id}-hint`;
  return (
    <div class={props.class ? `field ${props.class}` : "field"}>
      <label for={id}>{props.label}</label>
      {props.children({ id, ...(props.hint ? { "aria-describedby": hintId } : {}) })}
      {props.hint && (
        <span class="hint" id={hintId}>
          {props.hint}
        </span>
      )}
    </div>
  );
}

/** One tag of a tag list, with its own remove button ("Remove tag x"). */
export function TagChip(props: { tag: string; invalid?: boolean; onRemove: () => void }) {
  return (
    <li class={props.invalid ? "chip invalid" : "chip"}>
      <span>{props.tag}</span>
      {props.invalid && <span class="visually-hidden"> (refused)</span>}
      <button type="button" class="chip-remove" aria-label={`Remove tag ${props.tag}`} onClick={props.onRemove}>
        ×
      </button>
    </li>
  );
}

type InputAttributes = Pick<
  PartialInputHTMLAttributes<HTMLInputElement>,
  "name" | "required" | "maxLength" | "minLength" | "pattern" | "min" | "max" | "placeholder" | "autoComplete"
>;

/** A Field holding one text input (`type` for email, password, number); `onChange` gets the text. */
export function TextField(
  props: {
    label: ComponentChildren;
    hint?: ComponentChildren;
    value: string;
    onChange: (value: string) => void;
  } & InputAttributes & { type?: "text" | "email" | "password" | "number" },
) {
  const { label, hint, value, onChange, type, ...rest } = props;
  // Preact types <input> per `type`; these few share their attributes.
  const attributes = { ...rest, type } as InputHTMLAttributes<HTMLInputElement>;
  return (
    <Field label={label} hint={hint}>
      {(field) => <input {...field} {...attributes} value={value} onInput={(e) => onChange(e.currentTarget.value)} />}
    </Field>
  );
}

type TextAreaAttributes = Pick<
  TextareaHTMLAttributes<HTMLTextAreaElement>,
  "name" | "class" | "rows" | "required" | "maxLength" | "placeholder"
>;

/** A Field holding one textarea; `onChange` gets the text. */
export function TextAreaField(
  props: {
    label: ComponentChildren;
    hint?: ComponentChildren;
    value: string;
    onChange: (value: string) => void;
  } & TextAreaAttributes,
) {
  const { label, hint, value, onChange, ...attributes } = props;
  return (
    <Field label={label} hint={hint}>
      {(field) => (
        <textarea {...field} {...attributes} value={value} onInput={(e) => onChange(e.currentTarget.value)} />
      )}
    </Field>
  );
}

/** The description every named thing has (up to 1024 characters). */
export function DescriptionField(props: { value: string; onChange: (value: string) => void }) {
  return <TextAreaField label="Description" name="description" maxLength={1024} {...props} />;
}

export interface SelectOption {
  value: string;
  label: ComponentChildren;
  disabled?: boolean;
}

/** A Field holding one select; `onChange` gets the chosen option's value. */
export function SelectField(props: {
  label: ComponentChildren;
  hint?: ComponentChildren;
  name?: string;
  required?: boolean;
  value: string;
  options: readonly SelectOption[];
  onChange: (value: string) => void;
}) {
  return (
    <Field label={props.label} hint={props.hint}>
      {(field) => (
        <select
          {...field}
          name={props.name}
          required={props.required}
          value={props.value}
          onChange={(e) => props.onChange(e.currentTarget.value)}
        >
          {props.options.map((option) => (
            <option key={option.value} value={option.value} disabled={option.disabled}>
              {option.label}
            </option>
          ))}
        </select>
      )}
    </Field>
  );
}

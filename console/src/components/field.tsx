import type { ComponentChildren } from "preact";
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

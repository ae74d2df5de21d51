import type { ComponentChildren } from "preact";
import { useAction } from "../lib/use-confirm";
import { Dialog } from "./dialog";
import { ErrorNotice } from "./page";

/**
 * A dialog holding one form: Save runs `onSubmit`; while it runs the button is disabled, and when
 * the cloud refuses, its message shows beside the form, which keeps what was typed.
 */
export function FormDialog(props: {
  title: string;
  submitLabel: string;
  danger?: boolean;
  wide?: boolean;
  onSubmit: () => Promise<void>;
  onClose: () => void;
  children: ComponentChildren;
}) {
  const { busy, error, run } = useAction();
  const submit = (event: Event) => {
    event.preventDefault();
    void run(props.onSubmit);
  };
  return (
    <Dialog title={props.title} onClose={props.onClose} wide={props.wide}>
      <form class="form" onSubmit={submit}>
        {props.children}
        <ErrorNotice error={error} />
        <FormActions submitLabel={props.submitLabel} danger={props.danger} busy={busy} onCancel={props.onClose} />
      </form>
    </Dialog>
  );
}

/** A form's Cancel and submit buttons; the submit button is disabled (and says `busyLabel`) while busy. */
export function FormActions(props: {
  submitLabel: string;
  busyLabel?: string;
  danger?: boolean;
  busy: boolean;
  onCancel: () => void;
}) {
  return (
    <div class="actions">
      <button type="button" onClick={props.onCancel}>
        Cancel
      </button>
      <button type="submit" class={props.danger ? "danger" : "primary"} disabled={props.busy}>
        {props.busy && props.busyLabel ? props.busyLabel : props.submitLabel}
      </button>
    </div>
  );
}

export interface RowAction {
  /** The button's text; its accessible name is this and the row's name ("Delete sensor-1"). */
  label: string;
  onClick: () => void;
  danger?: boolean;
}

/** A table row's buttons, each named after the row it acts on. */
export function RowActions(props: { name: string; actions: RowAction[] }) {
  return (
    <>
      {props.actions.map((action) => (
        <button
          key={action.label}
          type="button"
          class={action.danger ? "danger" : undefined}
          aria-label={`${action.label} ${props.name}`}
          onClick={action.onClick}
        >
          {action.label}
        </button>
      ))}
    </>
  );
}

import type { ComponentChildren } from "preact";

/**
 * A list page's table: named by a caption screen readers hear, a header cell per column, and
 * with `actions` a last column (its header read as "Actions") for each row's buttons.
 */
export function ListTable(props: {
  caption: string;
  columns: string[];
  actions?: boolean;
  children: ComponentChildren;
}) {
  return (
    <div class="table-wrap">
      <table>
        <caption class="visually-hidden">{props.caption}</caption>
        <TableHead columns={props.columns} actions={props.actions} />
        <tbody>{props.children}</tbody>
      </table>
    </div>
  );
}

/** A table's header row: one column header per name; with `actions`, a last one read as "Actions". */
export function TableHead(props: { columns: readonly string[]; actions?: boolean }) {
  return (
    <thead>
      <tr>
        {props.columns.map((column) => (
          <th scope="col" key={column}>
            {column}
          </th>
        ))}
        {props.actions && (
          <th scope="col">
            <span class="visually-hidden">Actions</span>
          </th>
        )}
      </tr>
    </thead>
  );
}

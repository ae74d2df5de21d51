import type { Group } from "@fieldgate/shared";
import { useEffect, useRef, useState } from "preact/hooks";

/**
 * The group tree as an ARIA tree view: Tab reaches the selected group, the arrows move (Up, Down),
 * expand (Right: open, then first child) and collapse (Left: close, then parent), Home and End go
 * to the first and last visible group, and selection follows focus. Each group shows its devices
 * and sub-groups.
 */
export function GroupTree(props: {
  groups: readonly Group[];
  selectedId: number | undefined;
  onSelect: (id: number) => void;
  label: string;
}) {
  const { groups } = props;
  const ids = new Set(groups.map((g) => g.id));
  const children = new Map<number | null, Group[]>();
  for (const group of groups) {
    // A group whose parent is out of the session's scope is a root of what it sees.
    const parent = group.parentId !== null && ids.has(group.parentId) ? group.parentId : null;
    children.set(parent, [...(children.get(parent) ?? []), group]);
  }
  const [expanded, setExpanded] = useState<Set<number>>(() => new Set(groups.map((g) => g.id)));
  const known = useRef(new Set(groups.map((g) => g.id)));
  useEffect(() => {
    // Groups that appear later (just created) start expanded, like the ones shown at first.
    const fresh = groups.filter((g) => !known.current.has(g.id));
    if (fresh.length === 0) return;
    for (const g of fresh) known.current.add(g.id);
    setExpanded((current) => new Set([...current, ...fresh.map((g) => g.id)]));
  }, [groups]);

  const visible: Group[] = [];
  const walk = (parent: number | null) => {
    for (const group of children.get(parent) ?? []) {
      visible.push(group);
      if (expanded.has(group.id)) walk(group.id);
    }
  };
  walk(null);
  const parentOf = (group: Group) => (group.parentId !== null && ids.has(group.parentId) ? group.parentId : null);
  const selected = visible.find((g) => g.id === props.selectedId) ?? visible[0];

  const treeRef = useRef<HTMLDivElement>(null);
  const focus = (id: number) => {
    props.onSelect(id);
    requestAnimationFrame(() => treeRef.current?.querySelector<HTMLElement>(`[data-group-id="${id}"]`)?.focus());
  };
  const toggle = (id: number, open: boolean) =>
    setExpanded((current) => {
      const next = new Set(current);
      if (open) next.add(id);
      else next.delete(id);
      return next;
    });

  const onKeyDown = (event: KeyboardEvent) => {
    if (!selected) return;
    const index = visible.indexOf(selected);
    const hasChildren = (children.get(selected.id) ?? []).length > 0;
    const move = (target: Group | undefined) => {
      event.preventDefault();
      if (target) focus(target.id);
    };
    switch (event.key) {
      case "ArrowDown":
        return move(visible[index + 1]);
      case "ArrowUp":
        return move(visible[index - 1]);
      case "Home":
        return move(visible[0]);
      case "End":
        return move(visible[visible.length - 1]);
      case "ArrowRight":
        event.preventDefault();
        if (hasChildren && !expanded.has(selected.id)) toggle(selected.id, true);
        else if (hasChildren) move(children.get(selected.id)?.[0]);
        return;
      case "ArrowLeft": {
        event.preventDefault();
        const parent = parentOf(selected);
        if (hasChildren && expanded.has(selected.id)) toggle(selected.id, false);
        else if (parent !== null) move(groups.find((g) => g.id === parent));
        return;
      }
      case "Enter":
      case " ":
        event.preventDefault();
        if (hasChildren) toggle(selected.id, !expanded.has(selected.id));
        return;
    }
  };

  // A flat tree (treeitems carry aria-level, aria-setsize and aria-posinset), so each item's name
  // is its own row: its name and counts, not the names of the groups below it.
  const levels = new Map<number, number>();
  for (const group of visible) {
    const parent = parentOf(group);
    levels.set(group.id, parent === null ? 1 : (levels.get(parent) ?? 0) + 1);
  }
  const items = visible.map((group) => {
    const kids = children.get(group.id) ?? [];
    const siblings = children.get(parentOf(group)) ?? [];
    const open = expanded.has(group.id);
    const isSelected = selected?.id === group.id;
    const level = levels.get(group.id) ?? 1;
    return (
      <div
        key={group.id}
        role="treeitem"
        aria-level={level}
        aria-setsize={siblings.length}
        aria-posinset={siblings.indexOf(group) + 1}
        aria-selected={isSelected}
        aria-expanded={kids.length > 0 ? open : undefined}
        tabIndex={isSelected ? 0 : -1}
        data-group-id={group.id}
        class={isSelected ? "tree-item selected" : "tree-item"}
        style={{ paddingLeft: `${(level - 1) * 20}px` }}
      >
        <div class="tree-row">
          <span class="tree-twisty" aria-hidden="true">
            {kids.length === 0 ? "" : open ? "▾" : "▸"}
          </span>
          <span class="tree-name">{group.name}</span>
          <span class="tree-counts">
            {group.devices} {group.devices === 1 ? "device" : "devices"} · {group.subgroups}{" "}
            {group.subgroups === 1 ? "sub-group" : "sub-groups"}
          </span>
        </div>
      </div>
    );
  });

  // A click selects the group it lands in; on the ▸/▾ it also opens or closes it.
  const onClick = (event: MouseEvent) => {
    const target = event.target as HTMLElement;
    const item = target.closest<HTMLElement>("[data-group-id]");
    if (!item) return;
    const id = Number(item.dataset.groupId);
    if (target.closest(".tree-twisty") && (children.get(id) ?? []).length > 0) toggle(id, !expanded.has(id));
    focus(id);
  };

  return (
    <div ref={treeRef} role="tree" aria-label={props.label} class="group-tree" onKeyDown={onKeyDown} onClick={onClick}>
      {items}
    </div>
  );
}

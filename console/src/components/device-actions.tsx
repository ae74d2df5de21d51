import type { Device, DeviceWithToken } from "@fieldgate/shared";
import { useEffect, useId, useRef, useState } from "preact/hooks";
import { api } from "../lib/api";
import { useAction } from "../lib/use-confirm";
import { ConfirmDialog } from "./dialog";
import { ErrorNotice } from "./page";
import { TokenDialog } from "./token-panel";

export interface MenuItem {
  label: string;
  onSelect: () => void;
  danger?: boolean;
}

/**
 * A menu button (WAI-ARIA APG "menu button"): Enter, Space or ArrowDown opens it on its first
 * item, the arrow keys, Home and End move, Escape closes it back onto the button, and a click
 * outside or Tab closes it.
 */
export function MenuButton(props: { label: string; items: MenuItem[] }) {
  const [open, setOpen] = useState(false);
  const [focusOn, setFocusOn] = useState<"first" | "last">("first");
  const root = useRef<HTMLDivElement>(null);
  const button = useRef<HTMLButtonElement>(null);
  const menu = useRef<HTMLDivElement>(null);
  const menuId = useId();
  const buttonId = useId();

  const items = () => Array.from(menu.current?.querySelectorAll<HTMLElement>('[role="menuitem"]') ?? []);
  useEffect(() => {
    if (!open) return;
    const list = items();
    (focusOn === "first" ? list[0] : list[list.length - 1])?.focus();
    const outside = (event: PointerEvent) => {
      if (root.current && !root.current.contains(event.target as Node)) setOpen(false);
    };
    document.addEventListener("pointerdown", outside);
    return () => document.removeEventListener("pointerdown", outside);
  }, [open, focusOn]);

  const close = (refocus: boolean) => {
    setOpen(false);
    if (refocus) button.current?.focus();
  };
  const onMenuKey = (event: KeyboardEvent) => {
    const list = items();
    const at = list.indexOf(document.activeElement as HTMLElement);
    const move = (to: number) => {
      event.preventDefault();
      list[(to + list.length) % list.length]?.focus();
    };
    if (event.key === "ArrowDown") move(at + 1);
    else if (event.key === "ArrowUp") move(at - 1);
    else if (event.key === "Home") move(0);
    else if (event.key === "End") move(list.length - 1);
    else if (event.key === "Escape") {
      event.preventDefault();
      close(true);
    } else if (event.key === "Tab") close(false);
  };

  return (
    <div class="menu" ref={root}>
      <button
        type="button"
        id={buttonId}
        ref={button}
        aria-haspopup="menu"
        aria-expanded={open}
        aria-controls={menuId}
        onClick={() => {
          setFocusOn("first");
          setOpen(!open);
        }}
        onKeyDown={(event) => {
          if (event.key === "ArrowDown" || event.key === "ArrowUp") {
            event.preventDefault();
            setFocusOn(event.key === "ArrowDown" ? "first" : "last");
            setOpen(true);
          }
        }}
      >
        {props.label} <span aria-hidden="true">▾</span>
      </button>
      <div
        ref={menu}
        class="menu-list"
        role="menu"
        id={menuId}
        aria-labelledby={buttonId}
        hidden={!open}
        onKeyDown={onMenuKey}
      >
        {props.items.map((item) => (
          <button
            key={item.label}
            type="button"
            role="menuitem"
            tabIndex={-1}
            class={item.danger ? "menu-item danger-text" : "menu-item"}
            onClick={() => {
              // Back on the button first: a dialog opened now returns focus there when it closes.
              close(true);
              item.onSelect();
            }}
          >
            {item.label}
          </button>
        ))}
      </div>
    </div>
  );
}

/**
 * Reset token: says what it does first, then shows the new one-time token with the window's
 * countdown (TokenPanel). The cloud revokes the certificate in the same request.
 */
export function ResetTokenDialogs(props: { device: Device; onClose: () => void; onDone: () => void }) {
  const { busy, error, run } = useAction();
  const [result, setResult] = useState<DeviceWithToken | undefined>(undefined);
  const reset = () =>
    run(async () => {
      setResult(await api<DeviceWithToken>("POST", `/devices/${props.device.uuid}/reset-token`));
      props.onDone();
    });
  if (result) {
    return (
      <TokenDialog title="New enrollment token" result={result} onClose={props.onClose}>
        <p>
          The certificate is revoked
          {result.revokedCertificates ? ` (${result.revokedCertificates} revoked)` : ""}: enroll the gateway again with
          this token before the window closes.
        </p>
      </TokenDialog>
    );
  }
  return (
    <ConfirmDialog
      title="Reset the enrollment token?"
      confirmLabel={busy ? "Resetting…" : "Reset token"}
      danger
      busy={busy}
      onConfirm={reset}
      onClose={props.onClose}
    >
      <p>
        This <strong>revokes the device's certificate</strong> at once: the gateway is disconnected and cannot connect
        with it again.
      </p>
      <p>
        A new one-time enrollment token opens an enrollment window. The gateway must enroll again with the new token
        within that window, or the token must be reset again.
      </p>
      <ErrorNotice error={error} />
    </ConfirmDialog>
  );
}

/** Delete: says that all the device's data goes and that the uuid can be added again. */
export function DeleteDeviceDialog(props: { device: Device; onClose: () => void; onDeleted: () => void }) {
  const { busy, error, run } = useAction();
  const remove = () =>
    run(async () => {
      await api("DELETE", `/devices/${props.device.uuid}`);
      props.onDeleted();
    });
  return (
    <ConfirmDialog
      title="Delete this device?"
      confirmLabel={busy ? "Deleting…" : "Delete device"}
      danger
      busy={busy}
      onConfirm={remove}
      onClose={props.onClose}
    >
      <p>
        <strong>{props.device.name || props.device.uuid}</strong> and <strong>all its data</strong> are deleted: its
        telemetry, events, logs, configuration, certificates and update history. Its certificate stops working at once.
      </p>
      <p>
        This cannot be undone. The uuid <code>{props.device.uuid}</code> can be added again later, as a new device.
      </p>
      <ErrorNotice error={error} />
    </ConfirmDialog>
  );
}

import type { DeviceWithToken } from "@fieldgate/shared";
import type { ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";
import { formatCountdown } from "../lib/format";
import { Dialog } from "./dialog";

/**
 * The one-time enrollment token, shown once: the cloud stores only its hash. The countdown is
 * the enrollment window ("rollout enabled"): the device must enroll before it reaches 0:00.
 */
export function TokenPanel(props: { uuid: string; token: string; windowExpiresAt: string }) {
  const [now, setNow] = useState(Date.now());
  const [copied, setCopied] = useState(false);
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, []);
  const minutes = Math.max(0, Math.ceil((Date.parse(props.windowExpiresAt) - now) / 60_000));
  const left = formatCountdown(props.windowExpiresAt, now);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(props.token);
      setCopied(true);
    } catch {
      // Clipboard refused (an insecure context or a denied permission): the token stays selectable.
      setCopied(false);
    }
  };
  return (
    <section class="token-panel" aria-label="Enrollment token">
      <p>
        Enrollment token for <code>{props.uuid}</code>. It is shown <strong>only now</strong>: copy it to the gateway.
      </p>
      <div class="token-row">
        <output class="token" data-testid="enrollment-token">
          {props.token}
        </output>
        <button type="button" onClick={copy}>
          {copied ? "Copied" : "Copy"}
        </button>
      </div>
      <p class="countdown" role="timer" aria-live="off" data-testid="window-countdown">
        {left === "closed" ? (
          "The enrollment window has closed: reset the token to open a new one."
        ) : (
          <>
            Rollout enabled for the next {minutes} min (<span class="mono">{left}</span>)
          </>
        )}
      </p>
    </section>
  );
}

/** A dialog that says what happened (`children`), then shows the new token with its TokenPanel. */
export function TokenDialog(props: {
  title: string;
  result: DeviceWithToken;
  onClose: () => void;
  children: ComponentChildren;
}) {
  const { result } = props;
  return (
    <Dialog title={props.title} onClose={props.onClose}>
      {props.children}
      <TokenPanel uuid={result.device.uuid} token={result.enrollmentToken} windowExpiresAt={result.windowExpiresAt} />
      <div class="actions">
        <button type="button" class="primary" onClick={props.onClose}>
          Done
        </button>
      </div>
    </Dialog>
  );
}

import { useState } from "preact/hooks";

/**
 * An API credential's secret, shown once (the cloud keeps only its hash), with a copy button and
 * the Basic-auth pair it makes with the credential id.
 */
export function SecretPanel(props: { id: string; name: string; secret: string; onDismiss: () => void }) {
  const [copied, setCopied] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(props.secret);
      setCopied(true);
    } catch {
      // Clipboard refused (an insecure context or a denied permission): the secret stays selectable.
      setCopied(false);
    }
  };
  return (
    <section class="panel token-panel secret-panel" aria-label="New API secret">
      <p>
        Secret of <strong>{props.name}</strong> (<code>{props.id}</code>). It is shown <strong>only now</strong>: copy
        it to where it is used. Use it as HTTP Basic auth, <code>{props.id}</code> as the user name.
      </p>
      <div class="token-row">
        <output class="token" data-testid="credential-secret">
          {props.secret}
        </output>
        <button type="button" onClick={copy}>
          {copied ? "Copied" : "Copy"}
        </button>
      </div>
      <div class="actions">
        <button type="button" onClick={props.onDismiss}>
          Done, hide the secret
        </button>
      </div>
    </section>
  );
}

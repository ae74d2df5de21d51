import type { ComponentChildren } from "preact";
import { describeError } from "../lib/api";

export function PageHeader(props: { title: string; children?: ComponentChildren }) {
  return (
    <header class="page-header">
      <h1>{props.title}</h1>
      {props.children && <div class="page-actions">{props.children}</div>}
    </header>
  );
}

/** An error from the cloud, as its message says, in a live region so it is announced. */
export function ErrorNotice(props: { error: unknown }) {
  if (!props.error) return null;
  return (
    <p class="error-notice" role="alert">
      {describeError(props.error)}
    </p>
  );
}

export function Loading() {
  return (
    <p class="loading" role="status">
      Loading…
    </p>
  );
}

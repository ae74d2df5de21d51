// noble ships types for its default instance only; this is its bindings entry point.
declare module "@abandonware/noble/with-bindings.js" {
  import type { EventEmitter } from "node:events";

  /** Builds a noble instance on the given bindings (an EventEmitter with noble's bindings methods). */
  export default function withBindings(bindings: EventEmitter): unknown;
}

import type { Writable } from "node:stream";
import type { AccessPolicy, Principal } from "../access/access-policy.js";
import type { LiveEvent, LiveFeed } from "./live-feed.js";

export interface LiveStreamLimits {
  /** Open streams one principal (a user or an API credential) may hold. */
  maxPerPrincipal: number;
  /** Open streams in all. */
  maxTotal: number;
  /** How often a `: ping` comment is sent and each stream's credential checked again. */
  pingMs: number;
  /** A stream whose client has not taken this many bytes is ended (it reconnects and re-reads). */
  maxBufferedBytes: number;
}

export const DEFAULT_LIVE_LIMITS: LiveStreamLimits = {
  maxPerPrincipal: 16,
  maxTotal: 2_000,
  pingMs: 15_000,
  maxBufferedBytes: 1024 * 1024,
};

/** Tells the client how long to wait before reconnecting, in ms. */
export const LIVE_RETRY_MS = 5_000;

interface Stream {
  principal: Principal;
  /** The stream's credential checked again: the principal as it is now, or undefined when it ended. */
  revalidate: () => Promise<Principal | undefined>;
  out: Writable;
}

export type OpenResult = { ok: true; close: () => void } | { ok: false; reason: "principal" | "total" };

/**
 * The open `GET /api/v1/live` streams: each gets the feed's events its principal may read, in
 * SSE framing, and a ping that also checks its credential is still good (a logout, an expired
 * session, a deleted or regenerated credential end the stream). Capped per principal and in all.
 */
export class LiveStreams {
  private readonly streams = new Set<Stream>();
  private readonly perPrincipal = new Map<string, number>();
  private pingTimer: ReturnType<typeof setInterval> | undefined;
  private unsubscribe: (() => void) | undefined;

  constructor(
    private readonly feed: LiveFeed,
    private readonly policy: AccessPolicy,
    private readonly limits: LiveStreamLimits = DEFAULT_LIVE_LIMITS,
  ) {}

  get size(): number {
    return this.streams.size;
  }

  /** Opens a stream writing into `out`, or says which cap refuses it. */
  open(principal: Principal, revalidate: () => Promise<Principal | undefined>, out: Writable): OpenResult {
    if (this.streams.size >= this.limits.maxTotal) return { ok: false, reason: "total" };
    const held = this.perPrincipal.get(principal.id) ?? 0;
    if (held >= this.limits.maxPerPrincipal) return { ok: false, reason: "principal" };
    const stream: Stream = { principal, revalidate, out };
    this.streams.add(stream);
    this.perPrincipal.set(principal.id, held + 1);
    out.write(`retry: ${LIVE_RETRY_MS}\n\n`);
    if (!this.unsubscribe) this.unsubscribe = this.feed.subscribe((events) => this.deliver(events));
    if (!this.pingTimer) {
      this.pingTimer = setInterval(() => this.ping(), this.limits.pingMs);
      this.pingTimer.unref?.();
    }
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      this.remove(stream);
    };
    out.once("close", close);
    return { ok: true, close };
  }

  /** Checks every stream's credential now (after a logout), ending those that no longer hold. */
  async recheck(): Promise<void> {
    await Promise.all(
      [...this.streams].map(async (stream) => {
        const principal = await safely(stream.revalidate);
        // The stream may have closed while its credential was read.
        if (!this.streams.has(stream)) return;
        if (principal) stream.principal = principal;
        else this.end(stream);
      }),
    );
  }

  /** Ends every stream (the cloud stops): fastify's close must not wait on them. */
  closeAll(): void {
    for (const stream of [...this.streams]) this.end(stream);
    this.stopTimers();
  }

  /** The SSE text of the events the principal may read; empty when none. */
  framesFor(principal: Principal, events: readonly LiveEvent[]): string {
    let text = "";
    for (const event of events) {
      if (!this.mayRead(principal, event)) continue;
      switch (event.kind) {
        case "device":
          text += `event: device\ndata: ${JSON.stringify({ uuid: event.device.uuid })}\n\n`;
          break;
        case "job":
          text += `event: job\ndata: ${JSON.stringify({ uuid: event.device.uuid, jobId: event.jobId })}\n\n`;
          break;
        case "rollout":
          text += `event: rollout\ndata: ${JSON.stringify({ id: event.rolloutId })}\n\n`;
          break;
      }
    }
    return text;
  }

  /**
   * The read rules of the routes that show the thing: a device (and its jobs) with devices:read on
   * its group, as `GET /api/v1/devices/:uuid`; a rollout with firmware:read on every group it
   * targets, as `GET /api/v1/rollouts/:id`. Another organization's things are never sent.
   */
  mayRead(principal: Principal, event: LiveEvent): boolean {
    if (event.kind === "rollout") {
      return (
        event.rollout.orgId === principal.orgId &&
        event.rollout.groupPaths.every((p) => this.policy.sees(principal, "firmware:read", p))
      );
    }
    return (
      event.device.orgId === principal.orgId && this.policy.sees(principal, "devices:read", event.device.groupPath)
    );
  }

  private deliver(events: readonly LiveEvent[]): void {
    // Streams with the same rights (a user's tabs, one credential's clients) share one filtering pass.
    const byRights = new Map<string, string>();
    for (const stream of [...this.streams]) {
      const rights = rightsKey(stream.principal);
      let text = byRights.get(rights);
      if (text === undefined) {
        text = this.framesFor(stream.principal, events);
        byRights.set(rights, text);
      }
      if (text) this.write(stream, text);
    }
  }

  private ping(): void {
    void this.recheck().then(() => {
      for (const stream of [...this.streams]) this.write(stream, ": ping\n\n");
    });
  }

  private write(stream: Stream, text: string): void {
    // A client that stopped reading is let go rather than buffered for: it reconnects and re-reads.
    if (stream.out.writableLength > this.limits.maxBufferedBytes) {
      this.end(stream);
      return;
    }
    stream.out.write(text);
  }

  private end(stream: Stream): void {
    this.remove(stream);
    stream.out.end();
  }

  private remove(stream: Stream): void {
    if (!this.streams.delete(stream)) return;
    const held = (this.perPrincipal.get(stream.principal.id) ?? 1) - 1;
    if (held <= 0) this.perPrincipal.delete(stream.principal.id);
    else this.perPrincipal.set(stream.principal.id, held);
    if (this.streams.size === 0) this.stopTimers();
  }

  private stopTimers(): void {
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = undefined;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }
}

/** What a principal may read depends on its organization and grants only. */
function rightsKey(principal: Principal): string {
  return `${principal.orgId}|${principal.grants.map((g) => `${g.role}@${g.path}`).join(",")}`;
}

async function safely(revalidate: () => Promise<Principal | undefined>): Promise<Principal | undefined> {
  try {
    return await revalidate();
  } catch {
    return undefined;
  }
}

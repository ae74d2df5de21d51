import type net from "node:net";
import type tls from "node:tls";
import type { Logger } from "pino";

export interface PendingLimits {
  /** Sockets a listener holds at once before they are authenticated; more are closed at accept. */
  maxPending: number;
  /** From accept to the end of the TLS handshake, however slowly the peer sends its bytes. */
  handshakeTimeoutMs: number;
}

/** How long a socket may stay pending after its handshake: until a CONNECT, or a first request. */
export interface AfterHandshake {
  timeoutMs: number;
  /** For the log: what did not arrive. */
  awaited: string;
}

interface Pending {
  socket: net.Socket;
  deadline: NodeJS.Timeout | undefined;
}

/**
 * Counts a TLS listener's sockets from accept until the protocol above says they are
 * authenticated (MQTT: an accepted CONNECT; HTTPS: a first request), and refuses new ones beyond
 * the cap, so idle or half-open sockets cannot exhaust file descriptors or memory. Authenticated
 * connections never count, so a flood of strangers cannot push out devices already connected.
 */
export class PendingConnections {
  /** By peer address and port: the raw socket and its TLS socket share them. */
  private readonly pending = new Map<string, Pending>();
  private refusing = false;

  constructor(
    private readonly limits: PendingLimits,
    private readonly logger: Logger,
    private readonly listener: string,
  ) {}

  watch(server: tls.Server, after: AfterHandshake): void {
    server.on("connection", (socket: net.Socket) => this.admit(socket));
    server.on("secureConnection", (socket: tls.TLSSocket) => {
      const entry = this.pending.get(peerKey(socket));
      if (!entry) return;
      clearTimeout(entry.deadline);
      // Node's headersTimeout starts only with a request's first byte; a silent socket needs this.
      entry.deadline = this.deadline(entry.socket, after.timeoutMs, `no ${after.awaited} in time after the handshake`);
    });
  }

  /** The connection is authenticated: it no longer counts against the cap. */
  settle(socket: net.Socket): void {
    const key = peerKey(socket);
    const entry = this.pending.get(key);
    if (!entry) return;
    clearTimeout(entry.deadline);
    this.pending.delete(key);
  }

  private admit(socket: net.Socket): void {
    if (this.pending.size >= this.limits.maxPending) {
      if (!this.refusing) {
        this.logger.warn(
          { listener: this.listener, maxPending: this.limits.maxPending },
          "too many unauthenticated connections; refusing new ones (--max-pending-connections)",
        );
      }
      this.refusing = true;
      socket.destroy();
      return;
    }
    this.refusing = false;
    const key = peerKey(socket);
    const entry: Pending = {
      socket,
      deadline: this.deadline(socket, this.limits.handshakeTimeoutMs, "tls handshake did not finish in time"),
    };
    this.pending.set(key, entry);
    socket.once("close", () => {
      clearTimeout(entry.deadline);
      if (this.pending.get(key) === entry) this.pending.delete(key);
    });
  }

  private deadline(socket: net.Socket, ms: number, why: string): NodeJS.Timeout {
    return setTimeout(() => {
      this.logger.debug({ listener: this.listener, peer: peerKey(socket) }, `closing a pending connection: ${why}`);
      socket.destroy();
    }, ms);
  }
}

function peerKey(socket: net.Socket): string {
  return `${socket.remoteAddress}|${socket.remotePort}`;
}

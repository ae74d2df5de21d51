import { createServer, type Server, type Socket, connect as tcpConnect } from "node:net";

/**
 * A loopback TCP relay in front of the cloud that cuts the first connection carrying more than
 * `cutAfterBytes` towards the device, the way a flaky link kills a transfer midway. Later
 * connections pass untouched, so the downloader's resume with HTTP Range is exercised for real
 * (TLS runs end to end through it; the relay sees only ciphertext).
 */
export class DownloadInterrupter {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private cut = false;
  cutAfterBytes = Number.POSITIVE_INFINITY;

  constructor(
    private readonly upstreamHost: string,
    private readonly upstreamPort: number,
  ) {}

  /** True once a connection was cut. */
  get interrupted(): boolean {
    return this.cut;
  }

  /** Listens on an ephemeral loopback port and returns it. */
  async start(): Promise<number> {
    const server = createServer((client) => this.relay(client));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve());
    });
    return (server.address() as { port: number }).port;
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    const server = this.server;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private relay(client: Socket): void {
    const upstream = tcpConnect(this.upstreamPort, this.upstreamHost);
    this.sockets.add(client);
    this.sockets.add(upstream);
    let down = 0;
    const end = () => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    client.on("error", end);
    upstream.on("error", end);
    client.on("close", end);
    upstream.on("close", end);
    client.pipe(upstream);
    upstream.on("data", (chunk: Buffer) => {
      down += chunk.length;
      if (!this.cut && down > this.cutAfterBytes) {
        this.cut = true;
        end();
        return;
      }
      if (!client.write(chunk)) {
        upstream.pause();
        client.once("drain", () => upstream.resume());
      }
    });
  }
}

import net from "node:net";

/**
 * A TCP proxy to `target` on loopback that can hold back everything the server sends: while
 * holding, the client's bytes still reach the server but the answers (a PUBACK, say) are
 * discarded, as if lost on the way. TLS passes through untouched.
 */
export interface HoldingProxy {
  port: number;
  /** Starts (true) or stops (false) discarding the server's bytes, on every connection. */
  hold(on: boolean): void;
  close(): Promise<void>;
}

export async function startHoldingProxy(targetPort: number, targetHost = "127.0.0.1"): Promise<HoldingProxy> {
  let holding = false;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, targetHost);
    sockets.add(client);
    sockets.add(upstream);
    upstream.on("data", (chunk: Buffer) => {
      if (!holding) client.write(chunk);
    });
    client.on("data", (chunk: Buffer) => upstream.write(chunk));
    const close = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    for (const s of [client, upstream]) {
      s.on("close", close);
      s.on("error", close);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    hold(on) {
      holding = on;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

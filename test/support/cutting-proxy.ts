import net from "node:net";

/**
 * A TCP proxy to `target` on loopback that can cut one connection mid-transfer: once armed, the
 * first connection that has sent `cutAfter` bytes towards the client is destroyed. TLS passes
 * through untouched (mTLS included), so the client sees a dropped connection, nothing else.
 */
export interface CuttingProxy {
  port: number;
  /** Arms one cut after `cutAfter` bytes on a connection (counted from its start). */
  armCut(cutAfter: number): void;
  /** Connections cut so far. */
  cuts(): number;
  /** Connections accepted so far. */
  connections(): number;
  /** Bytes sent towards clients, all connections. */
  bytesToClients(): number;
  close(): Promise<void>;
}

export async function startCuttingProxy(targetPort: number, targetHost = "127.0.0.1"): Promise<CuttingProxy> {
  let armed: number | undefined;
  let cuts = 0;
  let connections = 0;
  let toClients = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    connections += 1;
    const upstream = net.connect(targetPort, targetHost);
    sockets.add(client);
    sockets.add(upstream);
    let sent = 0;
    const cut = () => {
      cuts += 1;
      client.destroy();
      upstream.destroy();
    };
    upstream.on("data", (chunk: Buffer) => {
      if (armed !== undefined && sent + chunk.length >= armed) {
        const part = chunk.subarray(0, Math.max(0, armed - sent));
        armed = undefined;
        upstream.pause();
        sent += part.length;
        toClients += part.length;
        client.write(part, cut);
        return;
      }
      sent += chunk.length;
      toClients += chunk.length;
      client.write(chunk);
    });
    client.on("data", (chunk: Buffer) => upstream.write(chunk));
    const close = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("close", close);
    upstream.on("close", close);
    client.on("error", close);
    upstream.on("error", close);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    armCut(cutAfter) {
      armed = cutAfter;
    },
    cuts: () => cuts,
    connections: () => connections,
    bytesToClients: () => toClients,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

#!/usr/bin/env node
// Receiving end of the loopback TCP throughput probe: counts and discards, in its own process.
import net from "node:net";

const server = net.createServer((socket) => {
  socket.on("data", () => undefined);
  socket.on("error", () => undefined);
});
server.listen(0, "127.0.0.1", () => process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`));
process.on("SIGTERM", () => process.exit(0));

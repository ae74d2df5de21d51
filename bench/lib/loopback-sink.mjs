#!/usr/bin/env node
// Receiving end of the loopback throughput probes: counts and discards, in its own process.
// With a PKI directory as its argument it speaks TLS with the cloud's server certificate, so the
// probe measures what one stream can carry once it is encrypted on one side and decrypted on the other.
import { readFileSync } from "node:fs";
import net from "node:net";
import tls from "node:tls";

const pki = process.argv[2];
const onSocket = (socket) => {
  socket.on("data", () => undefined);
  socket.on("error", () => undefined);
};
const server = pki
  ? tls.createServer({ key: readFileSync(`${pki}/server.key`), cert: readFileSync(`${pki}/server.crt`) }, onSocket)
  : net.createServer(onSocket);
server.listen(0, "127.0.0.1", () => process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`));
process.on("SIGTERM", () => process.exit(0));

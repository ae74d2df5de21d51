#!/usr/bin/env node
// The bare-broker peer: Aedes with the TLS settings of fieldgate's broker (client certificate
// required, chained to the same CA, TLS 1.2 minimum) and none of its hooks, ACL or ingest.
import { readFileSync } from "node:fs";
import tls from "node:tls";
import { Aedes } from "aedes";

const pki = process.argv[2];
const aedes = await Aedes.createBroker({ heartbeatInterval: 24 * 3600_000 });
const server = tls.createServer(
  {
    key: readFileSync(`${pki}/server.key`),
    cert: readFileSync(`${pki}/server.crt`),
    ca: [readFileSync(`${pki}/ca.crt`)],
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: "TLSv1.2",
  },
  (socket) => aedes.handle(socket),
);
server.listen(0, "127.0.0.1", () => process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`));
process.on("SIGTERM", () => process.exit(0));

import path from "node:path";

/** Files the cloud keeps in its data directory; the operator CLI reads some of them. */
export const dataFiles = (dataDir: string) => ({
  database: path.join(dataDir, "fieldgate.db"),
  pkiDir: path.join(dataDir, "pki"),
  caCert: path.join(dataDir, "pki", "ca.crt"),
  adminCredential: path.join(dataDir, "admin-credential.json"),
  /** The host credential: `organizations:*` and nothing else, for `organizations create|list` on this host. */
  hostCredential: path.join(dataDir, "host-credential.json"),
  runtime: path.join(dataDir, "runtime.json"),
});

/** What a running cloud tells the operator CLI on the same host. */
export interface RuntimeInfo {
  pid: number;
  url: string;
  httpPort: number;
  mqttPort: number;
  startedAt: string;
}

import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import https from "node:https";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { cloudDatabaseFor } from "./test-database.js";

export const repoRoot = path.resolve(import.meta.dirname, "../..");
export const cloudBin = path.join(repoRoot, "cloud/dist/cli/main.js");
export const agentBin = path.join(repoRoot, "agent/dist/cli/main.js");

export interface ApiAnswer<T = unknown> {
  status: number;
  body: T;
  text: string;
}

/** A real `fieldgate-cloud serve` process on loopback with ephemeral ports and its own data dir. */
export interface CloudProcess {
  dataDir: string;
  url: string;
  mqttUrl: string;
  httpPort: number;
  mqttPort: number;
  caPem: string;
  caFile: string;
  credential: { id: string; secret: string };
  /** The structured log (stdout). */
  logs: string[];
  /** What the cloud printed for the operator's terminal (stderr), such as the one-time admin secret. */
  terminal: string[];
  /** An HTTPS call; `auth` false sends no credential, a string sends that Authorization header. */
  api<T = unknown>(method: string, path: string, body?: unknown, auth?: boolean | string): Promise<ApiAnswer<T>>;
  stop(): Promise<void>;
  child: ChildProcess;
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `fieldgate-${prefix}-`));
}

/** The argv of `node <cloud> serve` on loopback with ephemeral ports, for tests that spawn it themselves. */
export function serveArgs(dataDir: string, ...extra: string[]): string[] {
  return [
    cloudBin,
    "serve",
    "--data-dir",
    dataDir,
    "--host",
    "127.0.0.1",
    "--http-port",
    "0",
    "--mqtt-port",
    "0",
    ...extra,
  ];
}

export async function startCloud(options: { args?: string[]; dataDir?: string } = {}): Promise<CloudProcess> {
  const dataDir = options.dataDir ?? tempDir("cloud");
  const database = await cloudDatabaseFor(dataDir);
  const child = spawn(process.execPath, serveArgs(dataDir, ...(options.args ?? [])), {
    stdio: ["ignore", "pipe", "pipe"],
    env: {
      ...process.env,
      FIELDGATE_LOG_LEVEL: "debug",
      ...(database !== undefined && { FIELDGATE_DATABASE: database }),
    },
  });
  const logs: string[] = [];
  const terminal: string[] = [];
  const ready = new Promise<{ httpPort: number; mqttPort: number }>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`cloud did not start:\n${[...logs, ...terminal].join("\n")}`)),
      20_000,
    );
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`cloud exited with ${code}:\n${[...logs, ...terminal].join("\n")}`));
    });
    readline.createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      logs.push(line);
      try {
        const entry = JSON.parse(line) as { msg?: string; httpPort?: number; mqttPort?: number };
        if (entry.msg === "cloud ready" && entry.httpPort && entry.mqttPort) {
          clearTimeout(timer);
          resolve({ httpPort: entry.httpPort, mqttPort: entry.mqttPort });
        }
      } catch {
        // not a log line
      }
    });
    readline
      .createInterface({ input: child.stderr as NodeJS.ReadableStream })
      .on("line", (line) => terminal.push(line));
  });
  const { httpPort, mqttPort } = await ready;
  const caFile = path.join(dataDir, "pki", "ca.crt");
  const caPem = fs.readFileSync(caFile, "utf8");
  const admin = JSON.parse(fs.readFileSync(path.join(dataDir, "admin-credential.json"), "utf8")) as {
    credentialId: string;
    secret: string;
  };
  const url = `https://localhost:${httpPort}`;
  const basic = `Basic ${Buffer.from(`${admin.credentialId}:${admin.secret}`).toString("base64")}`;
  return {
    dataDir,
    url,
    mqttUrl: `mqtts://localhost:${mqttPort}`,
    httpPort,
    mqttPort,
    caPem,
    caFile,
    credential: { id: admin.credentialId, secret: admin.secret },
    logs,
    terminal,
    child,
    api: (method, p, body, auth = true) =>
      httpsJson(url, caPem, method, p, body, auth === true ? basic : auth === false ? undefined : auth),
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

export function httpsJson<T>(
  base: string,
  ca: string,
  method: string,
  p: string,
  body?: unknown,
  authorization?: string,
): Promise<ApiAnswer<T>> {
  const payload = body === undefined ? undefined : Buffer.from(typeof body === "string" ? body : JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = https.request(
      new URL(p, base),
      {
        method,
        ca,
        headers: {
          ...(authorization ? { authorization } : {}),
          ...(payload ? { "content-type": "application/json", "content-length": payload.length } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let parsed: unknown;
          try {
            parsed = text ? JSON.parse(text) : undefined;
          } catch {
            parsed = undefined;
          }
          resolve({ status: res.statusCode ?? 0, body: parsed as T, text });
        });
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

/** Polls until `check` returns a value other than undefined, or fails after `timeoutMs`. */
export async function eventually<T>(
  check: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 10_000,
  what = "condition",
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
}

/** A TCP port free at the time of the call, for tests that restart a process on the same port. */
export async function freePort(): Promise<number> {
  const net = await import("node:net");
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

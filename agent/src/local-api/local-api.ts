import { chmodSync, lstatSync, unlinkSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { connect } from "node:net";
import { FieldgateError, parseDuration, Reading, SchemaValidator } from "@fieldgate/shared";
import type { Logger } from "pino";
import type { CheckResult, CheckStatus } from "../health/health-check.js";
import type { HealthSnapshot } from "../health/health-monitor.js";
import type { LinkView } from "../links/link-manager.js";
import type { ReadingSink } from "../outbox/outbox-writer.js";
import { LOCAL_STATUS_NAME, LocalStatusBody, LocalTelemetryBody } from "./local-api-schemas.js";

/** What the API needs from the health monitor (`HealthMonitor` is the real one). */
export interface LocalStatusTarget {
  post(name: string, status: CheckStatus, message?: string, ttlMs?: number): CheckResult & { expiresAt?: number };
  remove(name: string): boolean;
  get(name: string): CheckResult | undefined;
  snapshot(): HealthSnapshot;
}

/** Where the API listens and what it serves. */
export interface LocalApiOptions {
  /** Unix socket path (mode 0660). */
  socket: string;
  /** Optional TCP port, bound to 127.0.0.1 only. */
  port?: number;
  sink: Pick<ReadingSink, "append">;
  health: LocalStatusTarget;
  /** Device links for `GET /v1/links` (`fieldgate-agent links`); absent: an empty list. */
  links?: { list(): LinkView[] };
  logger: Logger;
  now?: () => number;
}

/** Bodies above this are refused with 413. */
export const MAX_BODY_BYTES = 1024 * 1024;
/** Posted statuses appear as checks under this prefix. */
export const LOCAL_PREFIX = "local.";
/** Longest Unix socket path on Linux (sun_path is 108 bytes with the terminating NUL). */
const MAX_SOCKET_PATH = 107;

const validator = new SchemaValidator();

/**
 * The agent's HTTP API for programs on the device: readings into the outbox, named statuses into
 * the health model, the current aggregate out. It listens on a Unix socket, whose file permissions
 * are the access control, and optionally on 127.0.0.1:PORT. There is no authentication.
 */
export class LocalApi {
  private servers: Server[] = [];
  private ownsSocket = false;
  private tcpPort: number | undefined;

  constructor(private readonly options: LocalApiOptions) {}

  /** The bound TCP port (useful with port 0 in tests). */
  get port(): number | undefined {
    return this.tcpPort;
  }

  /** Listens; throws `LOCAL_API_IN_USE` if another process serves the socket or port, `CONFIG_INVALID` for a bad path. */
  async start(): Promise<void> {
    if (this.servers.length > 0) return;
    const { socket, port, logger } = this.options;
    if (Buffer.byteLength(socket) > MAX_SOCKET_PATH) {
      throw new FieldgateError(
        "CONFIG_INVALID",
        `the socket path is ${Buffer.byteLength(socket)} bytes; Unix sockets allow at most ${MAX_SOCKET_PATH}`,
        "localApi.socket",
      );
    }
    await this.clearStaleSocket(socket);
    const unixServer = this.createServer();
    await listen(unixServer, { path: socket }).catch((err: NodeJS.ErrnoException) => {
      throw err.code === "EADDRINUSE"
        ? new FieldgateError("LOCAL_API_IN_USE", `${socket} is in use`, "localApi.socket")
        : new FieldgateError("CONFIG_INVALID", `cannot listen on ${socket}: ${err.message}`, "localApi.socket");
    });
    this.ownsSocket = true;
    this.servers.push(unixServer);
    // Owner and group may use the API; the directory's permissions apply on top.
    chmodSync(socket, 0o660);
    if (port !== undefined) {
      const tcpServer = this.createServer();
      try {
        await listen(tcpServer, { host: "127.0.0.1", port });
      } catch (err) {
        await this.stop();
        const e = err as NodeJS.ErrnoException;
        throw e.code === "EADDRINUSE"
          ? new FieldgateError("LOCAL_API_IN_USE", `127.0.0.1:${port} is in use`, "localApi.port")
          : new FieldgateError("CONFIG_INVALID", `cannot listen on 127.0.0.1:${port}: ${e.message}`, "localApi.port");
      }
      this.tcpPort = (tcpServer.address() as { port: number }).port;
      this.servers.push(tcpServer);
    }
    logger.info(
      { socket, port: this.tcpPort ?? null },
      `local API listening on ${socket}${this.tcpPort ? ` and 127.0.0.1:${this.tcpPort}` : ""}`,
    );
  }

  async stop(): Promise<void> {
    const servers = this.servers.splice(0);
    await Promise.all(
      servers.map(
        (s) =>
          new Promise<void>((resolve) => {
            s.close(() => resolve());
            s.closeAllConnections();
          }),
      ),
    );
    this.tcpPort = undefined;
    if (this.ownsSocket) {
      this.ownsSocket = false;
      try {
        unlinkSync(this.options.socket);
      } catch {
        // already gone
      }
    }
  }

  private async clearStaleSocket(path: string): Promise<void> {
    if (await assertSocketFree(path)) unlinkSync(path);
  }

  private createServer(): Server {
    const server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => this.fail(res, err));
    });
    server.headersTimeout = 10_000;
    server.requestTimeout = 30_000;
    return server;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    const path = url.pathname.replace(/\/+$/, "") || "/";
    const method = req.method ?? "GET";
    if (path === "/v1/telemetry" && method === "POST") return this.telemetry(await readJson(req), res);
    if (path === "/v1/status" && method === "GET") return send(res, 200, this.options.health.snapshot());
    if (path === "/v1/links" && method === "GET") return send(res, 200, { links: this.options.links?.list() ?? [] });
    const named = /^\/v1\/status\/([^/]+)$/.exec(path);
    if (named) {
      const name = statusName(named[1] as string);
      if (method === "POST") return this.postStatus(name, await readJson(req), res);
      if (method === "GET") {
        const check = this.options.health.get(LOCAL_PREFIX + name);
        return check ? send(res, 200, check) : this.notFound(res, name);
      }
      if (method === "DELETE") {
        if (!this.options.health.remove(LOCAL_PREFIX + name)) return this.notFound(res, name);
        res.writeHead(204).end();
        return;
      }
    }
    throw new FieldgateError("NOT_FOUND", `no route ${method} ${path}; see docs/local-api.md`);
  }

  private telemetry(body: unknown, res: ServerResponse): void {
    const now = (this.options.now ?? Date.now)();
    // A single reading is accepted as is; `ts` may be left out and means "now" (handy from a shell).
    const single = isObject(body) && !("readings" in body);
    const batch = single ? { readings: [body] } : body;
    if (isObject(batch) && Array.isArray(batch.readings)) {
      for (const r of batch.readings) if (isObject(r) && r.ts === undefined) r.ts = now;
    }
    let readings: Reading[];
    if (single) {
      readings = [validator.parse(Reading, body)];
    } else {
      readings = validator.parse(LocalTelemetryBody, batch).readings;
    }
    const result = this.options.sink.append(readings);
    send(res, 202, { accepted: result.appended });
  }

  private postStatus(name: string, body: unknown, res: ServerResponse): void {
    const parsed = validator.parse(LocalStatusBody, body);
    let ttlMs: number | undefined;
    if (typeof parsed.ttl === "number") ttlMs = Math.round(parsed.ttl * 1000);
    else if (typeof parsed.ttl === "string") {
      ttlMs = parseDuration(parsed.ttl);
      if (ttlMs === undefined || ttlMs <= 0) {
        throw new FieldgateError("VALIDATION_FAILED", "ttl must be a duration such as 90s or 10m, or seconds", "ttl");
      }
    }
    const stored = this.options.health.post(
      LOCAL_PREFIX + name,
      parsed.status as CheckStatus,
      parsed.message ?? "",
      ttlMs,
    );
    send(res, 200, {
      ...stored,
      ...(stored.expiresAt !== undefined && { expiresAt: new Date(stored.expiresAt).toISOString() }),
    });
  }

  private notFound(res: ServerResponse, name: string): void {
    send(res, 404, new FieldgateError("NOT_FOUND", `no status named ${name} was posted`, "name").toBody(), true);
  }

  private fail(res: ServerResponse, err: unknown): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (err instanceof BodyTooLarge) {
      const body = new FieldgateError("VALIDATION_FAILED", `the body is larger than ${MAX_BODY_BYTES} bytes`, "body");
      res.setHeader("connection", "close");
      send(res, 413, body.toBody(), true);
      return;
    }
    if (err instanceof FieldgateError) {
      send(res, err.status, err.toBody(), true);
      return;
    }
    this.options.logger.error({ err: (err as Error)?.message }, "local API request failed");
    send(res, 500, new FieldgateError("INTERNAL").toBody(), true);
  }
}

class BodyTooLarge extends Error {}

function statusName(raw: string): string {
  let name: string;
  try {
    name = decodeURIComponent(raw);
  } catch {
    name = raw;
  }
  if (!LOCAL_STATUS_NAME.test(name)) {
    throw new FieldgateError("VALIDATION_FAILED", "name must be 1–64 of A-Z a-z 0-9 _ . -", "name");
  }
  return name;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const declared = Number(req.headers["content-length"]);
  if (declared > MAX_BODY_BYTES) throw new BodyTooLarge();
  const text = await new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    // Past the limit the rest is read and discarded, so the client still gets its 413 answer.
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) chunks.push(chunk);
    });
    req.on("end", () =>
      size > MAX_BODY_BYTES ? reject(new BodyTooLarge()) : resolve(Buffer.concat(chunks).toString("utf8")),
    );
    req.on("error", reject);
  });
  try {
    return JSON.parse(text);
  } catch {
    throw new FieldgateError("PAYLOAD_MALFORMED", "the request body is not valid JSON", "body");
  }
}

function send(res: ServerResponse, status: number, body: unknown, isError = false): void {
  const payload = JSON.stringify(isError ? { error: body } : body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(payload) });
  res.end(payload);
}

function listen(server: Server, where: { path: string } | { host: string; port: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(where, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

/**
 * Throws `LOCAL_API_IN_USE` if a process answers on the socket (another agent on the same data
 * directory), `CONFIG_INVALID` if the path is not a socket. Resolves `true` for a stale socket file
 * (left by a crash), `false` if there is none. The agent calls it before touching its data directory.
 */
export async function assertSocketFree(path: string): Promise<boolean> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return false;
  }
  if (!isSocket) throw new FieldgateError("CONFIG_INVALID", `${path} exists and is not a socket`, "localApi.socket");
  const alive = await new Promise<boolean>((resolve) => {
    const probe = connect({ path });
    probe.once("connect", () => {
      probe.destroy();
      resolve(true);
    });
    probe.once("error", () => resolve(false));
  });
  if (alive) {
    throw new FieldgateError(
      "LOCAL_API_IN_USE",
      `another process (another agent on the same data directory?) answers on ${path}`,
      "localApi.socket",
    );
  }
  return true;
}

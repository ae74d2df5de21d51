import fs from "node:fs";
import https from "node:https";
import os from "node:os";
import path from "node:path";
import { type ErrorCode, FieldgateError, isErrorCode } from "@fieldgate/shared";
import { dataFiles, type RuntimeInfo } from "../config/data-files.js";

export interface ConnectionOptions {
  url?: string;
  credential?: string;
  token?: string;
  caFile?: string;
  dataDir?: string;
}

/** Which file of the local data dir supplies the credential when no flag or variable does. */
export type LocalCredential = "admin" | "host";

/** A session saved by `fieldgate-cloud login`, mode 0600. */
export interface SavedSession {
  url: string;
  token: string;
  expiresAt: string;
  email: string;
  caFile?: string;
}

export function sessionFile(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME ?? path.join(os.homedir(), ".config");
  return path.join(base, "fieldgate", "session.json");
}

/** The operator CLI's HTTPS client: credentials from flags, then FIELDGATE_* variables, then the local data dir. */
export class ApiClient {
  private constructor(
    private readonly baseUrl: URL,
    private readonly authorization: string,
    private readonly ca: string | undefined,
    readonly caFile: string | undefined,
  ) {}

  /**
   * Credentials, first match wins: --credential, FIELDGATE_CREDENTIAL, --token, FIELDGATE_TOKEN, the
   * session saved by `login` (while valid), then the admin credential in the local data dir. With
   * `localCredential` "host" (the `organizations` commands): --credential, FIELDGATE_CREDENTIAL,
   * then the data dir's host-credential.json; no session token.
   */
  static fromOptions(
    options: ConnectionOptions,
    env: NodeJS.ProcessEnv = process.env,
    localCredential: LocalCredential = "admin",
  ): ApiClient {
    const files = dataFiles(options.dataDir ?? env.FIELDGATE_DATA_DIR ?? "./data");
    const localFile = localCredential === "host" ? files.hostCredential : files.adminCredential;
    const local = readJson<{ credentialId: string; secret: string; caFile?: string }>(localFile);
    const runtime = readJson<RuntimeInfo>(files.runtime);
    const saved = localCredential === "host" ? undefined : readJson<SavedSession>(sessionFile(env));
    const session = saved && Date.parse(saved.expiresAt) > Date.now() ? saved : undefined;
    const given = options.url ?? env.FIELDGATE_URL;
    const url = given ?? session?.url ?? runtime?.url;
    if (!url) {
      throw new FieldgateError(
        "CONFIG_INVALID",
        `no cloud URL: pass --url, set FIELDGATE_URL, log in, or run on the cloud host (no ${files.runtime})`,
        "url",
      );
    }
    const source =
      options.url !== undefined
        ? "--url"
        : env.FIELDGATE_URL !== undefined
          ? "FIELDGATE_URL"
          : session?.url === url
            ? sessionFile(env)
            : files.runtime;
    const parsed = parseCloudUrl(url, source);
    // For the host commands an explicit --data-dir's host credential beats FIELDGATE_CREDENTIAL
    // (a flag beats a variable), which often holds a tenant's credential that may not do this.
    const hostFileFirst = localCredential === "host" && options.dataDir !== undefined && local !== undefined;
    const pair = options.credential ?? (hostFileFirst ? undefined : env.FIELDGATE_CREDENTIAL);
    // A user session never holds host rights: the host commands take a credential only.
    const token =
      localCredential === "host"
        ? undefined
        : (options.token ?? env.FIELDGATE_TOKEN ?? (session && session.url === url ? session.token : undefined));
    let authorization: string;
    if (pair) {
      if (!/^[^:\s]+:\S+$/.test(pair)) {
        // The value is a secret: named by its flag, never echoed.
        const source = options.credential !== undefined ? "--credential" : "FIELDGATE_CREDENTIAL";
        throw new FieldgateError(
          "CONFIG_INVALID",
          `${source}: expected id:secret, as \`credentials create\` prints it; the value is not shown`,
          "credential",
        );
      }
      authorization = `Basic ${Buffer.from(pair).toString("base64")}`;
    } else if (token) {
      if (!/^[\x21-\x7e]+$/.test(token)) {
        throw new FieldgateError(
          "CONFIG_INVALID",
          "--token: expected the session token `login` printed (no spaces); the value is not shown",
          "token",
        );
      }
      authorization = `Bearer ${token}`;
    } else if (local)
      authorization = `Basic ${Buffer.from(`${local.credentialId}:${local.secret}`).toString("base64")}`;
    else {
      throw new FieldgateError(
        "AUTH_REQUIRED",
        localCredential === "host"
          ? `no host credential: pass --credential id:secret, set FIELDGATE_CREDENTIAL, or run on the cloud host with its --data-dir (no ${localFile})`
          : `no API credential: pass --credential id:secret, set FIELDGATE_CREDENTIAL, run \`fieldgate-cloud login\`, or run on the cloud host (no ${localFile})`,
        "credential",
      );
    }
    const caFile =
      options.caFile ??
      env.FIELDGATE_CA_FILE ??
      (session?.url === url ? session.caFile : undefined) ??
      (fs.existsSync(files.caCert) ? files.caCert : undefined);
    return new ApiClient(parsed, authorization, readCa(caFile), caFile);
  }

  /** A client without credentials, for `login`. */
  static anonymous(url: string, caFile: string | undefined, source = "--url"): ApiClient {
    return new ApiClient(parseCloudUrl(url, source), "", readCa(caFile), caFile);
  }

  get url(): string {
    return this.baseUrl.origin;
  }

  /** A JSON request; with `contentType`, a string body is sent as it is (CSV files). */
  async request<T>(method: string, path: string, body?: unknown, contentType = "application/json"): Promise<T> {
    const url = new URL(path, this.baseUrl);
    const text = contentType === "application/json" ? JSON.stringify(body) : String(body);
    const payload = body === undefined ? undefined : Buffer.from(text);
    return new Promise<T>((resolve, reject) => {
      const req = https.request(
        url,
        {
          method,
          ca: this.ca,
          headers: {
            ...(this.authorization && { authorization: this.authorization }),
            accept: "application/json",
            ...(payload ? { "content-type": contentType, "content-length": payload.length } : {}),
          },
          timeout: 30_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8");
            const json = text ? safeJson(text) : undefined;
            if ((res.statusCode ?? 500) >= 400) {
              reject(apiError(res.statusCode ?? 500, json));
              return;
            }
            resolve(json as T);
          });
        },
      );
      req.on("timeout", () => req.destroy(new Error("request timed out")));
      req.on("error", (err) =>
        reject(new FieldgateError("CLOUD_UNREACHABLE", `cannot reach ${this.baseUrl.origin}: ${err.message}`, "url")),
      );
      req.end(payload);
    });
  }

  /**
   * Streams a file from disk as `application/octet-stream` with its Content-Length (firmware
   * images): never read whole into memory. `onProgress` gets the bytes sent so far.
   */
  async upload<T>(
    file: string,
    path: string,
    onProgress: (sent: number, total: number) => void = () => {},
    headers: Record<string, string> = {},
  ): Promise<T> {
    const url = new URL(path, this.baseUrl);
    const total = fs.statSync(file).size;
    return new Promise<T>((resolve, reject) => {
      const req = https.request(
        url,
        {
          method: "POST",
          ca: this.ca,
          headers: {
            ...(this.authorization && { authorization: this.authorization }),
            accept: "application/json",
            "content-type": "application/octet-stream",
            "content-length": total,
            ...headers,
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            const json = safeJson(Buffer.concat(chunks).toString("utf8"));
            if ((res.statusCode ?? 500) >= 400) {
              reject(apiError(res.statusCode ?? 500, json));
              return;
            }
            resolve(json as T);
          });
        },
      );
      req.on("error", (err) =>
        reject(new FieldgateError("CLOUD_UNREACHABLE", `cannot reach ${this.baseUrl.origin}: ${err.message}`, "url")),
      );
      let sent = 0;
      const source = fs.createReadStream(file);
      source.on("data", (chunk) => {
        sent += chunk.length;
        onProgress(sent, total);
      });
      source.on("error", (err) => req.destroy(err));
      source.pipe(req);
    });
  }

  /** GETs `path` and pipes a successful body into `sink` as it arrives (it is not ended); errors are coded. */
  async download(path: string, sink: NodeJS.WritableStream): Promise<void> {
    const url = new URL(path, this.baseUrl);
    return new Promise<void>((resolve, reject) => {
      const req = https.request(
        url,
        {
          method: "GET",
          ca: this.ca,
          headers: { ...(this.authorization && { authorization: this.authorization }) },
          timeout: 30_000,
        },
        (res) => {
          if ((res.statusCode ?? 500) < 400) {
            res.pipe(sink, { end: false });
            res.on("end", () => resolve());
            res.on("error", reject);
            return;
          }
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            reject(apiError(res.statusCode ?? 500, safeJson(Buffer.concat(chunks).toString("utf8"))));
          });
        },
      );
      req.on("timeout", () => req.destroy(new Error("request timed out")));
      req.on("error", (err) =>
        reject(new FieldgateError("CLOUD_UNREACHABLE", `cannot reach ${this.baseUrl.origin}: ${err.message}`, "url")),
      );
      req.end();
    });
  }
}

/**
 * The cloud's API URL: https with a host. `source` is where it came from (a flag, a variable or a
 * file), so the error names what to fix; `localhost:9443` and `http://…` get the https form to use.
 */
export function parseCloudUrl(value: string, source: string): URL {
  const expected = "expected the cloud's https URL, like https://cloud.example:8443";
  const fail = (why: string) =>
    new FieldgateError("CONFIG_INVALID", `${source} ${JSON.stringify(value)}: ${why}; ${expected}`, "url");
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    throw fail("not a URL");
  }
  if (parsed.protocol === "http:") throw fail(`the API is HTTPS only: use https://${parsed.host}`);
  // `localhost:9443` parses as the scheme "localhost:": a host and port without https://.
  if (parsed.protocol !== "https:") {
    const hint = /^[\w.-]+:\d+/.test(value) ? `: use https://${value}` : "";
    throw fail(`the scheme must be https${hint}`);
  }
  if (!parsed.hostname) throw fail("no host");
  return parsed;
}

/** The CA certificate to trust; an unreadable file or one without a certificate names --ca-file. */
function readCa(file: string | undefined): string | undefined {
  if (file === undefined) return undefined;
  const expected = "expected the cloud's CA certificate (PEM), <data-dir>/pki/ca.crt on the cloud host";
  let pem: string;
  try {
    pem = fs.readFileSync(file, "utf8");
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new FieldgateError(
      "CONFIG_INVALID",
      `--ca-file ${JSON.stringify(file)}: cannot read it (${why}); ${expected}`,
      "ca-file",
    );
  }
  if (!pem.includes("-----BEGIN CERTIFICATE-----")) {
    throw new FieldgateError(
      "CONFIG_INVALID",
      `--ca-file ${JSON.stringify(file)}: holds no PEM certificate; ${expected}`,
      "ca-file",
    );
  }
  return pem;
}

function readJson<T>(file: string): T | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, "utf8")) as T;
  } catch {
    return undefined;
  }
}

/** The codes of HTTP answers without a fieldgate error body (a proxy's, or the HTTP layer's own). */
const STATUS_CODES: Record<number, ErrorCode> = {
  400: "VALIDATION_FAILED",
  401: "AUTH_REQUIRED",
  403: "FORBIDDEN",
  404: "NOT_FOUND",
  413: "VALIDATION_FAILED",
  414: "VALIDATION_FAILED",
  431: "VALIDATION_FAILED",
};

/** A failed answer as a coded error: the cloud's own `{ error }` body, else a code for the HTTP status. */
function apiError(status: number, json: unknown): FieldgateError {
  const error = (json as { error?: { code?: string; message?: string; field?: string } } | undefined)?.error;
  if (error && isErrorCode(error.code)) return new FieldgateError(error.code, error.message, error.field);
  const code = STATUS_CODES[status] ?? "INTERNAL";
  const hint = status === 414 || status === 431 ? ": an argument is too long" : "";
  return new FieldgateError(code, `the cloud answered HTTP ${status}${hint}`);
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

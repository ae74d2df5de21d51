import fs from "node:fs";
import https from "node:https";
import { type ErrorCode, FieldgateError, isErrorCode } from "@fieldgate/shared";
import { dataFiles, type RuntimeInfo } from "../config/data-files.js";

export interface ConnectionOptions {
  url?: string;
  credential?: string;
  caFile?: string;
  dataDir?: string;
}

/** The operator CLI's HTTPS client: credentials from flags, then FIELDGATE_* variables, then the local data dir. */
export class ApiClient {
  private constructor(
    private readonly baseUrl: URL,
    private readonly authorization: string,
    private readonly ca: string | undefined,
  ) {}

  static fromOptions(options: ConnectionOptions, env: NodeJS.ProcessEnv = process.env): ApiClient {
    const files = dataFiles(options.dataDir ?? env.FIELDGATE_DATA_DIR ?? "./data");
    const local = readJson<{ credentialId: string; secret: string; caFile?: string }>(files.adminCredential);
    const runtime = readJson<RuntimeInfo>(files.runtime);
    const url = options.url ?? env.FIELDGATE_URL ?? runtime?.url;
    if (!url) {
      throw new FieldgateError(
        "CONFIG_INVALID",
        `no cloud URL: pass --url, set FIELDGATE_URL, or run on the cloud host (no ${files.runtime})`,
        "url",
      );
    }
    const credential =
      options.credential ?? env.FIELDGATE_CREDENTIAL ?? (local ? `${local.credentialId}:${local.secret}` : undefined);
    if (!credential?.includes(":")) {
      throw new FieldgateError(
        "AUTH_REQUIRED",
        `no API credential: pass --credential id:secret, set FIELDGATE_CREDENTIAL, or run on the cloud host (no ${files.adminCredential})`,
        "credential",
      );
    }
    const caFile = options.caFile ?? env.FIELDGATE_CA_FILE ?? (fs.existsSync(files.caCert) ? files.caCert : undefined);
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new FieldgateError("CONFIG_INVALID", `not a URL: ${url}`, "url");
    }
    return new ApiClient(
      parsed,
      `Basic ${Buffer.from(credential).toString("base64")}`,
      caFile ? fs.readFileSync(caFile, "utf8") : undefined,
    );
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const url = new URL(path, this.baseUrl);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise<T>((resolve, reject) => {
      const req = https.request(
        url,
        {
          method,
          ca: this.ca,
          headers: {
            authorization: this.authorization,
            accept: "application/json",
            ...(payload ? { "content-type": "application/json", "content-length": payload.length } : {}),
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
              const error = (json as { error?: { code?: string; message?: string; field?: string } } | undefined)
                ?.error;
              const code: ErrorCode = isErrorCode(error?.code) ? error.code : "INTERNAL";
              reject(new FieldgateError(code, error?.message ?? `HTTP ${res.statusCode}`, error?.field));
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
}

function readJson<T>(file: string): T | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, "utf8")) as T;
  } catch {
    return undefined;
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

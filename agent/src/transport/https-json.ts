import { request } from "node:https";
import { FieldgateError } from "@fieldgate/shared";

/** TLS material for a call to the cloud API: the CA to trust, and for mTLS the device's key and certificate. */
export interface HttpsTrust {
  ca?: string | Buffer;
  key?: string;
  cert?: string;
}

/**
 * POSTs JSON to the cloud API and returns the status with the parsed body (undefined if not JSON).
 * `node:https` rather than fetch: only it can pin a private CA and present a client certificate per
 * request. Network and TLS failures become `CLOUD_UNREACHABLE`, naming the cause.
 */
export function postJson(
  url: URL,
  body: unknown,
  trust: HttpsTrust = {},
  timeoutMs = 15_000,
): Promise<{ status: number; json: unknown }> {
  const payload = Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: "POST",
        headers: { "content-type": "application/json", "content-length": payload.length },
        ...(trust.ca !== undefined && { ca: trust.ca }),
        ...(trust.key !== undefined && { key: trust.key, cert: trust.cert }),
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", (err) => reject(unreachable(url, err)));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let json: unknown;
          try {
            json = text ? JSON.parse(text) : undefined;
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, json });
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on("error", (err) => reject(unreachable(url, err)));
    req.end(payload);
  });
}

/** `/api/v1/…` below a configured base URL, whatever trailing slashes it has. */
export function apiUrl(base: string, path: string): URL {
  return new URL(path, `${base.replace(/\/+$/, "")}/`);
}

function unreachable(url: URL, err: Error): FieldgateError {
  const code = (err as NodeJS.ErrnoException).code;
  const tls = code?.startsWith("ERR_TLS") || /certificate|self.signed|SSL/i.test(err.message);
  const hint = tls ? " (TLS: check cloud.caFile and the server certificate)" : "";
  return new FieldgateError("CLOUD_UNREACHABLE", `cannot reach ${url.origin}: ${code ?? err.message}${hint}`);
}

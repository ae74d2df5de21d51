import { request } from "node:http";

/** A failed call to the agent's local API; `code` is the socket error (`ENOENT`, `ECONNREFUSED`) or `HTTP_<status>`. */
export class LocalApiCallError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "LocalApiCallError";
  }
}

/** GETs a JSON document from the running agent over its Unix socket (what the agent CLI uses). */
export function getFromLocalApi<T>(socket: string, path: string, timeoutMs = 5000): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const req = request({ socketPath: socket, path, method: "GET", timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        if (res.statusCode !== 200) {
          reject(
            new LocalApiCallError(
              `HTTP_${res.statusCode}`,
              `the agent answered ${res.statusCode}: ${text.slice(0, 200)}`,
            ),
          );
          return;
        }
        try {
          resolve(JSON.parse(text) as T);
        } catch {
          reject(new LocalApiCallError("PAYLOAD_MALFORMED", "the agent's answer is not JSON"));
        }
      });
    });
    req.on("timeout", () => req.destroy(new LocalApiCallError("ETIMEDOUT", `no answer within ${timeoutMs}ms`)));
    req.on("error", (err: NodeJS.ErrnoException) =>
      reject(err instanceof LocalApiCallError ? err : new LocalApiCallError(err.code ?? "ERROR", err.message)),
    );
    req.end();
  });
}

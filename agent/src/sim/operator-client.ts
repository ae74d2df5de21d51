import { request } from "node:https";
import { FieldgateError } from "@fieldgate/shared";
import { errorFromAnswer } from "../enrollment/enrollment-client.js";
import { apiUrl } from "../transport/https-json.js";

/** A row of the bulk import report (docs/bulk-csv.md). */
interface ImportRow {
  uuid?: string;
  status: "ok" | "error";
  token?: string;
  code?: string;
  message?: string;
}

/**
 * The cloud's operator REST API as the simulator needs it: registering a fleet the way an operator
 * would with `fieldgate-cloud devices import`, one CSV, each device getting its window and token.
 */
export class OperatorClient {
  constructor(
    private readonly cloudUrl: string,
    private readonly caPem: string,
    private readonly authorization: string,
  ) {}

  /** Registers the devices (atomically) and returns each one's one-time enrollment token. */
  async importDevices(uuids: readonly string[], deviceType?: string): Promise<Map<string, string>> {
    const csv = `uuid\n${uuids.join("\n")}\n`;
    const query = new URLSearchParams({ mode: "atomic", dryRun: "false" });
    if (deviceType) query.set("type", deviceType);
    const report = await this.request<{ applied: boolean; rows: ImportRow[] }>(
      "POST",
      `/api/v1/devices/bulk/import?${query}`,
      csv,
      "text/csv",
    );
    const failed = report.rows.find((r) => r.status !== "ok");
    if (!report.applied || failed) {
      throw new FieldgateError(
        "VALIDATION_FAILED",
        `registering the fleet failed: ${failed?.code ?? "not applied"} ${failed?.message ?? ""}`.trim(),
      );
    }
    const tokens = new Map<string, string>();
    for (const row of report.rows) if (row.uuid && row.token) tokens.set(row.uuid, row.token);
    return tokens;
  }

  request<T>(method: string, path: string, body?: string, contentType = "application/json"): Promise<T> {
    const url = apiUrl(this.cloudUrl, path);
    const payload = body === undefined ? undefined : Buffer.from(body);
    return new Promise<T>((resolve, reject) => {
      const req = request(
        url,
        {
          method,
          ca: this.caPem,
          headers: {
            authorization: this.authorization,
            accept: "application/json",
            ...(payload && { "content-type": contentType, "content-length": payload.length }),
          },
          timeout: 120_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("error", reject);
          res.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8");
            let json: unknown;
            try {
              json = text ? JSON.parse(text) : undefined;
            } catch {
              json = undefined;
            }
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) resolve(json as T);
            else reject(errorFromAnswer(status, json));
          });
        },
      );
      req.on("timeout", () => req.destroy(new Error(`no answer from ${url.origin} in time`)));
      req.on("error", (err) =>
        reject(err instanceof FieldgateError ? err : new FieldgateError("CLOUD_UNREACHABLE", err.message)),
      );
      req.end(payload);
    });
  }
}

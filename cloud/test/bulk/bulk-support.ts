import https from "node:https";
import type { CloudProcess } from "../../../test/support/cloud-process.js";

export interface RowAnswer {
  line: number;
  uuid?: string;
  oldUuid?: string;
  name?: string;
  status: "ok" | "error";
  code?: string;
  field?: string;
  message?: string;
  token?: string;
  windowExpiresAt?: string;
}

export interface ReportAnswer {
  operation: string;
  dryRun: boolean;
  mode: string;
  applied: boolean;
  summary: { ok: number; failed: number };
  rows: RowAnswer[];
  error?: { code: string; message: string; field?: string };
}

/** POSTs a CSV file as text/csv to a bulk route, as an API client other than the CLI would. */
export function postCsv(
  cloud: CloudProcess,
  operation: string,
  csv: string,
  query: Record<string, string> = {},
  authorization?: string,
): Promise<{ status: number; body: ReportAnswer }> {
  const basic = `Basic ${Buffer.from(`${cloud.credential.id}:${cloud.credential.secret}`).toString("base64")}`;
  const payload = Buffer.from(csv, "utf8");
  const url = new URL(`/api/v1/devices/bulk/${operation}?${new URLSearchParams(query)}`, cloud.url);
  return new Promise((resolve, reject) => {
    const req = https.request(
      url,
      {
        method: "POST",
        ca: cloud.caPem,
        headers: {
          authorization: authorization ?? basic,
          "content-type": "text/csv; charset=utf-8",
          "content-length": payload.length,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString("utf8")) }),
        );
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

/** A credential with `role` scoped to a new group, and that group's id. */
export async function scopedCredential(
  cloud: CloudProcess,
  groupName: string,
  role = "device-manager",
): Promise<{ groupId: number; authorization: string }> {
  const group = await cloud.api<{ id: number }>("POST", "/api/v1/groups", { name: groupName });
  if (group.status !== 201) throw new Error(`group: ${group.status} ${group.text}`);
  const created = await cloud.api<{ credential: { id: string }; secret: string }>("POST", "/api/v1/credentials", {
    name: `${groupName}-cred`,
    group: group.body.id,
    role,
  });
  if (created.status !== 201) throw new Error(`credential: ${created.status} ${created.text}`);
  const pair = `${created.body.credential.id}:${created.body.secret}`;
  return { groupId: group.body.id, authorization: `Basic ${Buffer.from(pair).toString("base64")}` };
}

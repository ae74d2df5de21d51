import https from "node:https";
import type { CloudProcess } from "./cloud-process.js";

/**
 * Agent health settings for update tests: CONFIRMING waits for `ok`, and a busy CI host must not
 * read as unhealthy and roll the update back.
 */
export const LENIENT_HEALTH = {
  diskFreeWarnPct: 0,
  diskFreeCritPct: 0,
  memoryUsedWarnPct: 100,
  memoryUsedCritPct: 100,
  loadPerCoreWarn: 1000,
  loadPerCoreCrit: 1000,
  checkInterval: "500ms",
};

/** Uploads an image as the cloud's admin (`query`: name, version, compatible). */
export function uploadImage(
  cloud: CloudProcess,
  query: string,
  body: Buffer,
): Promise<{ status: number; text: string }> {
  const auth = `Basic ${Buffer.from(`${cloud.credential.id}:${cloud.credential.secret}`).toString("base64")}`;
  return new Promise((resolve, reject) => {
    const req = https.request(new URL(`/api/v1/firmware?${query}`, cloud.url), {
      method: "POST",
      ca: cloud.caPem,
      headers: { "content-type": "application/octet-stream", "content-length": body.length, authorization: auth },
    });
    req.on("response", (res) => {
      let text = "";
      res.on("data", (c: Buffer) => {
        text += c.toString("utf8");
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CloudProcess, startCloud } from "../../../test/support/cloud-process.js";
import { newUuid } from "../../../test/support/device-identity.js";
import { postCsv } from "./bulk-support.js";

describe("bulk import at fleet scale", () => {
  let cloud: CloudProcess;
  beforeAll(async () => {
    cloud = await startCloud();
  });
  afterAll(() => cloud.stop());

  it("imports 10,000 devices in one request, each with its own token, then deletes them row by row", async () => {
    const group = (await cloud.api<{ id: number }>("POST", "/api/v1/groups", { name: "series-10k" })).body;
    const uuids = Array.from({ length: 10_000 }, () => newUuid());
    const csv = `uuid,location,tags\r\n${uuids.map((u) => `${u},"hall 7, rack 3",batch-1;series`).join("\r\n")}\r\n`;

    const imported = await postCsv(cloud, "import", csv, { group: String(group.id), namePrefix: "s10k-" });
    expect(imported.status).toBe(200);
    expect(imported.body).toMatchObject({ applied: true, summary: { ok: 10_000, failed: 0 } });
    expect(imported.body.rows.at(-1)).toMatchObject({ line: 10_001, uuid: uuids.at(-1), name: "s10k-10000" });
    expect(new Set(imported.body.rows.map((r) => r.token)).size).toBe(10_000);

    const view = await cloud.api<{ devices: number }>("GET", `/api/v1/groups/${group.id}`);
    expect(view.body.devices).toBe(10_000);
    const listed = await cloud.api<{ total: number; items: { uuid: string }[] }>(
      "GET",
      "/api/v1/devices?q=s10k-&limit=1000",
    );
    expect(listed.body.total).toBe(10_000);
    const sample = await cloud.api<{ name: string; tags: string[]; window: { open: boolean } }>(
      "GET",
      `/api/v1/devices/${uuids[4321]}`,
    );
    expect(sample.body).toMatchObject({ name: "s10k-4322", tags: ["batch-1", "series"], window: { open: true } });

    // Rows mode commits in chunks; every row still gets its own result.
    const deleted = await postCsv(cloud, "delete", `uuid\n${uuids.join("\n")}\n`, { mode: "rows" });
    expect(deleted.body).toMatchObject({ applied: true, summary: { ok: 10_000, failed: 0 } });
    expect((await cloud.api<{ devices: number }>("GET", `/api/v1/groups/${group.id}`)).body.devices).toBe(0);
  });
});

import { execFile } from "node:child_process";
import type { IncomingHttpHeaders } from "node:http";
import https from "node:https";
import path from "node:path";
import { promisify } from "node:util";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CloudProcess, cloudBin, startCloud } from "../../../test/support/cloud-process.js";
import { parseCsv } from "../../../test/support/csv.js";
import { newUuid } from "../../../test/support/device-identity.js";

type Reading = {
  ts: string;
  name: string;
  value: number | string | boolean;
  unit: string | null;
  source: string | null;
  stream: string;
  seq: number;
};
type Err = { error: { code: string; field?: string; message: string } };

const BASE = Date.parse("2026-03-01T00:00:00Z");

/** A GET's status, headers and whole body. */
function get(
  cloud: CloudProcess,
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: IncomingHttpHeaders; text: string }> {
  const auth = `Basic ${Buffer.from(`${cloud.credential.id}:${cloud.credential.secret}`).toString("base64")}`;
  return new Promise((resolve, reject) => {
    https
      .get(new URL(url, cloud.url), { ca: cloud.caPem, headers: { authorization: auth, ...headers } }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString("utf8") }),
        );
      })
      .on("error", reject);
  });
}

describe("GET /api/v1/devices/:uuid/telemetry as CSV", () => {
  let cloud: CloudProcess;
  const uuid = newUuid();
  const big = newUuid();

  beforeAll(async () => {
    cloud = await startCloud();
    for (const u of [uuid, big]) expect((await cloud.api("POST", "/api/v1/devices", { uuid: u })).status).toBe(201);
    // Readings written as ingest stores them: value ANY, kind 2 for booleans.
    const db = new Database(path.join(cloud.dataDir, "fieldgate.db"));
    db.pragma("busy_timeout = 5000");
    const idOf = (u: string) => (db.prepare("SELECT id FROM devices WHERE uuid = ?").get(u) as { id: number }).id;
    const insert = db.prepare(
      "INSERT INTO telemetry (device_id, ts, name, value, kind, unit, source, stream, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    );
    db.transaction(() => {
      const small = idOf(uuid);
      insert.run(small, BASE + 1000, "temp", -4.5, 0, "C", null, "main", 1);
      insert.run(small, BASE + 2000, "=HYPERLINK(1)", 'say "hi", then\nleave', 1, null, "modbus-1", "main", 2);
      insert.run(small, BASE + 3000, "door", 1, 2, null, null, "main", 3);
      insert.run(small, BASE + 3000, "temp", 21, 0, "C", "modbus-1", "main", 4);
      insert.run(small, BASE + 9000, "temp", 22, 0, "C", null, "main", 5);
      const many = idOf(big);
      for (let i = 0; i < 100_000; i++) insert.run(many, BASE + i, "temp", i % 50, 0, "C", null, "main", i + 1);
    })();
    db.close();
  });
  afterAll(() => cloud.stop());

  it("answers a range as CSV equal to the JSON, oldest first, with formula guard and RFC 4180 quoting", async () => {
    const range = `from=${new Date(BASE).toISOString()}&to=${new Date(BASE + 5000).toISOString()}`;
    const json = await cloud.api<{ items: Reading[] }>("GET", `/api/v1/devices/${uuid}/telemetry?${range}`);
    expect(json.status).toBe(200);
    expect(json.body.items).toHaveLength(4);
    const csv = await get(cloud, `/api/v1/devices/${uuid}/telemetry?${range}&format=csv`);
    expect(csv.status).toBe(200);
    expect(csv.headers["content-type"]).toBe("text/csv; charset=utf-8");
    expect(csv.headers["content-disposition"]).toBe(`attachment; filename="${uuid}-telemetry.csv"`);
    const [header, ...rows] = parseCsv(csv.text);
    expect(header).toEqual(["ts", "name", "value", "unit", "source", "stream", "seq"]);
    const guard = (cell: string) => (/^[=+\-@\t\r]/.test(cell) ? `'${cell}` : cell);
    expect(rows).toEqual(
      [...json.body.items]
        .reverse()
        .map((r) => [
          r.ts,
          guard(r.name),
          typeof r.value === "string" ? guard(r.value) : String(r.value),
          r.unit ?? "",
          r.source ?? "",
          r.stream,
          String(r.seq),
        ]),
    );
    // A number stays a number, a name a spreadsheet would run is defused, quotes and breaks are quoted.
    expect(rows[0]?.[2]).toBe("-4.5");
    expect(rows[1]?.[1]).toBe("'=HYPERLINK(1)");
    expect(rows[1]?.[2]).toBe('say "hi", then\nleave');
    expect(rows[2]?.[2]).toBe("true");
    expect(csv.text).toContain('"say ""hi"", then\nleave"');

    // Accept: text/csv asks for the same; the filters apply alike; JSON stays the default.
    const accepted = await get(cloud, `/api/v1/devices/${uuid}/telemetry?${range}`, { accept: "text/csv" });
    expect(accepted.text).toBe(csv.text);
    const named = await get(cloud, `/api/v1/devices/${uuid}/telemetry?format=csv&name=temp&source=modbus-1`);
    expect(parseCsv(named.text).slice(1)).toEqual([
      [new Date(BASE + 3000).toISOString(), "temp", "21", "C", "modbus-1", "main", "4"],
    ]);
    const plain = await get(cloud, `/api/v1/devices/${uuid}/telemetry`);
    expect(plain.headers["content-type"]).toMatch(/^application\/json/);
    expect((JSON.parse(plain.text) as { items: Reading[] }).items).toHaveLength(5);
  });

  it("refuses a bad format naming the field, and an unknown device as JSON errors", async () => {
    const bad = await cloud.api<Err>("GET", `/api/v1/devices/${uuid}/telemetry?format=xml`);
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatchObject({ code: "VALIDATION_FAILED", field: "format" });
    const missing = await cloud.api<Err>("GET", `/api/v1/devices/${newUuid()}/telemetry?format=csv`);
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe("DEVICE_NOT_FOUND");
    const backwards = await cloud.api<Err>(
      "GET",
      `/api/v1/devices/${uuid}/telemetry?format=csv&from=${new Date(BASE + 5000).toISOString()}&to=${new Date(BASE).toISOString()}`,
    );
    expect(backwards.status).toBe(400);
    expect(backwards.body.error.field).toBe("from");
  });

  it("streams the whole range, past the JSON limit of 10,000: 100,000 rows in time order", async () => {
    const csv = await get(cloud, `/api/v1/devices/${big}/telemetry?format=csv`);
    expect(csv.status).toBe(200);
    const lines = csv.text.split("\r\n");
    expect(lines.at(-1)).toBe("");
    expect(lines.length - 2).toBe(100_000);
    expect(lines[1]).toBe(`${new Date(BASE).toISOString()},temp,0,C,,main,1`);
    expect(lines[100_000]).toBe(`${new Date(BASE + 99_999).toISOString()},temp,49,C,,main,100000`);
  });

  it("writes the CSV to stdout from the CLI, and refuses a bad --format", async () => {
    const run = promisify(execFile);
    const env = {
      ...process.env,
      FIELDGATE_URL: cloud.url,
      FIELDGATE_CREDENTIAL: `${cloud.credential.id}:${cloud.credential.secret}`,
      FIELDGATE_CA_FILE: cloud.caFile,
    };
    const out = await run(process.execPath, [cloudBin, "devices", "telemetry", uuid, "--format", "csv"], { env });
    const api = await get(cloud, `/api/v1/devices/${uuid}/telemetry?format=csv`);
    expect(out.stdout).toBe(api.text);
    const refused = await run(process.execPath, [cloudBin, "devices", "telemetry", uuid, "--format", "xml"], {
      env,
    }).catch((err: { code: number; stderr: string }) => err);
    expect((refused as { code: number }).code).toBe(2);
    expect((refused as { stderr: string }).stderr).toMatch(/VALIDATION_FAILED.*format/);
  });
});

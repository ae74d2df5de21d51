import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CloudProcess, eventually, httpsJson, startCloud } from "../../../test/support/cloud-process.js";
import { connectDevice, enrollWithToken, newUuid } from "../../../test/support/device-identity.js";

type ErrorAnswer = { error: { code: string; message: string; field?: string } };
type ListAnswer = { items: { uuid: string; name: string }[]; total: number; limit: number; offset: number };

describe("device list filters, sorting, paging and export", () => {
  let cloud: CloudProcess;
  let client: MqttClient;
  const uuids = { alpha: "", beta: "", gamma: "" };
  let plant: { id: number };
  let line: { id: number };
  let other: { id: number };
  let typeId: number;
  let connectedAt: string;

  const create = async (body: Record<string, unknown>) => {
    const res = await cloud.api<{ device: { uuid: string }; enrollmentToken: string }>("POST", "/api/v1/devices", body);
    if (res.status !== 201) throw new Error(`create failed: ${res.status} ${res.text}`);
    return res.body;
  };
  /** The short names of the devices a list query returns, in order. */
  const names = async (query: string, auth?: string) => {
    const res = await cloud.api<ListAnswer>("GET", `/api/v1/devices?${query}`, undefined, auth ?? true);
    expect(res.status, res.text).toBe(200);
    return res.body.items.map((d) => d.name);
  };

  beforeAll(async () => {
    cloud = await startCloud();
    const group = async (body: Record<string, unknown>) =>
      (await cloud.api<{ id: number }>("POST", "/api/v1/groups", body)).body;
    plant = await group({ name: "plant" });
    line = await group({ name: "line", parent: plant.id });
    other = await group({ name: "other" });
    typeId = (await cloud.api<{ id: number }>("POST", "/api/v1/device-types", { name: "sensor" })).body.id;

    const alpha = await create({
      uuid: newUuid(),
      name: "alpha-pump",
      location: "hall 1",
      tags: ["red", "blue"],
      group: plant.id,
      type: "sensor",
    });
    uuids.alpha = alpha.device.uuid;
    uuids.beta = (
      await create({ uuid: newUuid(), name: "beta-valve", location: "hall 2", tags: ["blue"], group: line.id })
    ).device.uuid;
    uuids.gamma = (
      await create({ uuid: newUuid(), name: "=1+1", comment: "formula", tags: ["green"], group: other.id })
    ).device.uuid;

    // alpha comes online and reports health and firmware, as an agent would.
    connectedAt = new Date(Date.now() - 1000).toISOString();
    const identity = await enrollWithToken(cloud, uuids.alpha, alpha.enrollmentToken);
    client = await connectDevice(cloud, identity, uuids.alpha);
    const root = `fieldgate/v1/${uuids.alpha}`;
    await client.publishAsync(
      `${root}/health`,
      JSON.stringify({ v: 1, ts: Date.now(), status: "critical", checks: [] }),
      {
        qos: 1,
      },
    );
    await client.publishAsync(
      `${root}/state`,
      JSON.stringify({ v: 1, ts: Date.now(), agentVersion: "0.1.0", firmwareVersion: "2.1.0" }),
      { qos: 1 },
    );
    await eventually(async () => ((await names("firmwareVersion=2.1.0")).length === 1 ? true : undefined));
  });
  afterAll(async () => {
    client?.end(true);
    await cloud.stop();
  });

  it("filters on each column, each with a matching and a non-matching value", async () => {
    const cases: [string, string[]][] = [
      [`uuid=${uuids.alpha.slice(0, 13).toUpperCase()}`, ["alpha-pump"]],
      [`uuid=${uuids.beta}`, ["beta-valve"]],
      ["uuid=ffffffff-ffff", []],
      ["name=ALPHA", ["alpha-pump"]],
      ["name=delta", []],
      ["location=hall%202", ["beta-valve"]],
      ["location=hall%203", []],
      ["tag=blue", ["alpha-pump", "beta-valve"]],
      ["tag=blue&tag=red", ["alpha-pump"]],
      ["tag=purple", []],
      ["type=sensor", ["alpha-pump"]],
      [`type=${typeId}`, ["alpha-pump"]],
      ["type=actuator", []],
      [`group=${plant.id}`, ["alpha-pump"]],
      ["group=plant", ["alpha-pump"]],
      ["group=plant&includeSubgroups=true", ["alpha-pump", "beta-valve"]],
      ["group=plant/line", ["beta-valve"]],
      [`group=${other.id}&includeSubgroups=true`, ["=1+1"]],
      ["status=critical", ["alpha-pump"]],
      ["status=ok", []],
      ["online=true", ["alpha-pump"]],
      ["online=false", ["beta-valve", "=1+1"]],
      [`lastSeenFrom=${encodeURIComponent(connectedAt)}`, ["alpha-pump"]],
      ["lastSeenFrom=2999-01-01T00:00:00Z", []],
      [`lastSeenTo=${encodeURIComponent(connectedAt)}`, []],
      ["lastSeenTo=2999-01-01T00:00:00Z", ["alpha-pump"]],
      ["firmwareVersion=2.1.0", ["alpha-pump"]],
      ["firmwareVersion=9.9.9", []],
      ["q=valve", ["beta-valve"]],
      ["q=formula", ["=1+1"]],
      ["q=nothing-like-this", []],
      ["tag=blue&online=false&group=plant&includeSubgroups=true", ["beta-valve"]],
    ];
    for (const [query, expected] of cases) expect(await names(query), query).toEqual(expected);
  });

  it("sorts by a column ascending or, with -, descending", async () => {
    expect(await names("sort=name")).toEqual(["=1+1", "alpha-pump", "beta-valve"]);
    expect(await names("sort=-name")).toEqual(["beta-valve", "alpha-pump", "=1+1"]);
    // Ties keep the reverse of their creation order: descending reverses the whole order.
    expect(await names("sort=-status")).toEqual(["alpha-pump", "=1+1", "beta-valve"]);
    expect(await names("sort=status")).toEqual(["beta-valve", "=1+1", "alpha-pump"]);
    expect(await names("sort=createdAt")).toEqual(["alpha-pump", "beta-valve", "=1+1"]);
    expect(await names("sort=-createdAt")).toEqual(["=1+1", "beta-valve", "alpha-pump"]);
  });

  it("pages with limit and offset, reporting the total", async () => {
    const page = await cloud.api<ListAnswer>("GET", "/api/v1/devices?sort=name&limit=1&offset=1");
    expect(page.body).toMatchObject({ total: 3, limit: 1, offset: 1 });
    expect(page.body.items.map((d) => d.name)).toEqual(["alpha-pump"]);
    expect(await names("sort=name&limit=2&offset=2")).toEqual(["beta-valve"]);
  });

  it("refuses bad filters with VALIDATION_FAILED naming the field, and an unknown group with GROUP_NOT_FOUND", async () => {
    const cases: [string, string][] = [
      ["sort=health", "sort"],
      ["sort=name;drop", "sort"],
      ["status=red", "status"],
      ["online=maybe", "online"],
      ["lastSeenFrom=yesterday", "lastSeenFrom"],
      ["lastSeenFrom=2026-01-02T00:00:00Z&lastSeenTo=2026-01-01T00:00:00Z", "lastSeenFrom"],
      ["uuid=not%20hex", "uuid"],
      ["tag=no%20spaces", "tag[0]"],
      ["colour=red", "colour"],
    ];
    for (const [query, field] of cases) {
      const res = await cloud.api<ErrorAnswer>("GET", `/api/v1/devices?${query}`);
      expect(res.status, query).toBe(400);
      expect(res.body.error, query).toMatchObject({ code: "VALIDATION_FAILED", field });
    }
    const missing = await cloud.api<ErrorAnswer>("GET", "/api/v1/devices?group=nowhere");
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe("GROUP_NOT_FOUND");
  });

  it("exports CSV with a header, the chosen columns, and formula cells escaped", async () => {
    const res = await cloud.api(
      "GET",
      "/api/v1/devices/export?format=csv&columns=name,tags,group,online,status&sort=name",
    );
    expect(res.status).toBe(200);
    expect(res.text).toBe(
      [
        "name,tags,group,online,status",
        "'=1+1,green,default/other,false,",
        "alpha-pump,red blue,default/plant,true,critical",
        "beta-valve,blue,default/plant/line,false,",
        "",
      ].join("\r\n"),
    );
  });

  it("exports JSON with the same filters as the list", async () => {
    const res = await cloud.api<Record<string, unknown>[]>(
      "GET",
      "/api/v1/devices/export?format=json&columns=uuid,firmwareVersion,type,lastSeen&tag=red",
    );
    expect(res.status).toBe(200);
    expect(res.body).toEqual([
      { uuid: uuids.alpha, firmwareVersion: "2.1.0", type: "sensor", lastSeen: expect.any(String) },
    ]);
    const none = await cloud.api<unknown[]>("GET", "/api/v1/devices/export?format=json&tag=purple");
    expect(none.body).toEqual([]);
  });

  it("refuses more than eight columns, or an unknown one, before streaming", async () => {
    const nine = "uuid,name,location,comment,tags,group,type,status,online";
    for (const columns of [nine, "uuid,colour"]) {
      const res = await cloud.api<ErrorAnswer>("GET", `/api/v1/devices/export?columns=${columns}`);
      expect(res.status, columns).toBe(400);
      expect(res.body.error, columns).toMatchObject({ code: "VALIDATION_FAILED", field: "columns" });
    }
    const format = await cloud.api<ErrorAnswer>("GET", "/api/v1/devices/export?format=xlsx");
    expect(format.body.error).toMatchObject({ code: "VALIDATION_FAILED", field: "format" });
  });

  it("shows a credential scoped to a sub-group nothing outside it, in the list and the export", async () => {
    const made = await cloud.api<{ credential: { id: string }; secret: string }>("POST", "/api/v1/credentials", {
      name: "plant-viewer",
      group: plant.id,
      role: "viewer",
    });
    expect(made.status, made.text).toBe(201);
    const auth = `Basic ${Buffer.from(`${made.body.credential.id}:${made.body.secret}`).toString("base64")}`;
    expect(await names("sort=name", auth)).toEqual(["alpha-pump", "beta-valve"]);
    // A group outside the scope reads as one that does not exist; one above it lists what is in scope.
    const unknown = await cloud.api("GET", "/api/v1/devices?group=987654", undefined, auth);
    for (const query of [`group=${other.id}`, `group=${other.id}&includeSubgroups=true`]) {
      const res = await cloud.api("GET", `/api/v1/devices?${query}`, undefined, auth);
      expect(res.status).toBe(404);
      expect(res.text.replace(String(other.id), "987654")).toBe(unknown.text);
    }
    expect(await names("group=default&includeSubgroups=true&sort=name", auth)).toEqual(["alpha-pump", "beta-valve"]);
    expect(await names("q=formula", auth)).toEqual([]);
    const exported = await cloud.api("GET", "/api/v1/devices/export?columns=name&sort=name", undefined, auth);
    expect(exported.text).toBe("name\r\nalpha-pump\r\nbeta-valve\r\n");
    const outside = await cloud.api("GET", `/api/v1/devices/export?columns=name&group=${other.id}`, undefined, auth);
    expect(outside.status).toBe(404);
  });

  it("streams an export of thousands of devices, every one exactly once, in order", async () => {
    const bulk = (await cloud.api<{ id: number }>("POST", "/api/v1/groups", { name: "bulk" })).body;
    const count = 3000;
    const made: string[] = [];
    for (let start = 0; start < count; start += 50) {
      await Promise.all(
        Array.from({ length: Math.min(50, count - start) }, async (_, i) => {
          const uuid = newUuid();
          made.push(uuid);
          await create({ uuid, name: `bulk-${String(start + i).padStart(5, "0")}`, group: bulk.id, tags: ["bulk"] });
        }),
      );
    }
    const res = await httpsJson<unknown>(
      cloud.url,
      cloud.caPem,
      "GET",
      `/api/v1/devices/export?format=csv&columns=name,uuid&group=${bulk.id}&sort=-name`,
      undefined,
      `Basic ${Buffer.from(`${cloud.credential.id}:${cloud.credential.secret}`).toString("base64")}`,
    );
    expect(res.status).toBe(200);
    const lines = res.text.split("\r\n");
    expect(lines[0]).toBe("name,uuid");
    expect(lines.at(-1)).toBe("");
    const rows = lines.slice(1, -1).map((l) => l.split(","));
    expect(rows).toHaveLength(count);
    expect(rows.map((r) => r[0])).toEqual(
      Array.from({ length: count }, (_, i) => `bulk-${String(count - 1 - i).padStart(5, "0")}`),
    );
    expect(new Set(rows.map((r) => r[1]))).toEqual(new Set(made));
    const json = await cloud.api<{ name: string }[]>("GET", `/api/v1/devices/export?format=json&columns=name&tag=bulk`);
    expect(json.body).toHaveLength(count);
  });
});

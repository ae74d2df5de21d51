import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CloudProcess, startCloud } from "../../../test/support/cloud-process.js";
import { newUuid, registerDevice } from "../../../test/support/device-identity.js";

type ErrorAnswer = { error: { code: string; message: string; field?: string } };
type DeviceAnswer = { uuid: string; name: string; tags: string[]; window: { open: boolean } };

describe("operator API", () => {
  let cloud: CloudProcess;
  beforeAll(async () => {
    cloud = await startCloud();
  });
  afterAll(() => cloud.stop());

  it("answers 401 AUTH_REQUIRED without a credential, with a wrong secret, and with an unknown id", async () => {
    const none = await cloud.api<ErrorAnswer>("GET", "/api/v1/devices", undefined, false);
    expect(none.status).toBe(401);
    expect(none.body.error.code).toBe("AUTH_REQUIRED");
    const basic = (pair: string) => `Basic ${Buffer.from(pair).toString("base64")}`;
    const wrong = await cloud.api<ErrorAnswer>(
      "GET",
      "/api/v1/devices",
      undefined,
      basic(`${cloud.credential.id}:fgs_wrong`),
    );
    expect(wrong.status).toBe(401);
    const unknown = await cloud.api<ErrorAnswer>(
      "GET",
      "/api/v1/devices",
      undefined,
      basic(`fgc_0000:${cloud.credential.secret}`),
    );
    expect(unknown.status).toBe(401);
    expect(unknown.text).toBe(wrong.text);
    const bearer = await cloud.api(
      "GET",
      "/api/v1/devices",
      undefined,
      `Bearer ${cloud.credential.id}:${cloud.credential.secret}`,
    );
    expect(bearer.status).toBe(200);
  });

  it("rejects bad bodies with 400 VALIDATION_FAILED naming the field", async () => {
    const cases: [unknown, string][] = [
      [{ uuid: "nope" }, "uuid"],
      [{}, "uuid"],
      [{ uuid: newUuid(), name: 42 }, "name"],
      [{ uuid: newUuid(), tags: ["ok", "not ok"] }, "tags[1]"],
      [{ uuid: newUuid(), color: "red" }, "color"],
    ];
    for (const [body, field] of cases) {
      const res = await cloud.api<ErrorAnswer>("POST", "/api/v1/devices", body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error, JSON.stringify(body)).toMatchObject({ code: "VALIDATION_FAILED", field });
      expect(res.body.error.message).toContain(field);
    }
    const notJson = await cloud.api<ErrorAnswer>("POST", "/api/v1/devices", "{oops");
    expect(notJson.status).toBe(400);
    expect(notJson.body.error.code).toBe("PAYLOAD_MALFORMED");
  });

  it("registers a device once: a second add answers 409 DEVICE_EXISTS", async () => {
    const { uuid } = await registerDevice(cloud, { name: "pump-7" });
    const again = await cloud.api<ErrorAnswer>("POST", "/api/v1/devices", { uuid: uuid.toUpperCase() });
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe("DEVICE_EXISTS");
  });

  it("edits a device but never its uuid", async () => {
    const { uuid } = await registerDevice(cloud, { name: "before" });
    const edit = await cloud.api<DeviceAnswer>("PATCH", `/api/v1/devices/${uuid}`, { name: "after", tags: ["hall-3"] });
    expect(edit.status).toBe(200);
    expect(edit.body).toMatchObject({ uuid, name: "after", tags: ["hall-3"] });
    const change = await cloud.api<ErrorAnswer>("PATCH", `/api/v1/devices/${uuid}`, { uuid: newUuid() });
    expect(change.status).toBe(400);
    expect(change.body.error).toMatchObject({ code: "VALIDATION_FAILED", field: "uuid" });
    expect((await cloud.api<DeviceAnswer>("GET", `/api/v1/devices/${uuid}`)).body.name).toBe("after");
  });

  it("answers 404 DEVICE_NOT_FOUND for an unknown uuid, and 400 for a malformed one", async () => {
    const missing = await cloud.api<ErrorAnswer>("GET", `/api/v1/devices/${newUuid()}`);
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe("DEVICE_NOT_FOUND");
    const bad = await cloud.api<ErrorAnswer>("GET", "/api/v1/devices/not-a-uuid");
    expect(bad.status).toBe(400);
    expect(bad.body.error.field).toBe("uuid");
  });

  it("filters with q and pages with limit and offset", async () => {
    const marker = `site-${Date.now()}`;
    for (let i = 0; i < 3; i++) await registerDevice(cloud, { name: `${marker}-${i}`, location: "north" });
    const page1 = await cloud.api<{ items: DeviceAnswer[]; total: number }>(
      "GET",
      `/api/v1/devices?q=${marker}&limit=2`,
    );
    expect(page1.body.total).toBe(3);
    expect(page1.body.items.map((d) => d.name)).toEqual([`${marker}-0`, `${marker}-1`]);
    const page2 = await cloud.api<{ items: DeviceAnswer[] }>("GET", `/api/v1/devices?q=${marker}&limit=2&offset=2`);
    expect(page2.body.items.map((d) => d.name)).toEqual([`${marker}-2`]);
    const badLimit = await cloud.api<ErrorAnswer>("GET", "/api/v1/devices?limit=0");
    expect(badLimit.body.error).toMatchObject({ code: "VALIDATION_FAILED", field: "limit" });
    // LIKE wildcards in q are literal.
    expect((await cloud.api<{ total: number }>("GET", "/api/v1/devices?q=%25")).body.total).toBe(0);
  });

  it("deletes a device and lets its uuid be added again", async () => {
    const { uuid } = await registerDevice(cloud);
    expect((await cloud.api("DELETE", `/api/v1/devices/${uuid}`)).status).toBe(204);
    expect((await cloud.api("GET", `/api/v1/devices/${uuid}`)).status).toBe(404);
    expect((await cloud.api("POST", "/api/v1/devices", { uuid })).status).toBe(201);
  });

  it("validates telemetry queries", async () => {
    const { uuid } = await registerDevice(cloud);
    const ok = await cloud.api<{ count: number; items: unknown[] }>("GET", `/api/v1/devices/${uuid}/telemetry?limit=5`);
    expect(ok.body).toMatchObject({ count: 0, items: [] });
    const bad = await cloud.api<ErrorAnswer>("GET", `/api/v1/devices/${uuid}/telemetry?from=yesterday`);
    expect(bad.body.error).toMatchObject({ code: "VALIDATION_FAILED", field: "from" });
    const reversed = await cloud.api<ErrorAnswer>(
      "GET",
      `/api/v1/devices/${uuid}/telemetry?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z`,
    );
    expect(reversed.body.error.field).toBe("from");
  });

  it("serves liveness and the OpenAPI document without credentials", async () => {
    expect((await cloud.api<{ status: string }>("GET", "/api/v1/health", undefined, false)).body.status).toBe("ok");
    const doc = await cloud.api<{ openapi: string; paths: Record<string, unknown> }>(
      "GET",
      "/api/v1/openapi.json",
      undefined,
      false,
    );
    expect(doc.body.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.body.paths)).toEqual(
      expect.arrayContaining([
        "/api/v1/devices",
        "/api/v1/devices/{uuid}",
        "/api/v1/enroll",
        "/api/v1/devices/{uuid}/reset-token",
      ]),
    );
    const unknown = await cloud.api<ErrorAnswer>("GET", "/api/v1/nothing-here", undefined, false);
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe("NOT_FOUND");
  });

  it("prints the admin secret once on the terminal and keeps secrets out of the log", async () => {
    expect(cloud.terminal.join("\n")).toContain(cloud.credential.secret);
    const { token } = await registerDevice(cloud);
    const logs = cloud.logs.join("\n");
    expect(logs).not.toContain(token);
    expect(logs).not.toContain(cloud.credential.secret);
    expect(logs).not.toMatch(/PRIVATE KEY/);
  });
});

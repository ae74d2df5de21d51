import type { MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CloudProcess, eventually, startCloud } from "../../../test/support/cloud-process.js";
import {
  connectDevice,
  type EnrolledDevice,
  enrollWithToken,
  factoryKeyPair,
  newUuid,
  registerAndEnroll,
  registerDevice,
} from "../../../test/support/device-identity.js";
import { postCsv, type ReportAnswer, type RowAnswer, scopedCredential } from "./bulk-support.js";

type DeviceAnswer = {
  uuid: string;
  name: string;
  location: string;
  comment: string;
  tags: string[];
  group: { id: number; fullName: string };
  type: { id: number; name: string } | null;
  hasFactoryKey: boolean;
  telemetryCount: number;
  window: { open: boolean };
};

/** The rows of a report as line → code ("ok" for a good row). */
const outcome = (report: ReportAnswer) => Object.fromEntries(report.rows.map((r) => [r.line, r.code ?? r.status]));

function publish(client: MqttClient, topic: string, payload: string): Promise<void> {
  return new Promise((resolve, reject) =>
    client.publish(topic, payload, { qos: 1 }, (err) => (err ? reject(err) : resolve())),
  );
}

describe("bulk series from CSV (API)", () => {
  let cloud: CloudProcess;
  let plantA: { id: number };
  let plantB: { id: number };
  let pressType: { id: number };
  const device = async (uuid: string) => cloud.api<DeviceAnswer>("GET", `/api/v1/devices/${uuid}`);

  beforeAll(async () => {
    cloud = await startCloud();
    plantA = (await cloud.api<{ id: number }>("POST", "/api/v1/groups", { name: "plant-a" })).body;
    plantB = (await cloud.api<{ id: number }>("POST", "/api/v1/groups", { name: "plant-b" })).body;
    pressType = (await cloud.api<{ id: number }>("POST", "/api/v1/device-types", { name: "press", group: plantA.id }))
      .body;
  });
  afterAll(() => cloud.stop());

  describe("import", () => {
    it("registers a series from a CRLF file with a BOM, quoted commas and a multi-line factory key", async () => {
      const [a, b, c] = [newUuid(), newUuid(), newUuid()];
      const factory = factoryKeyPair();
      const csv =
        "\ufeffuuid,name,location,comment,tags,group,type,factory_public_key\r\n" +
        `${a},press-1,"hall 2, bay 4","says ""hi""",line-a;line-b,plant-a,press,"${factory.publicPem.trim()}"\r\n` +
        "\r\n" +
        `${b.toUpperCase()},press-2,,,,plant-a,,\r\n` +
        `${c},,,,,,,\r\n`;
      const res = await postCsv(cloud, "import", csv);
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ operation: "import", dryRun: false, mode: "atomic", applied: true });
      expect(res.body.summary).toEqual({ ok: 3, failed: 0 });
      // Line numbers are physical lines: the row with the PEM key spans lines 2-5, line 6 is empty.
      expect(res.body.rows.map((r) => [r.line, r.uuid])).toEqual([
        [2, a],
        [7, b],
        [8, c],
      ]);
      for (const row of res.body.rows) {
        expect(row.token).toMatch(/^fgt_[A-Za-z0-9_-]{43}$/);
        expect(Date.parse(row.windowExpiresAt ?? "")).toBeGreaterThan(Date.now());
      }
      const first = (await device(a)).body;
      expect(first).toMatchObject({
        name: "press-1",
        location: "hall 2, bay 4",
        comment: 'says "hi"',
        tags: ["line-a", "line-b"],
        group: { fullName: "default/plant-a" },
        type: { name: "press" },
        hasFactoryKey: true,
        window: { open: true },
      });
      expect((await device(c)).body.group.fullName).toBe("default");
      // The token in the report is the device's one-time enrollment token.
      const enrolled = await enrollWithToken(cloud, b, res.body.rows[1]?.token ?? "");
      expect(enrolled.serial).toBeTruthy();
      // The log never carries the tokens.
      const tokens = res.body.rows.map((r) => r.token ?? "");
      expect(cloud.logs.some((line) => tokens.some((t) => line.includes(t)))).toBe(false);
    });

    it("numbers unnamed rows from --name-prefix after the highest number in use", async () => {
      const prefix = `unit${Date.now()}-`;
      await registerDevice(cloud, { name: `${prefix}7` });
      const [a, b, c] = [newUuid(), newUuid(), newUuid()];
      const res = await postCsv(cloud, "import", `uuid,name\n${a},\n${b},explicit\n${c},\n`, { namePrefix: prefix });
      expect(res.body.rows.map((r) => r.name)).toEqual([`${prefix}8`, "explicit", `${prefix}9`]);
      expect((await device(c)).body.name).toBe(`${prefix}9`);
    });

    it("reports every bad row by line; atomic applies nothing, rows applies the good rows", async () => {
      const existing = (await registerDevice(cloud)).uuid;
      const good = newUuid();
      const good2 = newUuid();
      const csv = [
        "uuid,name,tags,group,type,factory_public_key",
        `${good},good,,,,`,
        `${good.toUpperCase()},dup,,,,`, // 3: the same uuid again
        "not-a-uuid,bad,,,,", // 4
        `${newUuid()},key,,,,not-a-key`, // 5
        `${newUuid()},short,,`, // 6: lacks columns
        `${existing},exists,,,,`, // 7
        `${newUuid()},nogroup,,no-such-group,,`, // 8
        `${newUuid()},notype,,,no-such-type,`, // 9
        `${newUuid()},wrongtype,,plant-b,press,`, // 10: press is defined for plant-a only
        `${newUuid()},badtag,"ok,not ok",,,`, // 11
        `${good2},"good, too",,,,`, // 12
      ].join("\n");
      const expected = {
        2: "ok",
        3: "CSV_DUPLICATE_UUID",
        4: "VALIDATION_FAILED",
        5: "VALIDATION_FAILED",
        6: "CSV_ROW_INVALID",
        7: "DEVICE_EXISTS",
        8: "GROUP_NOT_FOUND",
        9: "TYPE_NOT_FOUND",
        10: "VALIDATION_FAILED",
        11: "VALIDATION_FAILED",
        12: "ok",
      };

      const atomic = await postCsv(cloud, "import", csv);
      expect(atomic.status).toBe(200);
      expect(outcome(atomic.body)).toEqual(expected);
      expect(atomic.body).toMatchObject({ applied: false, summary: { ok: 2, failed: 9 } });
      const byLine = new Map(atomic.body.rows.map((r) => [r.line, r]));
      expect(byLine.get(3)).toMatchObject({ field: "uuid", message: expect.stringContaining("line 2") });
      expect(byLine.get(4)).toMatchObject({ field: "uuid" });
      expect(byLine.get(5)).toMatchObject({ field: "factory_public_key" });
      expect(byLine.get(6)?.message).toContain("line 6 has 4 cell(s) but the header has 6");
      expect(byLine.get(8)).toMatchObject({ field: "group" });
      expect(byLine.get(10)).toMatchObject({ field: "type" });
      expect(byLine.get(11)?.field).toMatch(/^tags/);
      expect(atomic.body.rows.some((r) => r.token)).toBe(false);
      expect((await device(good)).status).toBe(404);
      expect((await device(good2)).status).toBe(404);

      const rows = await postCsv(cloud, "import", csv, { mode: "rows" });
      expect(outcome(rows.body)).toEqual(expected);
      expect(rows.body).toMatchObject({ mode: "rows", applied: true, summary: { ok: 2, failed: 9 } });
      expect(rows.body.rows.filter((r) => r.token).map((r) => r.uuid)).toEqual([good, good2]);
      expect((await device(good)).body.name).toBe("good");
      expect((await device(good2)).body.name).toBe("good, too");
    });

    it("dry run validates and reports but writes nothing and hands out no token", async () => {
      const [a, b] = [newUuid(), newUuid()];
      const res = await postCsv(cloud, "import", `uuid\n${a}\n${b}\n`, { dryRun: "true" });
      expect(res.body).toMatchObject({ dryRun: true, applied: false, summary: { ok: 2, failed: 0 } });
      expect(res.body.rows.some((r) => r.token)).toBe(false);
      expect((await device(a)).status).toBe(404);
    });

    it("refuses malformed files as a whole with CSV_INVALID", async () => {
      const cases: [string, string][] = [
        [`uuid,colour\n${newUuid()},red\n`, 'unknown column "colour"'],
        [`${newUuid()},press\n`, "not a header row"],
        ["name\npress\n", "lacks the required column(s) uuid"],
        ["", "empty"],
        [`uuid,name\n${newUuid()},"unclosed\n`, "never closed"],
      ];
      for (const [csv, reason] of cases) {
        const res = await postCsv(cloud, "import", csv);
        expect(res.status, csv).toBe(400);
        expect(res.body.error?.code).toBe("CSV_INVALID");
        expect(res.body.error?.message).toContain(reason);
      }
      const badMode = await postCsv(cloud, "import", "uuid\n", { mode: "sometimes" });
      expect(badMode.body.error).toMatchObject({ code: "VALIDATION_FAILED", field: "mode" });
    });
  });

  describe("bulk-edit", () => {
    it("sets fields by uuid: an empty cell keeps a value, '-' clears it", async () => {
      const a = (await registerDevice(cloud, { name: "a", location: "old", tags: ["x"], group: plantA.id })).uuid;
      const b = (await registerDevice(cloud, { name: "b", location: "keep", comment: "c", tags: ["y"] })).uuid;
      const csv = `uuid,name,location,comment,tags,type\r\n${a},a2,"hall 1, north",,new-1;new-2,press\r\n${b},,,-,-,\r\n`;
      const res = await postCsv(cloud, "edit", csv);
      expect(res.body).toMatchObject({ applied: true, summary: { ok: 2, failed: 0 } });
      expect((await device(a)).body).toMatchObject({
        name: "a2",
        location: "hall 1, north",
        tags: ["new-1", "new-2"],
        type: { name: "press" },
      });
      expect((await device(b)).body).toMatchObject({ name: "b", location: "keep", comment: "", tags: [] });
      const clear = await postCsv(cloud, "edit", `uuid,type\n${a},-\n`);
      expect(clear.body.summary.ok).toBe(1);
      expect((await device(a)).body.type).toBeNull();
    });

    it("reports bad rows; atomic changes nothing, rows changes the good ones", async () => {
      const a = (await registerDevice(cloud, { name: "edit-a" })).uuid;
      const csv = [
        "uuid,name,type",
        `${a},edit-a2,`,
        `${a},again,`, // 3: duplicate
        `${newUuid()},ghost,`, // 4: unknown
        "bad-uuid,x,", // 5
        `${newUuid()}`, // 6: lacks columns
      ].join("\n");
      const atomic = await postCsv(cloud, "edit", csv);
      expect(outcome(atomic.body)).toMatchObject({
        2: "ok",
        3: "CSV_DUPLICATE_UUID",
        4: "DEVICE_NOT_FOUND",
        5: "VALIDATION_FAILED",
        6: "CSV_ROW_INVALID",
      });
      expect(atomic.body.applied).toBe(false);
      expect((await device(a)).body.name).toBe("edit-a");
      const rows = await postCsv(cloud, "edit", csv, { mode: "rows" });
      expect(rows.body.summary.ok).toBe(1);
      expect((await device(a)).body.name).toBe("edit-a2");
      // A type must be defined in the device's group or above.
      const wrongType = await postCsv(cloud, "edit", `uuid,type\n${a},press\n`);
      expect(wrongType.body.rows[0]).toMatchObject({ code: "VALIDATION_FAILED", field: "type" });
      const nothing = await postCsv(cloud, "edit", `uuid\n${a}\n`);
      expect(nothing.status).toBe(400);
      expect(nothing.body.error?.code).toBe("CSV_INVALID");
    });
  });

  describe("transfer", () => {
    it("moves devices to a group and type, keeping their history by default", async () => {
      const a = (await registerDevice(cloud)).uuid;
      const b = (await registerDevice(cloud)).uuid;
      const res = await postCsv(cloud, "transfer", `uuid\n${a}\n${b}\n`, { toGroup: "plant-a", toType: "press" });
      expect(res.body).toMatchObject({ applied: true, summary: { ok: 2, failed: 0 } });
      for (const uuid of [a, b])
        expect((await device(uuid)).body).toMatchObject({
          group: { fullName: "default/plant-a" },
          type: { name: "press" },
        });
      // Moving on to plant-b without a type is refused: press is not defined there.
      const refused = await postCsv(cloud, "transfer", `uuid\n${a}\n`, { toGroup: String(plantB.id) });
      expect(refused.body.rows[0]).toMatchObject({ code: "VALIDATION_FAILED", field: "type" });
    });

    it("refuses a bad target as a whole, and reports bad rows", async () => {
      const a = (await registerDevice(cloud)).uuid;
      const noGroup = await postCsv(cloud, "transfer", `uuid\n${a}\n`, { toGroup: "nowhere" });
      expect(noGroup.status).toBe(404);
      expect(noGroup.body.error).toMatchObject({ code: "GROUP_NOT_FOUND", field: "toGroup" });
      const typeElsewhere = await postCsv(cloud, "transfer", `uuid\n${a}\n`, { toGroup: "plant-b", toType: "press" });
      expect(typeElsewhere.body.error).toMatchObject({ code: "VALIDATION_FAILED", field: "toType" });
      const missing = await postCsv(cloud, "transfer", `uuid\n${a}\n`);
      expect(missing.body.error).toMatchObject({ code: "VALIDATION_FAILED", field: "toGroup" });
      const rows = await postCsv(cloud, "transfer", `\ufeffuuid\r\n${a}\r\n${newUuid()}\r\n${a}\r\n`, {
        toGroup: "plant-b",
      });
      expect(outcome(rows.body)).toEqual({ 2: "ok", 3: "DEVICE_NOT_FOUND", 4: "CSV_DUPLICATE_UUID" });
      expect(rows.body.applied).toBe(false);
      expect((await device(a)).body.group.fullName).toBe("default");
    });
  });

  describe("replace and drop-history, with a live device", () => {
    const events = async (uuid: string) =>
      (await cloud.api<{ items: { code: string }[] }>("GET", `/api/v1/devices/${uuid}/events`)).body.items;
    let old: EnrolledDevice;
    let client: MqttClient;
    const stream = "0123456789abcdef0123456789abcdef";

    beforeAll(async () => {
      old = await registerAndEnroll(cloud);
      await cloud.api("PATCH", `/api/v1/devices/${old.uuid}`, {
        name: "old-press",
        location: "bay 9",
        tags: ["keep-me"],
        group: plantA.id,
        type: pressType.id,
      });
      client = await connectDevice(cloud, old, old.uuid);
      await publish(
        client,
        `fieldgate/v1/${old.uuid}/telemetry`,
        JSON.stringify({ v: 1, stream, seq: 1, readings: [{ name: "temp", ts: 1_700_000_000_000, value: 20.5 }] }),
      );
    });
    afterAll(() => client?.end(true));

    it("the new device takes over name, group, type, tags and history; the old is revoked and retired", async () => {
      const replacement = newUuid();
      const taken = (await registerDevice(cloud)).uuid;
      const closed = new Promise<void>((resolve) => client.once("close", () => resolve()));
      const bad = [
        `${newUuid()},${newUuid()},`, // 3: old unknown
        `${taken},${taken},`, // 4: old equals new
        `${taken},${old.uuid},`, // 5: old.uuid already used on line 2
        `${newUuid()},not-a-uuid,`, // 6
      ];
      const csv = `old_uuid,new_uuid,factory_public_key\n${old.uuid},${replacement},\n${bad.join("\n")}\n`;
      const dry = await postCsv(cloud, "replace", csv, { dryRun: "true", keepHistory: "true" });
      expect(outcome(dry.body)).toEqual({
        2: "ok",
        3: "DEVICE_NOT_FOUND",
        4: "VALIDATION_FAILED",
        5: "CSV_DUPLICATE_UUID",
        6: "VALIDATION_FAILED",
      });
      expect((await device(old.uuid)).status).toBe(200);

      const res = await postCsv(cloud, "replace", csv, { mode: "rows", keepHistory: "true" });
      expect(res.body.rows[0]).toMatchObject({ status: "ok", uuid: replacement, oldUuid: old.uuid });
      expect(res.body.rows[0]?.token).toMatch(/^fgt_/);
      const fresh = (await device(replacement)).body;
      expect(fresh).toMatchObject({
        name: "old-press",
        location: "bay 9",
        tags: ["keep-me"],
        group: { id: plantA.id },
        type: { name: "press" },
        telemetryCount: 1,
        window: { open: true },
      });
      const telemetry = await cloud.api<{ items: { name: string; value: number }[] }>(
        "GET",
        `/api/v1/devices/${replacement}/telemetry`,
      );
      expect(telemetry.body.items).toMatchObject([{ name: "temp", value: 20.5 }]);
      // The events moved with it: the old device's connection is in the new device's history.
      expect((await events(replacement)).map((e) => e.code)).toContain("DEVICE_ONLINE");
      // The old device is retired, not deleted: kept, certificate revoked, out of active lists.
      const retired = await device(old.uuid);
      expect(retired.status).toBe(200);
      expect(retired.body).toMatchObject({
        replacedBy: replacement,
        certificate: null,
        window: { open: false },
        telemetryCount: 0,
      });
      expect((retired.body as unknown as { retiredAt: string | null }).retiredAt).not.toBeNull();
      const active = await cloud.api<{ items: { uuid: string }[] }>("GET", "/api/v1/devices?limit=1000");
      expect(active.body.items.map((d) => d.uuid)).not.toContain(old.uuid);
      const listed = await cloud.api<{ items: { uuid: string }[] }>("GET", "/api/v1/devices?retired=true&limit=1000");
      expect(listed.body.items.map((d) => d.uuid)).toContain(old.uuid);
      const reopen = await cloud.api<{ error: { code: string } }>("POST", `/api/v1/devices/${old.uuid}/reset-token`);
      expect(reopen.body.error.code).toBe("DEVICE_RETIRED");
      const again = await postCsv(cloud, "replace", `old_uuid,new_uuid\n${old.uuid},${newUuid()}\n`);
      expect(outcome(again.body)).toEqual({ 2: "DEVICE_RETIRED" });
      // The live session is dropped, and the old certificate is refused from now on.
      await closed;
      await expect(connectDevice(cloud, old, old.uuid)).rejects.toThrow();
      // The new device enrolls with its token.
      const enrolled = await enrollWithToken(cloud, replacement, res.body.rows[0]?.token ?? "");
      const session = await connectDevice(cloud, enrolled, replacement);
      session.end(true);
    });

    it("a replacement without keepHistory starts empty; transfer --drop-history empties a device", async () => {
      const dev = await registerAndEnroll(cloud);
      const session = await connectDevice(cloud, dev, dev.uuid);
      await publish(
        session,
        `fieldgate/v1/${dev.uuid}/telemetry`,
        JSON.stringify({ v: 1, stream, seq: 1, readings: [{ name: "temp", ts: 1_700_000_000_000, value: 1 }] }),
      );
      session.end(true);
      const moved = await postCsv(cloud, "transfer", `uuid\n${dev.uuid}\n`, { toGroup: "plant-b", history: "drop" });
      expect(moved.body.summary.ok).toBe(1);
      const after = (await device(dev.uuid)).body;
      expect(after).toMatchObject({ telemetryCount: 0, group: { id: plantB.id } });
      expect((await events(dev.uuid)).map((e) => e.code)).not.toContain("DEVICE_ONLINE");
      const replacement = newUuid();
      const res = await postCsv(cloud, "replace", `old_uuid,new_uuid\n${dev.uuid},${replacement}\n`);
      expect(res.body.summary.ok).toBe(1);
      expect((await device(replacement)).body).toMatchObject({ telemetryCount: 0, group: { id: plantB.id } });
      // Without keepHistory, whatever history there is stays with the retired record.
      expect((await device(dev.uuid)).body).toMatchObject({ replacedBy: replacement, group: { id: plantB.id } });
    });
  });

  describe("bulk-delete", () => {
    it("deletes the listed devices, and atomically refuses a file with an unknown uuid", async () => {
      const a = (await registerDevice(cloud)).uuid;
      const b = (await registerDevice(cloud)).uuid;
      const bad = await postCsv(cloud, "delete", `uuid\n${a}\n${newUuid()}\n"${b}"\n${a}\n`);
      expect(outcome(bad.body)).toEqual({ 2: "ok", 3: "DEVICE_NOT_FOUND", 4: "ok", 5: "CSV_DUPLICATE_UUID" });
      expect((await device(a)).status).toBe(200);
      const good = await postCsv(cloud, "delete", `uuid\r\n${a}\r\n${b}\r\n`);
      expect(good.body).toMatchObject({ applied: true, summary: { ok: 2, failed: 0 } });
      expect((await device(a)).status).toBe(404);
      expect((await device(b)).status).toBe(404);
    });

    it("drops the live session of a deleted device", async () => {
      const dev = await registerAndEnroll(cloud);
      const session = await connectDevice(cloud, dev, dev.uuid);
      const closed = new Promise<void>((resolve) => session.once("close", () => resolve()));
      await postCsv(cloud, "delete", `uuid\n${dev.uuid}\n`);
      await closed;
      session.end(true);
    });
  });

  describe("rights per row", () => {
    it("a credential scoped to a group gets FORBIDDEN above it, not-found for devices outside it, and works inside it", async () => {
      const scoped = await scopedCredential(cloud, "scoped-site");
      const outside = (await registerDevice(cloud)).uuid;
      const inside = (await registerDevice(cloud, { group: scoped.groupId })).uuid;
      const [n1, n2] = [newUuid(), newUuid()];
      const imported = await postCsv(
        cloud,
        "import",
        `uuid,group\n${n1},\n${n2},default\n`,
        { mode: "rows" },
        scoped.authorization,
      );
      expect(outcome(imported.body)).toEqual({ 2: "ok", 3: "FORBIDDEN" });
      expect((await device(n1)).body.group.id).toBe(scoped.groupId);
      expect((await device(n2)).status).toBe(404);

      const edit = await postCsv(
        cloud,
        "edit",
        `uuid,name\n${inside},mine\n${outside},theirs\n`,
        { mode: "rows" },
        scoped.authorization,
      );
      // A device outside the scope reads exactly like one that does not exist (issue #12).
      expect(outcome(edit.body)).toEqual({ 2: "ok", 3: "DEVICE_NOT_FOUND" });
      expect((await device(outside)).body.name).toBe("");

      const transfer = await postCsv(
        cloud,
        "transfer",
        `uuid\n${inside}\n`,
        { toGroup: "default" },
        scoped.authorization,
      );
      expect(transfer.status).toBe(403);
      expect(transfer.body.error?.code).toBe("FORBIDDEN");

      const removed = await postCsv(
        cloud,
        "delete",
        `uuid\n${outside}\n${inside}\n`,
        { mode: "rows" },
        scoped.authorization,
      );
      expect(outcome(removed.body)).toEqual({ 2: "DEVICE_NOT_FOUND", 3: "ok" });
      expect((await device(outside)).status).toBe(200);
      expect((await device(inside)).status).toBe(404);
    });

    it("a viewer may not run any bulk operation, and no credential gets 401", async () => {
      const viewer = await scopedCredential(cloud, "viewers", "viewer");
      const res = await postCsv(cloud, "import", `uuid\n${newUuid()}\n`, {}, viewer.authorization);
      expect(res.status).toBe(403);
      const anonymous = await postCsv(cloud, "delete", "uuid\n", {}, "Basic Zm9vOmJhcg==");
      expect(anonymous.status).toBe(401);
    });
  });

  it("accepts the same file as a JSON string, as the CLI sends it", async () => {
    const uuid = newUuid();
    const res = await cloud.api<ReportAnswer>("POST", "/api/v1/devices/bulk/import", JSON.stringify(`uuid\n${uuid}\n`));
    expect(res.status).toBe(200);
    expect(res.body.rows.map((r: RowAnswer) => r.status)).toEqual(["ok"]);
    await eventually(async () => ((await device(uuid)).status === 200 ? true : undefined));
  });
});

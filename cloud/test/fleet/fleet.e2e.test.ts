import { execFileSync } from "node:child_process";
import https from "node:https";
import path from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CloudProcess, cloudBin, startCloud } from "../../../test/support/cloud-process.js";
import { connectDevice, enrollWithToken, newUuid } from "../../../test/support/device-identity.js";
import { postCsv } from "../bulk/bulk-support.js";

type Err = { error: { code: string; field?: string; message: string } };
type Group = {
  id: number;
  name: string;
  fullName: string;
  parentId: number | null;
  devices: number;
  subgroups: number;
  timezone: string;
};
const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString("base64")}`;

describe("fleet management", () => {
  let cloud: CloudProcess;
  let n = 0;
  const name = (p: string) => `${p}-${n++}`;
  const group = async (body: Record<string, unknown>) => (await cloud.api<Group>("POST", "/api/v1/groups", body)).body;

  beforeAll(async () => {
    // A login delay a loaded machine cannot outwait between two requests of one test.
    cloud = await startCloud({ args: ["--login-delay", "5s"] });
  });
  afterAll(() => cloud.stop());
  /** A login's status, body text and Retry-After header. */
  const loginAnswer = (body: unknown) =>
    new Promise<{ status: number; text: string; retryAfter: string | undefined }>((resolve, reject) => {
      const payload = JSON.stringify(body);
      const req = https.request(
        new URL("/api/v1/auth/login", cloud.url),
        { method: "POST", ca: cloud.caPem, headers: { "content-type": "application/json" } },
        (res) => {
          let text = "";
          res.on("data", (c: Buffer) => {
            text += c.toString("utf8");
          });
          res.on("end", () =>
            resolve({
              status: res.statusCode ?? 0,
              text,
              retryAfter: res.headers["retry-after"] as string | undefined,
            }),
          );
        },
      );
      req.on("error", reject);
      req.end(payload);
    });

  describe("groups", () => {
    it("builds a tree with names, time zones inherited from the parent, and full names", async () => {
      const plant = await group({ name: name("plant"), timezone: "Europe/Berlin", description: "north site" });
      const line = await group({ name: "line-1", parent: plant.id });
      expect(line).toMatchObject({
        parentId: plant.id,
        timezone: "Europe/Berlin",
        fullName: `default/${plant.name}/line-1`,
      });
      const byName = await cloud.api<{ items: Group[] }>(
        "GET",
        `/api/v1/groups?name=${encodeURIComponent(`${plant.name}/line-1`)}`,
      );
      expect(byName.body.items.map((g) => g.id)).toEqual([line.id]);
      const dup = await cloud.api<Err>("POST", "/api/v1/groups", { name: "line-1", parent: plant.id });
      expect(dup.status).toBe(409);
      expect(dup.body.error.code).toBe("GROUP_EXISTS");
      const badTz = await cloud.api<Err>("POST", "/api/v1/groups", { name: name("x"), timezone: "Mars/Olympus" });
      expect(badTz.body.error).toMatchObject({ code: "VALIDATION_FAILED", field: "timezone" });
      const slash = await cloud.api<Err>("POST", "/api/v1/groups", { name: "a/b" });
      expect(slash.body.error).toMatchObject({ code: "VALIDATION_FAILED", field: "name" });
    });

    it("moves a subtree and refuses a move under itself", async () => {
      const a = await group({ name: name("a") });
      const child = await group({ name: "child", parent: a.id });
      const grandchild = await group({ name: "grandchild", parent: child.id });
      const b = await group({ name: name("b") });
      const moved = await cloud.api<Group>("POST", `/api/v1/groups/${child.id}/move`, { parent: b.id });
      expect(moved.body.fullName).toBe(`default/${b.name}/child`);
      const gc = await cloud.api<Group>("GET", `/api/v1/groups/${grandchild.id}`);
      expect(gc.body.fullName).toBe(`default/${b.name}/child/grandchild`);
      const cycle = await cloud.api<Err>("POST", `/api/v1/groups/${child.id}/move`, { parent: grandchild.id });
      expect(cycle.status).toBe(400);
      expect(cycle.body.error.code).toBe("GROUP_MOVE_INVALID");
    });

    it("refuses to delete a group that holds devices or sub-groups, unless recursive; recursive drops sessions", async () => {
      const g = await group({ name: name("doomed") });
      const sub = await group({ name: "sub", parent: g.id });
      const uuid = newUuid();
      const created = await cloud.api<{ enrollmentToken: string }>("POST", "/api/v1/devices", { uuid, group: sub.id });
      const device = await enrollWithToken(cloud, uuid, created.body.enrollmentToken);
      const client = await connectDevice(cloud, device, uuid);
      const closed = new Promise<void>((resolve) => client.once("close", () => resolve()));
      const refused = await cloud.api<Err>("DELETE", `/api/v1/groups/${g.id}`);
      expect(refused.status).toBe(409);
      expect(refused.body.error.code).toBe("GROUP_NOT_EMPTY");
      const deleted = await cloud.api<{ groups: number; devices: number }>(
        "DELETE",
        `/api/v1/groups/${g.id}?recursive=true`,
      );
      expect(deleted.body).toEqual({ groups: 2, devices: 1 });
      await closed;
      expect((await cloud.api("GET", `/api/v1/devices/${uuid}`)).status).toBe(404);
      const root = (await cloud.api<{ items: Group[] }>("GET", "/api/v1/groups")).body.items.find(
        (x) => x.parentId === null,
      );
      expect((await cloud.api<Err>("DELETE", `/api/v1/groups/${root?.id}`)).body.error.code).toBe("GROUP_MOVE_INVALID");
    });
  });

  describe("device types", () => {
    it("creates types, files devices under them, refuses a type from a sibling group, and refuses deleting a used type", async () => {
      const a = await group({ name: name("ta") });
      const b = await group({ name: name("tb") });
      const meter = await cloud.api<{ id: number; name: string; keepaliveMinutes: number; firmwareCompat: string }>(
        "POST",
        "/api/v1/device-types",
        {
          name: name("meter"),
          group: a.id,
          keepaliveMinutes: 60,
        },
      );
      expect(meter.status).toBe(201);
      expect(meter.body.firmwareCompat).toBe(meter.body.name);
      const uuid = newUuid();
      const dev = await cloud.api<{ device: { type: { name: string } } }>("POST", "/api/v1/devices", {
        uuid,
        group: a.id,
        type: meter.body.name,
      });
      expect(dev.body.device.type.name).toBe(meter.body.name);
      const sibling = await cloud.api<Err>("POST", "/api/v1/devices", {
        uuid: newUuid(),
        group: b.id,
        type: meter.body.id,
      });
      expect(sibling.body.error).toMatchObject({ code: "VALIDATION_FAILED", field: "type" });
      const inUse = await cloud.api<Err>("DELETE", `/api/v1/device-types/${meter.body.id}`);
      expect(inUse.body.error.code).toBe("TYPE_IN_USE");
      // A transfer to no type, then the type can go.
      expect((await cloud.api("PATCH", `/api/v1/devices/${uuid}`, { type: null })).status).toBe(200);
      expect((await cloud.api("DELETE", `/api/v1/device-types/${meter.body.id}`)).status).toBe(204);
      const dupe = await cloud.api<Err>("POST", "/api/v1/device-types", { name: "x:y", group: a.id });
      expect(dupe.status).toBe(201);
      expect((await cloud.api<Err>("POST", "/api/v1/device-types", { name: "x:y", group: b.id })).body.error.code).toBe(
        "TYPE_EXISTS",
      );
    });

    it("moves a device to another group with PATCH, checking the type still applies", async () => {
      const a = await group({ name: name("ma") });
      const b = await group({ name: name("mb") });
      const uuid = newUuid();
      await cloud.api("POST", "/api/v1/devices", { uuid, group: a.id });
      const moved = await cloud.api<{ group: { id: number } }>("PATCH", `/api/v1/devices/${uuid}`, { group: b.id });
      expect(moved.body.group.id).toBe(b.id);
    });
  });

  describe("API credentials", () => {
    it("shows the secret once, records last use, regenerates at once, and deletes", async () => {
      const g = await group({ name: name("cred") });
      const made = await cloud.api<{ credential: { id: string; lastUsedAt: string | null }; secret: string }>(
        "POST",
        "/api/v1/credentials",
        {
          name: "integration",
          group: g.id,
          role: "viewer",
        },
      );
      expect(made.status).toBe(201);
      const { id } = made.body.credential;
      const old = basic(id, made.body.secret);
      expect((await cloud.api("GET", "/api/v1/devices", undefined, old)).status).toBe(200);
      const listed = await cloud.api<{ items: { id: string; lastUsedAt: string | null }[] }>(
        "GET",
        "/api/v1/credentials",
      );
      expect(listed.text).not.toContain(made.body.secret);
      expect(listed.body.items.find((c) => c.id === id)?.lastUsedAt).not.toBeNull();
      const regen = await cloud.api<{ secret: string }>("POST", `/api/v1/credentials/${id}/regenerate`);
      expect((await cloud.api("GET", "/api/v1/devices", undefined, old)).status).toBe(401);
      expect((await cloud.api("GET", "/api/v1/devices", undefined, basic(id, regen.body.secret))).status).toBe(200);
      expect((await cloud.api("DELETE", `/api/v1/credentials/${id}`)).status).toBe(204);
      expect((await cloud.api("GET", "/api/v1/devices", undefined, basic(id, regen.body.secret))).status).toBe(401);
      const db = new Database(path.join(cloud.dataDir, "fieldgate.db"), { readonly: true });
      const stored = db.prepare("SELECT secret_hash FROM api_credentials").all() as { secret_hash: Buffer }[];
      db.close();
      expect(stored.every((r) => r.secret_hash.length === 32)).toBe(true);
    });
  });

  describe("users and sessions", () => {
    it("logs a user in with a password, scopes the session to the user's roles, and ends it on logout", async () => {
      const g = await group({ name: name("ops") });
      const email = `${name("ana")}@example.test`;
      const password = "correct horse battery staple";
      const created = await cloud.api<{ id: number; roles: { role: string }[] }>("POST", "/api/v1/users", {
        email,
        password,
        roles: [{ group: g.id, role: "device-manager" }],
      });
      expect(created.status).toBe(201);
      const login = await cloud.api<{ token: string; expiresAt: string }>(
        "POST",
        "/api/v1/auth/login",
        { email, password },
        false,
      );
      expect(login.status).toBe(200);
      expect(login.body.token).toMatch(/^fgu_/);
      const bearer = `Bearer ${login.body.token}`;
      const who = await cloud.api<{ kind: string; grants: { role: string; group: { id: number } }[] }>(
        "GET",
        "/api/v1/auth/whoami",
        undefined,
        bearer,
      );
      expect(who.body).toMatchObject({ kind: "user", grants: [{ role: "device-manager", group: { id: g.id } }] });
      expect((await cloud.api("POST", "/api/v1/devices", { uuid: newUuid(), group: g.id }, bearer)).status).toBe(201);
      expect((await cloud.api("POST", "/api/v1/devices", { uuid: newUuid() }, bearer)).status).toBe(201);
      expect((await cloud.api("GET", "/api/v1/users", undefined, bearer)).status).toBe(403);
      expect((await cloud.api("POST", "/api/v1/auth/logout", undefined, bearer)).status).toBe(204);
      expect((await cloud.api("GET", "/api/v1/auth/whoami", undefined, bearer)).status).toBe(401);

      const db = new Database(path.join(cloud.dataDir, "fieldgate.db"), { readonly: true });
      const row = db.prepare("SELECT password_hash FROM users WHERE email = ?").get(email) as { password_hash: string };
      const sessions = db.prepare("SELECT token_hash FROM sessions").all() as { token_hash: Buffer }[];
      db.close();
      expect(row.password_hash).toMatch(/^scrypt\$32768\$8\$1\$/);
      expect(row.password_hash).not.toContain(password);
      expect(sessions.every((s) => !s.token_hash.toString("utf8").startsWith("fgu_"))).toBe(true);
    });

    it("answers a wrong password and an unknown email alike, and slows tries after five failures", async () => {
      const email = `${name("bo")}@example.test`;
      const password = "another long password";
      await cloud.api("POST", "/api/v1/users", { email, password, roles: [] });
      const wrong = await cloud.api<Err>("POST", "/api/v1/auth/login", { email, password: "nope" }, false);
      const unknown = await cloud.api<Err>(
        "POST",
        "/api/v1/auth/login",
        { email: "ghost@example.test", password: "nope" },
        false,
      );
      expect(wrong.status).toBe(401);
      expect(unknown.text).toBe(wrong.text);
      for (let i = 0; i < 4; i++) {
        await cloud.api("POST", "/api/v1/auth/login", { email, password: "nope" }, false);
        await cloud.api("POST", "/api/v1/auth/login", { email: "ghost@example.test", password: "nope" }, false);
      }
      // Inside the delay even the right password is refused, with the wait, the same for an unknown email.
      const slowed = await loginAnswer({ email, password });
      const ghost = await loginAnswer({ email: "ghost@example.test", password: "nope" });
      expect(slowed.status).toBe(429);
      expect(JSON.parse(slowed.text).error.code).toBe("LOGIN_THROTTLED");
      expect(Number(slowed.retryAfter)).toBeGreaterThanOrEqual(1);
      expect(Number(slowed.retryAfter)).toBeLessThanOrEqual(5);
      expect(ghost.status).toBe(429);
      expect(ghost.text).toBe(slowed.text);
      // After the delay the right password logs in: nobody can lock the account out.
      await expect.poll(async () => (await loginAnswer({ email, password })).status, { timeout: 20_000 }).toBe(200);
    });

    it("ends a user's sessions when the password changes, and refuses a short password", async () => {
      const email = `${name("cy")}@example.test`;
      const made = await cloud.api<{ id: number }>("POST", "/api/v1/users", {
        email,
        password: "first password here",
        roles: [],
      });
      const token = (
        await cloud.api<{ token: string }>(
          "POST",
          "/api/v1/auth/login",
          { email, password: "first password here" },
          false,
        )
      ).body.token;
      await cloud.api("PATCH", `/api/v1/users/${made.body.id}`, { password: "second password here" });
      expect((await cloud.api("GET", "/api/v1/auth/whoami", undefined, `Bearer ${token}`)).status).toBe(401);
      const short = await cloud.api<Err>("POST", "/api/v1/users", {
        email: `${name("d")}@example.test`,
        password: "short",
        roles: [],
      });
      expect(short.body.error).toMatchObject({ code: "VALIDATION_FAILED", field: "password" });
    });
  });

  describe("organizations", () => {
    it("keeps tenants apart: another tenant's uuid is DEVICE_OWNED_ELSEWHERE and its resources are not found", async () => {
      const out = execFileSync(process.execPath, [
        cloudBin,
        "organizations",
        "create",
        name("acme"),
        "--data-dir",
        cloud.dataDir,
        "--json",
      ]).toString();
      const acme = JSON.parse(out) as { credentialId: string; secret: string };
      const acmeAuth = basic(acme.credentialId, acme.secret);
      const theirs = newUuid();
      expect((await cloud.api("POST", "/api/v1/devices", { uuid: theirs }, acmeAuth)).status).toBe(201);
      const taken = await cloud.api<Err>("POST", "/api/v1/devices", { uuid: theirs });
      expect(taken.status).toBe(409);
      expect(taken.body.error.code).toBe("DEVICE_OWNED_ELSEWHERE");
      expect(taken.text).not.toContain("acme");
      expect((await cloud.api<Err>("GET", `/api/v1/devices/${theirs}`)).body.error.code).toBe("DEVICE_NOT_FOUND");
      const mine = await cloud.api<{ items: { uuid: string }[] }>("GET", "/api/v1/devices?limit=1000");
      expect(mine.text).not.toContain(theirs);
      const acmeGroups = await cloud.api<{ items: Group[] }>("GET", "/api/v1/groups", undefined, acmeAuth);
      expect(acmeGroups.body.items).toHaveLength(1);
      const imported = await postCsv(cloud, "import", `uuid\n${theirs}\n`);
      expect(imported.body.rows[0]).toMatchObject({ status: "error", code: "DEVICE_OWNED_ELSEWHERE" });
      const edited = await postCsv(cloud, "edit", `uuid,name\n${theirs},stolen\n`);
      expect(edited.body.rows[0]).toMatchObject({ status: "error", code: "DEVICE_NOT_FOUND" });
      const ourGroup = await group({ name: name("ours") });
      expect((await cloud.api<Err>("GET", `/api/v1/groups/${ourGroup.id}`, undefined, acmeAuth)).body.error.code).toBe(
        "GROUP_NOT_FOUND",
      );
    });
  });
});

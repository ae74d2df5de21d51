import { execFileSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CloudProcess, cloudBin, startCloud, tempDir } from "../../../test/support/cloud-process.js";
import { newUuid } from "../../../test/support/device-identity.js";
import { ROLE_PERMISSIONS, ROLES, type Role } from "../../src/access/roles.js";
import { ROUTE_RIGHTS } from "../../src/access/route-rights.js";

type Answer = { status: number; text: string; body: unknown };
type Call = { method: string; url: string; body?: unknown; contentType?: string };

/**
 * Every route in ROUTE_RIGHTS, for every role: allowed exactly where the role table says so, on
 * the caller's own group; a sibling group's objects answer exactly as objects that do not exist
 * (issue #12); organization-level routes only for roles held on the root group. Lists never show
 * another group's rows.
 */
describe("access control, enumerated over every route and role", () => {
  let cloud: CloudProcess;
  let seq = 0;
  const unique = (p: string) => `${p}-${Date.now().toString(36)}-${seq++}`;
  const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString("base64")}`;
  const ids = { root: 0, a: 0, b: 0 };
  let rolloutTypeId = 0;
  const creds: Record<string, string> = {};
  const admin = <T>(method: string, url: string, body?: unknown) => cloud.api<T>(method, url, body);
  const call = async (c: Call, auth: string): Promise<Answer> => {
    if (c.contentType === "text/event-stream") return fetchStreamStatus(cloud, c, auth);
    if (c.contentType === "text/csv" || c.contentType === "application/octet-stream") {
      const res = await fetchCsv(cloud, c, auth);
      return res;
    }
    return cloud.api(c.method, c.url, c.body, auth);
  };

  // Fresh resources, made by the root admin, in a given group.
  const make = {
    device: async (group: number) => {
      const uuid = newUuid();
      expect((await admin("POST", "/api/v1/devices", { uuid, group })).status).toBe(201);
      return uuid;
    },
    group: async (parent: number) =>
      (await admin<{ id: number }>("POST", "/api/v1/groups", { name: unique("g"), parent })).body.id,
    type: async (group: number) =>
      (await admin<{ id: number }>("POST", "/api/v1/device-types", { name: unique("t"), group })).body.id,
    credential: async (group: number) =>
      (
        await admin<{ credential: { id: string } }>("POST", "/api/v1/credentials", {
          name: unique("c"),
          group,
          role: "viewer",
        })
      ).body.credential.id,
    /** A one-device rollout of the shared test image to a fresh device of group `g`. */
    rollout: async (group: number) => {
      const uuid = newUuid();
      expect((await admin("POST", "/api/v1/devices", { uuid, group, type: rolloutTypeId })).status).toBe(201);
      const made = await admin<{ id: number }>("POST", "/api/v1/rollouts", {
        firmware: "rollout-fw@1.0.0",
        target: { devices: [uuid] },
      });
      expect(made.status, made.text).toBe(201);
      return made.body.id;
    },
    user: async () =>
      (
        await admin<{ id: number }>("POST", "/api/v1/users", {
          email: `${unique("u")}@example.test`,
          password: "correct horse battery",
          roles: [],
        })
      ).body.id,
  };

  /** How to call each route against a resource of group `g`. Must cover every key of ROUTE_RIGHTS. */
  const fixtures: Record<string, (g: number) => Promise<Call>> = {
    "GET /api/v1/health": async () => ({ method: "GET", url: "/api/v1/health" }),
    "GET /api/v1/openapi.json": async () => ({ method: "GET", url: "/api/v1/openapi.json" }),
    "POST /api/v1/enroll": async () => ({
      method: "POST",
      url: "/api/v1/enroll",
      body: { v: 1, uuid: newUuid(), method: "uuid-only", csr: "x".repeat(64) },
    }),
    "POST /api/v1/enroll/check": async () => ({
      method: "POST",
      url: "/api/v1/enroll/check",
      body: { v: 1, uuid: newUuid(), method: "token", token: "x" },
    }),
    "POST /api/v1/renew": async () => ({ method: "POST", url: "/api/v1/renew", body: { v: 1, csr: "x".repeat(64) } }),
    "POST /api/v1/auth/login": async () => ({
      method: "POST",
      url: "/api/v1/auth/login",
      body: { email: "nobody@example.test", password: "x" },
    }),
    "POST /api/v1/auth/logout": async () => ({ method: "POST", url: "/api/v1/auth/logout" }),
    "GET /api/v1/auth/whoami": async () => ({ method: "GET", url: "/api/v1/auth/whoami" }),
    // Host routes: no role of any tenant holds organizations:* (the host credential does).
    "POST /api/v1/organizations": async () => ({
      method: "POST",
      url: "/api/v1/organizations",
      body: { name: `tenant-${Math.random().toString(36).slice(2)}` },
    }),
    "GET /api/v1/organizations": async () => ({ method: "GET", url: "/api/v1/organizations" }),
    "GET /api/v1/organization": async () => ({ method: "GET", url: "/api/v1/organization" }),
    "PATCH /api/v1/organization": async () => ({
      method: "PATCH",
      url: "/api/v1/organization",
      body: { uuidOnlyEnrollment: false },
    }),
    "POST /api/v1/devices": async (g) => ({
      method: "POST",
      url: "/api/v1/devices",
      body: { uuid: newUuid(), group: g },
    }),
    "GET /api/v1/devices": async () => ({ method: "GET", url: "/api/v1/devices" }),
    "GET /api/v1/devices/export": async () => ({ method: "GET", url: "/api/v1/devices/export?format=json" }),
    // An endless stream: its status is what is compared, then it is closed.
    "GET /api/v1/live": async () => ({ method: "GET", url: "/api/v1/live", contentType: "text/event-stream" }),
    "GET /api/v1/devices/:uuid": async (g) => ({ method: "GET", url: `/api/v1/devices/${await make.device(g)}` }),
    "PATCH /api/v1/devices/:uuid": async (g) => ({
      method: "PATCH",
      url: `/api/v1/devices/${await make.device(g)}`,
      body: { name: "x" },
    }),
    "DELETE /api/v1/devices/:uuid": async (g) => ({ method: "DELETE", url: `/api/v1/devices/${await make.device(g)}` }),
    "POST /api/v1/devices/:uuid/reset-token": async (g) => ({
      method: "POST",
      url: `/api/v1/devices/${await make.device(g)}/reset-token`,
    }),
    "GET /api/v1/devices/:uuid/telemetry": async (g) => ({
      method: "GET",
      url: `/api/v1/devices/${await make.device(g)}/telemetry`,
    }),
    "GET /api/v1/devices/:uuid/events": async (g) => ({
      method: "GET",
      url: `/api/v1/devices/${await make.device(g)}/events`,
    }),
    "GET /api/v1/devices/:uuid/health": async (g) => ({
      method: "GET",
      url: `/api/v1/devices/${await make.device(g)}/health`,
    }),
    "GET /api/v1/devices/:uuid/certificates": async (g) => ({
      method: "GET",
      url: `/api/v1/devices/${await make.device(g)}/certificates`,
    }),
    "GET /api/v1/devices/:uuid/logs": async (g) => ({
      method: "GET",
      url: `/api/v1/devices/${await make.device(g)}/logs`,
    }),
    "GET /api/v1/devices/:uuid/config": async (g) => ({
      method: "GET",
      url: `/api/v1/devices/${await make.device(g)}/config`,
    }),
    "PUT /api/v1/devices/:uuid/config": async (g) => ({
      method: "PUT",
      url: `/api/v1/devices/${await make.device(g)}/config`,
      body: { logLevel: "info" },
    }),
    // No such image: an allowed caller gets 404 FIRMWARE_NOT_FOUND, a refused one 403.
    "POST /api/v1/devices/:uuid/jobs": async (g) => ({
      method: "POST",
      url: `/api/v1/devices/${await make.device(g)}/jobs`,
      body: { firmware: "none@1.0.0" },
    }),
    "GET /api/v1/devices/:uuid/jobs": async (g) => ({
      method: "GET",
      url: `/api/v1/devices/${await make.device(g)}/jobs`,
    }),
    "GET /api/v1/devices/:uuid/jobs/:id": async (g) => ({
      method: "GET",
      url: `/api/v1/devices/${await make.device(g)}/jobs/job-none`,
    }),
    "POST /api/v1/devices/bulk/import": async (g) => csv("import", `uuid,group\n${newUuid()},${g}\n`),
    "POST /api/v1/devices/bulk/edit": async (g) => csv("edit", `uuid,name\n${await make.device(g)},x\n`),
    "POST /api/v1/devices/bulk/transfer": async (g) => csv(`transfer?toGroup=${g}`, `uuid\n${await make.device(g)}\n`),
    "POST /api/v1/devices/bulk/replace": async (g) =>
      csv("replace", `old_uuid,new_uuid\n${await make.device(g)},${newUuid()}\n`),
    "POST /api/v1/devices/bulk/delete": async (g) => csv("delete", `uuid\n${await make.device(g)}\n`),
    "POST /api/v1/groups": async (g) => ({
      method: "POST",
      url: "/api/v1/groups",
      body: { name: unique("g"), parent: g },
    }),
    "GET /api/v1/groups": async () => ({ method: "GET", url: "/api/v1/groups" }),
    "GET /api/v1/groups/:id": async (g) => ({ method: "GET", url: `/api/v1/groups/${await make.group(g)}` }),
    "PATCH /api/v1/groups/:id": async (g) => ({
      method: "PATCH",
      url: `/api/v1/groups/${await make.group(g)}`,
      body: { description: "x" },
    }),
    "POST /api/v1/groups/:id/move": async (g) => ({
      method: "POST",
      url: `/api/v1/groups/${await make.group(g)}/move`,
      body: { parent: g },
    }),
    "DELETE /api/v1/groups/:id": async (g) => ({ method: "DELETE", url: `/api/v1/groups/${await make.group(g)}` }),
    "POST /api/v1/device-types": async (g) => ({
      method: "POST",
      url: "/api/v1/device-types",
      body: { name: unique("t"), group: g },
    }),
    "GET /api/v1/device-types": async () => ({ method: "GET", url: "/api/v1/device-types" }),
    "GET /api/v1/device-types/:id": async (g) => ({ method: "GET", url: `/api/v1/device-types/${await make.type(g)}` }),
    "PATCH /api/v1/device-types/:id": async (g) => ({
      method: "PATCH",
      url: `/api/v1/device-types/${await make.type(g)}`,
      body: { description: "x" },
    }),
    "DELETE /api/v1/device-types/:id": async (g) => ({
      method: "DELETE",
      url: `/api/v1/device-types/${await make.type(g)}`,
    }),
    "POST /api/v1/credentials": async (g) => ({
      method: "POST",
      url: "/api/v1/credentials",
      body: { name: unique("c"), group: g, role: "viewer" },
    }),
    "GET /api/v1/credentials": async () => ({ method: "GET", url: "/api/v1/credentials" }),
    "GET /api/v1/credentials/:id": async (g) => ({
      method: "GET",
      url: `/api/v1/credentials/${await make.credential(g)}`,
    }),
    "POST /api/v1/credentials/:id/regenerate": async (g) => ({
      method: "POST",
      url: `/api/v1/credentials/${await make.credential(g)}/regenerate`,
    }),
    "DELETE /api/v1/credentials/:id": async (g) => ({
      method: "DELETE",
      url: `/api/v1/credentials/${await make.credential(g)}`,
    }),
    "POST /api/v1/users": async () => ({
      method: "POST",
      url: "/api/v1/users",
      body: { email: `${unique("u")}@example.test`, password: "correct horse battery", roles: [] },
    }),
    "GET /api/v1/users": async () => ({ method: "GET", url: "/api/v1/users" }),
    "GET /api/v1/users/:id": async () => ({ method: "GET", url: `/api/v1/users/${await make.user()}` }),
    "PATCH /api/v1/users/:id": async () => ({
      method: "PATCH",
      url: `/api/v1/users/${await make.user()}`,
      body: { name: "x" },
    }),
    "DELETE /api/v1/users/:id": async () => ({ method: "DELETE", url: `/api/v1/users/${await make.user()}` }),
    // Firmware images belong to the organization: an allowed upload stores the image, the other
    // routes on an absent image answer FIRMWARE_NOT_FOUND: neither 401 nor 403.
    "POST /api/v1/firmware": async () => ({
      method: "POST",
      url: `/api/v1/firmware?name=${unique("fw")}&version=1.0.0&compatible=t1`,
      body: "image bytes",
      contentType: "application/octet-stream",
    }),
    "GET /api/v1/firmware": async () => ({ method: "GET", url: "/api/v1/firmware" }),
    "GET /api/v1/firmware/:name/:version": async () => ({ method: "GET", url: "/api/v1/firmware/none/1.0.0" }),
    "DELETE /api/v1/firmware/:name/:version": async () => ({ method: "DELETE", url: "/api/v1/firmware/none/1.0.0" }),
    "GET /api/v1/firmware/:name/:version/manifest": async () => ({
      method: "GET",
      url: "/api/v1/firmware/none/1.0.0/manifest",
    }),
    "GET /api/v1/firmware/:name/:version/image": async () => ({
      method: "GET",
      url: "/api/v1/firmware/none/1.0.0/image",
    }),
    "GET /api/v1/firmware-keys": async () => ({ method: "GET", url: "/api/v1/firmware-keys" }),
    // A rollout is created over the devices the caller may update: out of scope they are not found.
    "POST /api/v1/rollouts": async (g) => ({
      method: "POST",
      url: "/api/v1/rollouts",
      body: { firmware: "rollout-fw@1.0.0", target: { group: g } },
    }),
    "GET /api/v1/rollouts": async () => ({ method: "GET", url: "/api/v1/rollouts" }),
    "GET /api/v1/rollouts/:id": async (g) => ({ method: "GET", url: `/api/v1/rollouts/${await make.rollout(g)}` }),
    "GET /api/v1/rollouts/:id/devices": async (g) => ({
      method: "GET",
      url: `/api/v1/rollouts/${await make.rollout(g)}/devices`,
    }),
    "POST /api/v1/rollouts/:id/pause": async (g) => ({
      method: "POST",
      url: `/api/v1/rollouts/${await make.rollout(g)}/pause`,
    }),
    "POST /api/v1/rollouts/:id/resume": async (g) => ({
      method: "POST",
      url: `/api/v1/rollouts/${await make.rollout(g)}/resume`,
    }),
    "POST /api/v1/rollouts/:id/abort": async (g) => ({
      method: "POST",
      url: `/api/v1/rollouts/${await make.rollout(g)}/abort`,
    }),
  };

  beforeAll(async () => {
    const dataDir = tempDir("access");
    execFileSync(process.execPath, [cloudBin, "firmware", "keygen", "--data-dir", dataDir], { stdio: "pipe" });
    cloud = await startCloud({ dataDir, args: ["--firmware-dir", `${dataDir}/firmware`] });
    const tree = await admin<{ items: { id: number; parentId: number | null }[] }>("GET", "/api/v1/groups");
    ids.root = tree.body.items.find((g) => g.parentId === null)?.id ?? 0;
    ids.a = (await admin<{ id: number }>("POST", "/api/v1/groups", { name: "plant-a" })).body.id;
    ids.b = (await admin<{ id: number }>("POST", "/api/v1/groups", { name: "plant-b" })).body.id;
    rolloutTypeId = (
      await admin<{ id: number }>("POST", "/api/v1/device-types", { name: "rollout-type", firmwareCompat: "t1" })
    ).body.id;
    const uploaded = await fetchCsv(
      cloud,
      {
        method: "POST",
        url: "/api/v1/firmware?name=rollout-fw&version=1.0.0&compatible=t1",
        body: "rollout image",
        contentType: "application/octet-stream",
      },
      basic(cloud.credential.id, cloud.credential.secret),
    );
    expect(uploaded.status, uploaded.text).toBe(201);
    for (const role of ROLES) {
      for (const [where, group] of [
        ["root", ids.root],
        ["a", ids.a],
      ] as const) {
        const made = await admin<{ credential: { id: string }; secret: string }>("POST", "/api/v1/credentials", {
          name: `${role}@${where}`,
          group,
          role,
        });
        creds[`${role}@${where}`] = basic(made.body.credential.id, made.body.secret);
      }
    }
  });
  afterAll(() => cloud.stop());

  it("has a fixture for every route in the rights table, and every route in the table is served", async () => {
    expect(Object.keys(fixtures).sort()).toEqual(Object.keys(ROUTE_RIGHTS).sort());
    const doc = await cloud.api<{ paths: Record<string, Record<string, unknown>> }>(
      "GET",
      "/api/v1/openapi.json",
      undefined,
      false,
    );
    const served = new Set(
      Object.entries(doc.body.paths).flatMap(([p, ops]) =>
        Object.keys(ops).map((m) => `${m.toUpperCase()} ${p.replace(/\{(\w+)\}/g, ":$1")}`),
      ),
    );
    served.add("GET /api/v1/openapi.json");
    expect(Object.keys(ROUTE_RIGHTS).filter((k) => !served.has(k))).toEqual([]);
  });

  it("refuses every non-public route without credentials", async () => {
    for (const [key, right] of Object.entries(ROUTE_RIGHTS)) {
      if (right.scope === "public") continue;
      const res = await call(await fixtureFor(key, ids.a), "");
      expect(res.status, key).toBe(401);
    }
  });

  for (const role of ROLES) {
    it(`${role}: allowed exactly where the role table says, on its own group and at the root`, async () => {
      for (const [key, right] of Object.entries(ROUTE_RIGHTS)) {
        if (right.scope === "public" || !right.permission) continue;
        const where = right.scope === "org" ? "root" : "a";
        const group = right.scope === "org" ? ids.root : ids.a;
        const res = await call(await fixtureFor(key, group), creds[`${role}@${where}`] ?? "");
        const allowed = (ROLE_PERMISSIONS[role as Role] as ReadonlySet<string>).has(right.permission);
        if (allowed)
          expect(
            [401, 403].includes(res.status) || res.status >= 500,
            `${role} ${key}: ${res.status} ${res.text}`,
          ).toBe(false);
        else expect(res.status, `${role} ${key}: ${res.text}`).toBe(403);
      }
    });

    it(`${role} scoped to plant-a: a plant-b object answers byte for byte as an unknown one, on every route`, async () => {
      const auth = creds[`${role}@a`] ?? "";
      const compared: string[] = [];
      for (const [key, right] of Object.entries(ROUTE_RIGHTS)) {
        // Device-only (mTLS) routes have no operator scope to cross.
        if (["public", "authenticated", "device-mtls"].includes(right.scope)) continue;
        const inB = await fixtureFor(key, ids.b);
        const { call: unknown, swap } = withUnknownIds(key, inB, ids.b);
        // Lists without a filter and the organization's firmware images name no object of a group.
        if (swap.size === 0) continue;
        compared.push(key);
        const outside = await call(inB, auth);
        const absent = await call(unknown, auth);
        expect(absent.status, `${role}@a ${key}: ${absent.text}`).toBe(outside.status);
        expect(replaceIds(outside.text, swap), `${role}@a ${key}`).toBe(absent.text);
        if (right.scope === "org") expect(outside.status, `${role}@a ${key}`).toBe(403);
        else if (key.startsWith("POST /api/v1/devices/bulk/"))
          // A role without devices:write is refused as a whole; others get the row's not-found.
          expect(outside.status === 403 || /_NOT_FOUND/.test(outside.text), `${key}: ${outside.text}`).toBe(true);
        else expect([403, 404], `${role}@a ${key}: ${outside.text}`).toContain(outside.status);
      }
      // Every route that names an object was compared, so a new one cannot slip past.
      const objectRoutes = Object.entries(ROUTE_RIGHTS)
        .filter(
          ([k, r]) =>
            ["device", "group", "type", "credential", "rollout"].includes(r.scope) || r.target || k.includes("/bulk/"),
        )
        .map(([k]) => k);
      expect(objectRoutes.filter((k) => !compared.includes(k))).toEqual([]);

      // A list filtered on a plant-b group reads as one filtered on a group that does not exist.
      for (const url of ["/api/v1/devices?group=", "/api/v1/devices/export?format=json&group="]) {
        const outside = await cloud.api("GET", `${url}${ids.b}`, undefined, auth);
        const absent = await cloud.api("GET", `${url}987654`, undefined, auth);
        expect(absent.status, url).toBe(outside.status);
        expect(outside.text.replaceAll(String(ids.b), "987654"), url).toBe(absent.text);
      }
    });
  }

  it("lists show a plant-a credential no plant-b rows", async () => {
    const bDevice = await make.device(ids.b);
    const bType = await make.type(ids.b);
    const bCred = await make.credential(ids.b);
    const aDevice = await make.device(ids.a);
    const viewerA = creds["viewer@a"] ?? "";
    const adminA = creds["admin@a"] ?? "";
    const devices = await cloud.api<{ items: { uuid: string; group: { id: number } }[] }>(
      "GET",
      "/api/v1/devices?limit=1000",
      undefined,
      viewerA,
    );
    expect(devices.body.items.map((d) => d.uuid)).toContain(aDevice);
    expect(devices.body.items.every((d) => d.group.id === ids.a)).toBe(true);
    expect(devices.text).not.toContain(bDevice);
    const groups = await cloud.api<{ items: { id: number }[] }>("GET", "/api/v1/groups", undefined, viewerA);
    expect(groups.body.items.map((g) => g.id)).not.toContain(ids.b);
    expect(groups.body.items.map((g) => g.id)).not.toContain(ids.root);
    const types = await cloud.api("GET", "/api/v1/device-types", undefined, viewerA);
    expect(types.text).not.toContain(`"id":${bType},`);
    const credentials = await cloud.api("GET", "/api/v1/credentials", undefined, adminA);
    expect(credentials.text).not.toContain(bCred);
    const exported = await cloud.api("GET", "/api/v1/devices/export?format=json", undefined, viewerA);
    expect(exported.text).not.toContain(bDevice);
  });

  it("nobody grants more than they hold", async () => {
    const res = await cloud.api<{ error: { code: string } }>(
      "POST",
      "/api/v1/credentials",
      { name: "escalate", group: ids.root, role: "admin" },
      creds["admin@a"],
    );
    // The root group is above plant-a: its name shows in every full name, so it is no secret.
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe("FORBIDDEN");
    const sideways = await cloud.api<{ error: { code: string } }>(
      "POST",
      "/api/v1/credentials",
      { name: "x", group: ids.a, role: "admin" },
      creds["device-manager@a"],
    );
    expect(sideways.status).toBe(403);
  });

  async function fixtureFor(key: string, group: number): Promise<Call> {
    const fixture = fixtures[key];
    if (!fixture) throw new Error(`no fixture for ${key}`);
    return fixture(group);
  }
});

const UUID_PATTERN = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g;

/**
 * The same call with every object it names — path ids, uuids anywhere, the plant-b group — swapped
 * for ids that exist nowhere. `swap` maps each known id to its stand-in, to compare the answers.
 */
function withUnknownIds(key: string, c: Call, groupB: number): { call: Call; swap: Map<string, string> } {
  const swap = new Map<string, string>();
  const unknownNumber = () => String(900_000 + swap.size);
  const pattern = (key.split(" ")[1] ?? "").split("/");
  const actual = (c.url.split("?")[0] ?? "").split("/");
  pattern.forEach((segment, i) => {
    const value = actual[i] ?? "";
    if (!segment.startsWith(":")) return;
    if (/^\d+$/.test(value)) swap.set(value, unknownNumber());
    else if (value.startsWith("fgc_")) swap.set(value, `fgc_${"0".repeat(16)}`);
  });
  const body = typeof c.body === "string" ? c.body : JSON.stringify(c.body ?? null);
  const text = `${c.url} ${body}`;
  for (const uuid of text.match(UUID_PATTERN) ?? []) swap.set(uuid, newUuid());
  if (bounded(String(groupB)).test(text)) swap.set(String(groupB), unknownNumber());
  const swapped = replaceIds(body, swap);
  return {
    call: {
      ...c,
      url: replaceIds(c.url, swap),
      body: typeof c.body === "string" ? swapped : (JSON.parse(swapped) as unknown),
    },
    swap,
  };
}

/** Replaces whole ids only: 3 in `/groups/3/` or `"group":3`, never in `v1`, `1.0.0` or a uuid. */
function replaceIds(text: string, swap: ReadonlyMap<string, string>): string {
  let out = text;
  for (const [known, unknown] of swap) out = out.replace(bounded(known, "g"), unknown);
  return out;
}

function bounded(id: string, flags = ""): RegExp {
  return new RegExp(`(?<![\\w.-])${id.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}(?![\\w.-])`, flags);
}

function csv(op: string, text: string): Call {
  const [path, query] = op.split("?");
  return {
    method: "POST",
    url: `/api/v1/devices/bulk/${path}${query ? `?${query}` : ""}`,
    body: text,
    contentType: "text/csv",
  };
}

async function fetchCsv(cloud: CloudProcess, c: Call, auth: string): Promise<Answer> {
  const https = await import("node:https");
  return new Promise((resolve, reject) => {
    const payload = Buffer.from(String(c.body));
    const req = https.request(new URL(c.url, cloud.url), {
      method: c.method,
      ca: cloud.caPem,
      headers: {
        "content-type": c.contentType ?? "text/csv",
        "content-length": payload.length,
        ...(auth ? { authorization: auth } : {}),
      },
    });
    req.on("response", (res) => {
      let text = "";
      res.on("data", (d) => {
        text += d;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text, body: undefined }));
    });
    req.on("error", reject);
    req.end(payload);
  });
}

/** A streaming GET's status; a 200 stream is closed at once, a refusal is read to its end. */
async function fetchStreamStatus(cloud: CloudProcess, c: Call, auth: string): Promise<Answer> {
  const https = await import("node:https");
  return new Promise((resolve, reject) => {
    const req = https.get(new URL(c.url, cloud.url), {
      ca: cloud.caPem,
      headers: auth ? { authorization: auth } : {},
    });
    req.on("response", (res) => {
      if (res.statusCode === 200) {
        req.destroy();
        resolve({ status: 200, text: "", body: undefined });
        return;
      }
      let text = "";
      res.on("data", (d) => {
        text += d;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text, body: undefined }));
    });
    req.on("error", (err) => {
      if (!req.destroyed) reject(err);
    });
  });
}

import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CloudProcess, cloudBin, startCloud, tempDir } from "../../../test/support/cloud-process.js";

type Err = { error: { code: string; field?: string; message: string } };
type Created = { organization: { name: string }; credential: { id: string; secret: string } };
type Listed = { items: { name: string; devices: number }[] };
const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString("base64")}`;

describe("organizations through the API, with the host credential", () => {
  let cloud: CloudProcess;
  let host: string;
  let hostPair: string;
  let configHome: string;
  let n = 0;
  const name = (p: string) => `${p}-${n++}`;
  /** Runs the CLI with no credential or data dir in its environment unless given. */
  const cli = (args: string[], env: Record<string, string> = {}) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      const base: NodeJS.ProcessEnv = { ...process.env, XDG_CONFIG_HOME: configHome };
      for (const v of ["FIELDGATE_CREDENTIAL", "FIELDGATE_TOKEN", "FIELDGATE_URL", "FIELDGATE_DATA_DIR"])
        delete base[v];
      const child = spawn(process.execPath, [cloudBin, ...args], { env: { ...base, ...env } });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d) => {
        stdout += d;
      });
      child.stderr.on("data", (d) => {
        stderr += d;
      });
      child.on("exit", (code) => resolve({ code: code ?? -1, stdout, stderr }));
    });

  beforeAll(async () => {
    cloud = await startCloud();
    configHome = tempDir("xdg");
    const saved = JSON.parse(fs.readFileSync(path.join(cloud.dataDir, "host-credential.json"), "utf8")) as {
      credentialId: string;
      secret: string;
    };
    hostPair = `${saved.credentialId}:${saved.secret}`;
    host = basic(saved.credentialId, saved.secret);
  });
  afterAll(() => cloud.stop());

  describe("API", () => {
    it("saves the host credential once, owner-only, and never shows it on the terminal", () => {
      const file = path.join(cloud.dataDir, "host-credential.json");
      expect(fs.statSync(file).mode & 0o777).toBe(0o600);
      const saved = JSON.parse(fs.readFileSync(file, "utf8")) as { credentialId: string; secret: string };
      expect(saved.credentialId).toMatch(/^fgh_/);
      expect(cloud.terminal.join("\n")).not.toContain(saved.secret);
      expect(cloud.logs.join("\n")).not.toContain(saved.secret);
    });

    it("creates an organization whose admin credential works in it, and lists it with its device count", async () => {
      const org = name("acme");
      const created = await cloud.api<Created>("POST", "/api/v1/organizations", { name: org }, host);
      expect(created.status).toBe(201);
      expect(created.body.organization).toEqual({ name: org });
      const admin = basic(created.body.credential.id, created.body.credential.secret);
      expect((await cloud.api("POST", "/api/v1/devices", { uuid: crypto.randomUUID() }, admin)).status).toBe(201);
      const settings = await cloud.api<{ name: string }>("GET", "/api/v1/organization", undefined, admin);
      expect(settings.body.name).toBe(org);

      const listed = await cloud.api<Listed>("GET", "/api/v1/organizations", undefined, host);
      expect(listed.status).toBe(200);
      expect(listed.body.items[0]?.name).toBe("default");
      expect(listed.body.items).toContainEqual({ name: org, devices: 1 });
    });

    it("refuses a bad name naming the field, and a taken name with ORGANIZATION_EXISTS", async () => {
      for (const bad of ["", "two words", "../x", "x".repeat(65)]) {
        const answer = await cloud.api<Err>("POST", "/api/v1/organizations", { name: bad }, host);
        expect(answer.status).toBe(400);
        expect(answer.body.error).toMatchObject({ code: "VALIDATION_FAILED", field: "name" });
      }
      const org = name("dup");
      expect((await cloud.api("POST", "/api/v1/organizations", { name: org }, host)).status).toBe(201);
      const again = await cloud.api<Err>("POST", "/api/v1/organizations", { name: org }, host);
      expect(again.status).toBe(409);
      expect(again.body.error).toMatchObject({ code: "ORGANIZATION_EXISTS", field: "name" });
      const defaultTaken = await cloud.api<Err>("POST", "/api/v1/organizations", { name: "default" }, host);
      expect(defaultTaken.body.error.code).toBe("ORGANIZATION_EXISTS");
    });

    it("refuses a tenant admin credential and a user session with FORBIDDEN, as where a right is held nowhere", async () => {
      const email = `${name("u")}@example.test`;
      const password = "a long enough password";
      const root = await cloud.api<{ items: { id: number }[] }>("GET", "/api/v1/groups");
      const rootId = root.body.items[0]?.id;
      expect(
        (await cloud.api("POST", "/api/v1/users", { email, password, roles: [{ group: rootId, role: "admin" }] }))
          .status,
      ).toBe(201);
      const login = await cloud.api<{ token: string }>("POST", "/api/v1/auth/login", { email, password }, false);
      expect(login.status).toBe(200);
      const tenantAdmin = basic(cloud.credential.id, cloud.credential.secret);
      for (const auth of [tenantAdmin, `Bearer ${login.body.token}`]) {
        const create = await cloud.api<Err>("POST", "/api/v1/organizations", { name: name("sneaky") }, auth);
        expect(create.status).toBe(403);
        expect(create.body.error).toMatchObject({
          code: "FORBIDDEN",
          message: "this credential lacks organizations:write everywhere",
        });
        const list = await cloud.api<Err>("GET", "/api/v1/organizations", undefined, auth);
        expect(list.status).toBe(403);
        expect(list.body.error.message).toBe("this credential lacks organizations:read everywhere");
        expect(list.text).not.toContain("default");
      }
      // The refusal reads like any right held nowhere: a viewer on a `list` route it cannot use.
      const viewer = await cloud.api<{ credential: { id: string }; secret: string }>("POST", "/api/v1/credentials", {
        name: name("viewer"),
        role: "viewer",
        group: rootId,
      });
      const viewerAuth = basic(viewer.body.credential.id, viewer.body.secret);
      const refused = await cloud.api<Err>("POST", "/api/v1/groups", { name: name("g") }, viewerAuth);
      expect(refused.status).toBe(403);
      expect(refused.body.error.message).toBe("this credential lacks groups:write everywhere");
      // Nothing was created by the refused calls.
      const listed = await cloud.api<Listed>("GET", "/api/v1/organizations", undefined, host);
      expect(listed.body.items.map((o) => o.name).join()).not.toContain("sneaky");
    });

    it("refuses no credential and a wrong host secret with AUTH_REQUIRED, and the host credential everywhere else", async () => {
      expect((await cloud.api<Err>("GET", "/api/v1/organizations", undefined, false)).body.error.code).toBe(
        "AUTH_REQUIRED",
      );
      const [id] = hostPair.split(":");
      const wrong = await cloud.api<Err>("GET", "/api/v1/organizations", undefined, basic(String(id), "fgs_wrong"));
      expect(wrong.status).toBe(401);
      expect(wrong.body.error.code).toBe("AUTH_REQUIRED");
      for (const p of ["/api/v1/devices", "/api/v1/organization", "/api/v1/auth/whoami"]) {
        const answer = await cloud.api<Err>("GET", p, undefined, host);
        expect(answer.status).toBe(401);
        expect(answer.body.error.code).toBe("AUTH_REQUIRED");
      }
    });

    it("documents the routes in OpenAPI with their security", async () => {
      const doc = await cloud.api<{ paths: Record<string, Record<string, { security: unknown[] }>> }>(
        "GET",
        "/api/v1/openapi.json",
        undefined,
        false,
      );
      const ops = doc.body.paths["/api/v1/organizations"];
      expect(Object.keys(ops ?? {}).sort()).toEqual(["get", "post"]);
      expect(ops?.post?.security).toEqual([{ hostCredential: [] }]);
      expect(ops?.get?.security).toEqual([{ hostCredential: [] }]);
    });
  });

  describe("CLI", () => {
    it("creates and lists with --data-dir's host credential, in text and JSON", async () => {
      const org = name("cli");
      const text = await cli(["organizations", "create", org, "--data-dir", cloud.dataDir]);
      expect(text.stderr).toBe("");
      expect(text.code).toBe(0);
      expect(text.stdout).toMatch(
        new RegExp(`^created organization ${org}\\nadmin credential \\(shown once\\): fgc_\\w+:fgs_\\S+\\n`),
      );
      const json = await cli(["organizations", "create", name("cli-json"), "--data-dir", cloud.dataDir, "--json"]);
      const made = JSON.parse(json.stdout) as { organization: string; credentialId: string; secret: string };
      expect(made.credentialId).toMatch(/^fgc_/);
      // The new tenant's admin sees its own organization only.
      const mine = await cli([
        "org",
        "show",
        "--data-dir",
        cloud.dataDir,
        "--credential",
        `${made.credentialId}:${made.secret}`,
      ]);
      expect(JSON.parse(mine.stdout)).toMatchObject({ name: made.organization });

      const list = await cli(["organizations", "list", "--data-dir", cloud.dataDir]);
      expect(list.code).toBe(0);
      expect(list.stdout).toContain(`${org}\t0 device(s)\n`);
      expect(list.stdout).toMatch(/^default\t\d+ device\(s\)\n/);
      const listJson = await cli(["organizations", "list", "--data-dir", cloud.dataDir, "--json"]);
      expect(JSON.parse(listJson.stdout)).toContainEqual({ name: org, devices: 0 });
    });

    it("takes the host credential from FIELDGATE_CREDENTIAL or --credential off the host", async () => {
      const conn = ["--url", cloud.url, "--ca-file", cloud.caFile];
      const viaEnv = await cli(["organizations", "list", ...conn], { FIELDGATE_CREDENTIAL: hostPair });
      expect(viaEnv.code).toBe(0);
      expect(viaEnv.stdout).toContain("default\t");
      const viaFlag = await cli(["organizations", "create", name("flag"), ...conn, "--credential", hostPair]);
      expect(viaFlag.code).toBe(0);
      // --data-dir's host credential beats a tenant credential in the environment.
      const tenant = `${cloud.credential.id}:${cloud.credential.secret}`;
      const both = await cli(["organizations", "list", "--data-dir", cloud.dataDir], { FIELDGATE_CREDENTIAL: tenant });
      expect(both.code).toBe(0);
    });

    it("shows the refusal for a tenant credential, a taken name, a bad name and a missing host credential", async () => {
      const conn = ["--url", cloud.url, "--ca-file", cloud.caFile];
      const tenant = `${cloud.credential.id}:${cloud.credential.secret}`;
      const forbidden = await cli(["organizations", "create", name("t"), ...conn, "--credential", tenant]);
      expect(forbidden.code).not.toBe(0);
      expect(forbidden.stderr).toContain("FORBIDDEN");
      expect(forbidden.stderr).toContain("this credential lacks organizations:write everywhere");
      const taken = await cli(["organizations", "create", "default", "--data-dir", cloud.dataDir]);
      expect(taken.code).not.toBe(0);
      expect(taken.stderr).toContain("ORGANIZATION_EXISTS");
      const bad = await cli(["organizations", "create", "two words", "--data-dir", cloud.dataDir]);
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toContain("VALIDATION_FAILED");
      const elsewhere = tempDir("no-host");
      const none = await cli(["organizations", "list", "--data-dir", elsewhere, ...conn]);
      expect(none.code).not.toBe(0);
      expect(none.stderr).toContain("AUTH_REQUIRED");
      expect(none.stderr).toContain("host-credential.json");
      expect(`${forbidden.stderr}${none.stderr}`).not.toMatch(/\n\s+at /);
    });
  });
});

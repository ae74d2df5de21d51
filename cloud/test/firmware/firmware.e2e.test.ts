import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import https from "node:https";
import path from "node:path";
import { type SignedManifest, verifyManifestSignature } from "@fieldgate/shared";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CloudProcess, cloudBin, startCloud, tempDir } from "../../../test/support/cloud-process.js";
import {
  type EnrolledDevice,
  enrollWithToken,
  makeCsr,
  registerDevice,
} from "../../../test/support/device-identity.js";

type Err = { error: { code: string } };
type Answer = { status: number; headers: Record<string, string | string[] | undefined>; body: Buffer };

/** Keygen, upload, list, show, delete, tenant isolation and device downloads against a real cloud. */
describe("firmware images in the cloud", () => {
  let cloud: CloudProcess;
  let fwDir: string;
  let publicPem: string;
  let work: string;
  const image = randomBytes(40_000);
  const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString("base64")}`;
  const cli = (...args: string[]) =>
    execFileSync(process.execPath, [cloudBin, ...args, "--data-dir", cloud.dataDir], { encoding: "utf8" });

  const upload = (query: string, body: Buffer, auth?: string, headers: Record<string, string> = {}) =>
    raw("POST", `/api/v1/firmware?${query}`, {
      body,
      headers: {
        "content-type": "application/octet-stream",
        authorization: auth ?? basic(cloud.credential.id, cloud.credential.secret),
        ...headers,
      },
    });
  const raw = (
    method: string,
    p: string,
    o: { body?: Buffer; headers?: Record<string, string | number>; device?: EnrolledDevice } = {},
  ) =>
    new Promise<Answer>((resolve, reject) => {
      const req = https.request(new URL(p, cloud.url), {
        method,
        ca: cloud.caPem,
        headers: { ...(o.body && { "content-length": o.body.length }), ...o.headers },
        ...(o.device && { key: o.device.keyPem, cert: o.device.certPem }),
      });
      req.on("response", (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
        );
      });
      req.on("error", reject);
      req.end(o.body);
    });
  const json = <T>(a: Answer) => JSON.parse(a.body.toString("utf8")) as T;

  beforeAll(async () => {
    const dataDir = tempDir("fw-cloud");
    work = tempDir("fw-work");
    fwDir = path.join(work, "store");
    const keygen = execFileSync(process.execPath, [cloudBin, "firmware", "keygen", "--data-dir", dataDir, "--json"], {
      encoding: "utf8",
    });
    publicPem = (JSON.parse(keygen) as { publicKeyPem: string }).publicKeyPem;
    expect(fs.statSync(path.join(dataDir, "firmware-signing.key")).mode & 0o777).toBe(0o600);
    cloud = await startCloud({ dataDir, args: ["--firmware-dir", fwDir, "--firmware-max-size", "64KiB"] });
    for (const name of ["gw-a", "gw-b"]) {
      expect((await cloud.api("POST", "/api/v1/device-types", { name })).status).toBe(201);
    }
    fs.writeFileSync(path.join(work, "image.bin"), image);
  });
  afterAll(() => cloud?.stop());

  it("keygen refuses to overwrite the signing key", () => {
    expect(() =>
      execFileSync(process.execPath, [cloudBin, "firmware", "keygen", "--data-dir", cloud.dataDir], { stdio: "pipe" }),
    ).toThrow(/exists/);
  });

  it("uploads with the CLI, stores image and signed manifest in the documented layout, lists and shows", () => {
    const out = cli(
      "firmware",
      "upload",
      path.join(work, "image.bin"),
      "--name",
      "gw-os",
      "--version",
      "1.0.0",
      "--compatible",
      "gw-a",
      "--json",
    );
    const uploaded = JSON.parse(out) as { size: number; sha256: string; keyId: string };
    const sha256 = createHash("sha256").update(image).digest("hex");
    expect(uploaded).toMatchObject({ size: image.length, sha256 });
    const dir = path.join(fwDir, "1", "gw-os", "1.0.0");
    expect(fs.readFileSync(path.join(dir, "image.bin")).equals(image)).toBe(true);
    const signed = JSON.parse(fs.readFileSync(path.join(dir, "manifest.json"), "utf8")) as SignedManifest;
    expect(signed.manifest).toMatchObject({ name: "gw-os", version: "1.0.0", compatible: ["gw-a"], sha256 });
    expect(verifyManifestSignature(signed, publicPem)).toBe(true);

    const list = JSON.parse(cli("firmware", "list", "--json")) as { name: string; version: string }[];
    expect(list.map((i) => `${i.name}@${i.version}`)).toContain("gw-os@1.0.0");
    const shown = JSON.parse(cli("firmware", "show", "gw-os@1.0.0", "--json")) as { signed: SignedManifest };
    expect(shown.signed).toEqual(signed);
  });

  it("answers 409 FIRMWARE_EXISTS to the same name and version", async () => {
    const res = await upload("name=gw-os&version=1.0.0&compatible=gw-a", image);
    expect(res.status).toBe(409);
    expect(json<Err>(res).error.code).toBe("FIRMWARE_EXISTS");
  });

  it("refuses an image over the size limit with 413 and keeps nothing", async () => {
    const res = await upload("name=big&version=1.0.0&compatible=gw-a", randomBytes(70 * 1024));
    expect(res.status).toBe(413);
    expect(json<Err>(res).error.code).toBe("FIRMWARE_TOO_LARGE");
    expect(fs.readdirSync(path.join(fwDir, ".incoming"))).toEqual([]);
    expect(
      (await cloud.api<{ items: { name: string }[] }>("GET", "/api/v1/firmware")).body.items.map((i) => i.name),
    ).not.toContain("big");
  });

  it("lets a firmware-manager upload and refuses a viewer (403)", async () => {
    const make = async (role: string) => {
      const made = await cloud.api<{ credential: { id: string }; secret: string }>("POST", "/api/v1/credentials", {
        name: `fw-${role}`,
        role,
      });
      return basic(made.body.credential.id, made.body.secret);
    };
    const viewer = await upload("name=gw-os&version=1.1.0&compatible=gw-a", image, await make("viewer"));
    expect(viewer.status).toBe(403);
    const manager = await upload(
      "name=gw-os&version=1.1.0&compatible=gw-a,gw-b",
      image,
      await make("firmware-manager"),
    );
    expect(manager.status, manager.body.toString()).toBe(201);
  });

  it("accepts an offline signature only for the same bytes and the cloud's key", async () => {
    const manifestFile = path.join(work, "manifest.json");
    const signedFile = path.join(work, "signed.json");
    execFileSync(process.execPath, [
      cloudBin,
      "firmware",
      "manifest",
      path.join(work, "image.bin"),
      "--name",
      "offline",
      "--version",
      "3.0.0",
      "--compatible",
      "gw-a",
      "--out",
      manifestFile,
    ]);
    execFileSync(process.execPath, [
      cloudBin,
      "firmware",
      "sign-manifest",
      "--manifest",
      manifestFile,
      "--key",
      path.join(cloud.dataDir, "firmware-signing.key"),
      "--out",
      signedFile,
    ]);
    const header = { "x-fieldgate-signed-manifest": Buffer.from(fs.readFileSync(signedFile)).toString("base64") };
    const tampered = Buffer.from(image);
    tampered[0] = (tampered[0] ?? 0) ^ 1;
    const bad = await upload("name=offline&version=3.0.0&compatible=gw-a", tampered, undefined, header);
    expect(json<Err>(bad).error.code).toBe("FIRMWARE_HASH_MISMATCH");
    const out = cli("firmware", "upload", path.join(work, "image.bin"), "--signature", signedFile, "--json");
    expect(JSON.parse(out)).toMatchObject({ name: "offline", version: "3.0.0" });
    const stored = JSON.parse(fs.readFileSync(path.join(fwDir, "1", "offline", "3.0.0", "manifest.json"), "utf8"));
    expect(stored).toEqual(JSON.parse(fs.readFileSync(signedFile, "utf8")));
  });

  it("keeps organizations apart: another tenant sees 404 and an empty list", async () => {
    const out = execFileSync(process.execPath, [
      cloudBin,
      "organizations",
      "create",
      "fw-other",
      "--data-dir",
      cloud.dataDir,
      "--json",
    ]).toString();
    const other = JSON.parse(out) as { credentialId: string; secret: string };
    const auth = basic(other.credentialId, other.secret);
    const shown = await cloud.api<Err>("GET", "/api/v1/firmware/gw-os/1.0.0", undefined, auth);
    expect(shown.status).toBe(404);
    expect(shown.body.error.code).toBe("FIRMWARE_NOT_FOUND");
    expect((await cloud.api<{ items: unknown[] }>("GET", "/api/v1/firmware", undefined, auth)).body.items).toEqual([]);
    expect((await cloud.api("DELETE", "/api/v1/firmware/gw-os/1.0.0", undefined, auth)).status).toBe(404);
  });

  describe("devices", () => {
    let deviceA: EnrolledDevice;
    let deviceB: EnrolledDevice;
    let enrollKey: string | undefined;

    beforeAll(async () => {
      const a = await registerDevice(cloud, { type: "gw-a" });
      deviceA = await enrollWithToken(cloud, a.uuid, a.token);
      const b = await registerDevice(cloud, { type: "gw-b" });
      deviceB = await enrollWithToken(cloud, b.uuid, b.token);
      // Enrolled by hand to read the whole answer.
      const c = await registerDevice(cloud);
      const keys = await makeCsr();
      const answer = await cloud.api<{ firmwarePublicKey?: string }>(
        "POST",
        "/api/v1/enroll",
        { v: 1, uuid: c.uuid, method: "token", token: c.token, csr: keys.csrPem },
        false,
      );
      enrollKey = answer.body.firmwarePublicKey;
    });

    it("learn the firmware public key at enrollment", () => {
      expect(enrollKey).toBe(publicPem);
    });

    it("download the manifest and the image, whole and by Range", async () => {
      const manifest = await raw("GET", "/api/v1/firmware/gw-os/1.0.0/manifest", { device: deviceA });
      expect(manifest.status).toBe(200);
      expect(verifyManifestSignature(json<SignedManifest>(manifest), publicPem)).toBe(true);
      const whole = await raw("GET", "/api/v1/firmware/gw-os/1.0.0/image", { device: deviceA });
      expect(whole.status).toBe(200);
      expect(whole.body.equals(image)).toBe(true);
      expect(whole.headers["accept-ranges"]).toBe("bytes");
      expect(whole.headers.etag).toBe(`"${createHash("sha256").update(image).digest("hex")}"`);
      const part = await raw("GET", "/api/v1/firmware/gw-os/1.0.0/image", {
        device: deviceA,
        headers: { range: "bytes=100-199" },
      });
      expect(part.status).toBe(206);
      expect(part.headers["content-range"]).toBe(`bytes 100-199/${image.length}`);
      expect(part.body.equals(image.subarray(100, 200))).toBe(true);
      const tail = await raw("GET", "/api/v1/firmware/gw-os/1.0.0/image", {
        device: deviceA,
        headers: { range: "bytes=39990-" },
      });
      expect(tail.body.equals(image.subarray(39_990))).toBe(true);
      const bad = await raw("GET", "/api/v1/firmware/gw-os/1.0.0/image", {
        device: deviceA,
        headers: { range: `bytes=${image.length}-` },
      });
      expect(bad.status).toBe(416);
      expect(bad.headers["content-range"]).toBe(`bytes */${image.length}`);
    });

    it("get 404 for an image not made for their type, and 401 without a certificate", async () => {
      const res = await raw("GET", "/api/v1/firmware/gw-os/1.0.0/image", { device: deviceB });
      expect(res.status).toBe(404);
      expect(json<Err>(res).error.code).toBe("FIRMWARE_NOT_FOUND");
      expect((await raw("GET", "/api/v1/firmware/gw-os/1.1.0/image", { device: deviceB })).status).toBe(200);
      expect((await raw("GET", "/api/v1/firmware/gw-os/1.0.0/image")).status).toBe(401);
    });
  });

  it("deletes an image, and refuses while an active rollout uses it", async () => {
    const { uuid } = await registerDevice(cloud, { type: "gw-a" });
    const rollout = await cloud.api<{ id: number }>("POST", "/api/v1/rollouts", {
      firmware: "gw-os@1.1.0",
      target: { devices: [uuid] },
    });
    expect(rollout.status, JSON.stringify(rollout.body)).toBe(201);
    const busy = await cloud.api<Err>("DELETE", "/api/v1/firmware/gw-os/1.1.0");
    expect(busy.status).toBe(409);
    expect(busy.body.error.code).toBe("FIRMWARE_IN_USE");
    // Aborted, with its job cancelled before the device took it: the image is free again.
    expect((await cloud.api("POST", `/api/v1/rollouts/${rollout.body.id}/abort`)).status).toBe(200);
    expect((await cloud.api("DELETE", "/api/v1/firmware/gw-os/1.1.0")).status).toBe(204);
    expect(cli("firmware", "delete", "gw-os@1.0.0", "--yes")).toContain("deleted gw-os@1.0.0");
    expect(fs.existsSync(path.join(fwDir, "1", "gw-os", "1.0.0"))).toBe(false);
    expect((await cloud.api("GET", "/api/v1/firmware/gw-os/1.0.0")).status).toBe(404);
  });
});

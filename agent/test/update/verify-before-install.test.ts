import { createHash, generateKeyPairSync, sign } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { canonicalManifest, type FirmwareManifest, firmwareKeyId, type SignedManifest } from "@fieldgate/shared";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { InstalledVersionStore } from "../../src/update/installed-version-store.js";
import { type VerifyInput, verifyBeforeInstall } from "../../src/update/verify-before-install.js";
import { tempDir } from "../helpers/tmp.js";

function keyPair() {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  return { privateKey, publicPem: publicKey.export({ type: "spki", format: "pem" }).toString() };
}

describe("verifyBeforeInstall", () => {
  let tmp: ReturnType<typeof tempDir>;
  const key = keyPair();
  const image = Buffer.from("firmware image bytes ".repeat(100));
  let imagePath: string;
  const manifestFor = (over: Partial<FirmwareManifest> = {}): FirmwareManifest => ({
    v: 1,
    name: "gw-os",
    version: "2.0.0",
    compatible: ["gw-a"],
    size: image.length,
    sha256: createHash("sha256").update(image).digest("hex"),
    created: "2026-01-01T00:00:00.000Z",
    ...over,
  });
  const signedBy = (k: ReturnType<typeof keyPair>, m: FirmwareManifest): SignedManifest => ({
    manifest: m,
    signature: sign(null, Buffer.from(canonicalManifest(m)), k.privateKey).toString("base64"),
    keyId: firmwareKeyId(k.publicPem),
  });
  const input = (over: Partial<VerifyInput> = {}): VerifyInput => ({
    signed: signedBy(key, manifestFor()),
    imagePath,
    publicKeys: [key.publicPem],
    deviceFirmwareCompat: "gw-a",
    installedVersion: "1.0.0",
    agentVersion: "0.1.0",
    ...over,
  });
  const codeOf = async (i: VerifyInput) =>
    verifyBeforeInstall(i).then(
      () => "accepted",
      (err: { code?: string }) => err.code,
    );

  beforeEach(() => {
    tmp = tempDir();
    imagePath = join(tmp.dir, "image.bin");
    writeFileSync(imagePath, image);
  });
  afterEach(() => tmp.cleanup());

  it("accepts a good, newer, compatible image signed by a trusted key", async () => {
    expect(await codeOf(input())).toBe("accepted");
    expect(await codeOf(input({ installedVersion: undefined }))).toBe("accepted");
  });

  it("rejects a manifest signed by any other key", async () => {
    expect(await codeOf(input({ signed: signedBy(keyPair(), manifestFor()) }))).toBe("FIRMWARE_SIGNATURE_INVALID");
    expect(await codeOf(input({ publicKeys: [] }))).toBe("FIRMWARE_SIGNATURE_INVALID");
  });

  it("says which refusal it is and what fixes it: no key, an untrusted key, a signature that does not verify", async () => {
    const messageOf = (i: VerifyInput) =>
      verifyBeforeInstall(i).then(
        () => "accepted",
        (err: Error) => err.message,
      );
    expect(await messageOf(input({ publicKeys: [] }))).toMatch(
      /trusts no firmware signing key.*Run `fieldgate-cloud firmware keygen` on the cloud host/,
    );
    const other = keyPair();
    const signed = signedBy(other, manifestFor());
    expect(await messageOf(input({ signed }))).toContain(
      `gw-os@2.0.0 was signed by key ${firmwareKeyId(other.publicPem)}, which this device does not trust (it trusts ${firmwareKeyId(key.publicPem)})`,
    );
    // A manifest that names a trusted key but carries another key's signature.
    const forged = { ...signed, keyId: firmwareKeyId(key.publicPem) };
    expect(await messageOf(input({ signed: forged }))).toMatch(
      /does not verify with trusted key .*altered or corrupted/,
    );
  });

  it("rejects a manifest changed after signing", async () => {
    const signed = signedBy(key, manifestFor());
    expect(await codeOf(input({ signed: { ...signed, manifest: { ...signed.manifest, version: "9.0.0" } } }))).toBe(
      "FIRMWARE_SIGNATURE_INVALID",
    );
  });

  it("rejects a tampered image of the right size", async () => {
    const tampered = Buffer.from(image);
    tampered[10] = (tampered[10] ?? 0) ^ 1;
    writeFileSync(imagePath, tampered);
    expect(await codeOf(input())).toBe("FIRMWARE_HASH_MISMATCH");
  });

  it("rejects a file one byte longer than the manifest says", async () => {
    writeFileSync(imagePath, Buffer.concat([image, Buffer.from([0])]));
    expect(await codeOf(input())).toBe("FIRMWARE_SIZE_MISMATCH");
    writeFileSync(imagePath, image.subarray(0, image.length - 1));
    expect(await codeOf(input())).toBe("FIRMWARE_SIZE_MISMATCH");
  });

  it("rejects the same version and a downgrade (anti-rollback)", async () => {
    expect(await codeOf(input({ installedVersion: "2.0.0" }))).toBe("FIRMWARE_NOT_NEWER");
    expect(await codeOf(input({ installedVersion: "2.0.1" }))).toBe("FIRMWARE_NOT_NEWER");
  });

  it("lets a rollback return to exactly the version the last update replaced, and nowhere else", async () => {
    // The device runs 3.0.0, which replaced 2.0.0; the image is 2.0.0.
    const back = { installedVersion: "3.0.0", rollback: true };
    expect(await codeOf(input({ ...back, rollbackTo: "2.0.0" }))).toBe("accepted");
    expect(await codeOf(input({ ...back, rollbackTo: "1.0.0" }))).toBe("FIRMWARE_NOT_NEWER");
    expect(await codeOf(input({ ...back, rollbackTo: undefined }))).toBe("FIRMWARE_NOT_NEWER");
    // Without the rollback flag the recorded previous version buys nothing.
    expect(await codeOf(input({ installedVersion: "3.0.0", rollbackTo: "2.0.0" }))).toBe("FIRMWARE_NOT_NEWER");
  });

  it("rejects an image for another device type", async () => {
    expect(await codeOf(input({ deviceFirmwareCompat: "gw-b" }))).toBe("FIRMWARE_INCOMPATIBLE");
  });

  it("rejects an image that needs a newer agent", async () => {
    const signed = signedBy(key, manifestFor({ minAgentVersion: "0.2.0" }));
    expect(await codeOf(input({ signed }))).toBe("AGENT_TOO_OLD");
    expect(await codeOf(input({ signed, agentVersion: "0.2.0" }))).toBe("accepted");
  });
});

describe("InstalledVersionStore", () => {
  it("keeps the installed version across a reopen (a reboot) and refuses a damaged record", () => {
    const tmp = tempDir();
    try {
      expect(new InstalledVersionStore(tmp.dir).get()).toBeUndefined();
      new InstalledVersionStore(tmp.dir).set("1.4.0");
      expect(new InstalledVersionStore(tmp.dir).get()).toBe("1.4.0");
      expect(new InstalledVersionStore(tmp.dir).previous()).toBeUndefined();
      new InstalledVersionStore(tmp.dir).set("1.5.0");
      expect(new InstalledVersionStore(tmp.dir).previous()).toBe("1.4.0");
      new InstalledVersionStore(tmp.dir).set("1.4.0");
      expect(new InstalledVersionStore(tmp.dir).previous()).toBe("1.5.0");
      const file = join(tmp.dir, "firmware", "installed.json");
      expect(JSON.parse(readFileSync(file, "utf8"))).toMatchObject({ version: "1.4.0", previous: "1.5.0" });
      writeFileSync(file, "{garbage");
      expect(() => new InstalledVersionStore(tmp.dir).get()).toThrow(/damaged/);
    } finally {
      tmp.cleanup();
    }
  });
});

describe("trusted firmware keys", () => {
  it("come from the enrollment answer (kept in identity.json) and from updates.publicKeyFile", async () => {
    const { IdentityStore } = await import("../../src/identity/identity-store.js");
    const { trustedFirmwareKeys } = await import("../../src/update/verify-before-install.js");
    const tmp = tempDir();
    try {
      const enrolled = keyPair().publicPem;
      const configured = keyPair().publicPem;
      const info = { firmwarePublicKey: enrolled };
      writeFileSync(join(tmp.dir, "fw.pub"), configured);
      expect(
        trustedFirmwareKeys(info, { publicKeyFile: join(tmp.dir, "fw.pub") }, (f) => readFileSync(f, "utf8")),
      ).toEqual([enrolled, configured]);
      expect(() =>
        trustedFirmwareKeys(undefined, { publicKeyFile: join(tmp.dir, "missing") }, (f) => readFileSync(f, "utf8")),
      ).toThrow(/updates.publicKeyFile/);
      expect(new IdentityStore(tmp.dir).loadInfo()).toBeUndefined();
    } finally {
      tmp.cleanup();
    }
  });
});

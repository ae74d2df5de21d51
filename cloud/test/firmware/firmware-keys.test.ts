import { generateKeyPairSync } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { firmwareKeyId, verifyManifestSignature } from "@fieldgate/shared";
import { describe, expect, it } from "vitest";
import { tempDir } from "../../../test/support/cloud-process.js";
import {
  FirmwareKeys,
  generateFirmwareKey,
  previousKeysDirFor,
  retireFirmwareKey,
  rotateFirmwareKey,
} from "../../src/firmware/firmware-keys.js";

const manifest = {
  v: 1 as const,
  name: "gw-os",
  version: "1.0.0",
  compatible: ["a"],
  size: 1,
  sha256: "0".repeat(64),
  created: "2026-01-01T00:00:00.000Z",
};

describe("FirmwareKeys: the cloud's signing key and the keys devices trust", () => {
  it("sees a key made after it started, and a rotation, without being rebuilt", () => {
    const keyFile = path.join(tempDir("fwk"), "firmware-signing.key");
    const keys = new FirmwareKeys(keyFile);
    expect(keys.trusted()).toEqual([]);
    expect(keys.canSign()).toBe(false);

    const first = generateFirmwareKey(keyFile);
    expect(keys.trusted()).toEqual([{ keyId: first.keyId, publicKey: first.publicKeyPem, signing: true }]);
    expect(keys.sign(manifest).keyId).toBe(first.keyId);

    const rotated = rotateFirmwareKey(keyFile);
    expect(rotated.previousKeyId).toBe(first.keyId);
    const signed = keys.sign(manifest);
    expect(signed.keyId).toBe(rotated.keyId);
    expect(verifyManifestSignature(signed, rotated.publicKeyPem)).toBe(true);
    expect(keys.trusted().map((k) => [k.keyId, k.signing])).toEqual([
      [rotated.keyId, true],
      [first.keyId, false],
    ]);

    expect(retireFirmwareKey(keyFile, first.keyId).map((k) => k.keyId)).toEqual([rotated.keyId]);
    expect(keys.trusted().map((k) => k.keyId)).toEqual([rotated.keyId]);
  });

  it("offline signing: rotate installs a public key made elsewhere; the cloud can verify, not sign", () => {
    const dir = tempDir("fwk-offline");
    const pubFile = path.join(dir, "fw.pub");
    const old = generateKeyPairSync("ed25519").publicKey.export({ type: "spki", format: "pem" }).toString();
    fs.writeFileSync(pubFile, old);
    const fresh = generateKeyPairSync("ed25519").publicKey.export({ type: "spki", format: "pem" }).toString();
    expect(() => rotateFirmwareKey(pubFile)).toThrow(
      /make the new key offline and pass its public key with --public-key/,
    );
    const rotated = rotateFirmwareKey(pubFile, fresh);
    expect(rotated).toMatchObject({ previousKeyId: firmwareKeyId(old), keyId: firmwareKeyId(fresh) });
    const keys = new FirmwareKeys(pubFile);
    expect(keys.canSign()).toBe(false);
    expect(keys.trusted().map((k) => k.keyId)).toEqual([firmwareKeyId(fresh), firmwareKeyId(old)]);
    expect(fs.readdirSync(previousKeysDirFor(pubFile))).toEqual([`${firmwareKeyId(old)}.pub`]);
    const rsa = generateKeyPairSync("rsa", { modulusLength: 1024 }).publicKey.export({ type: "spki", format: "pem" });
    expect(() => rotateFirmwareKey(pubFile, rsa.toString())).toThrow(/Ed25519 public key/);
  });

  it("refuses: rotate without a key, retire of the signing key or an unknown one, a previous key that is not Ed25519", () => {
    const keyFile = path.join(tempDir("fwk-refuse"), "firmware-signing.key");
    expect(() => rotateFirmwareKey(keyFile)).toThrow(expect.objectContaining({ code: "FIRMWARE_SIGNING_KEY_MISSING" }));
    const { keyId } = generateFirmwareKey(keyFile);
    expect(() => generateFirmwareKey(keyFile)).toThrow(/firmware rotate/);
    expect(() => retireFirmwareKey(keyFile, keyId)).toThrow(/current signing key/);
    expect(() => retireFirmwareKey(keyFile, "0123456789abcdef")).toThrow(/can be retired: none/);
    fs.mkdirSync(previousKeysDirFor(keyFile), { recursive: true });
    const junk = path.join(previousKeysDirFor(keyFile), "junk.pub");
    fs.writeFileSync(junk, "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n");
    expect(() => new FirmwareKeys(keyFile).trusted()).toThrow(
      expect.objectContaining({ code: "CONFIG_INVALID", message: expect.stringContaining(junk) }),
    );
  });
});

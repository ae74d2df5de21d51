import { generateKeyPairSync, sign } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  canonicalManifest,
  compareVersions,
  type FirmwareManifest,
  firmwareKeyId,
  isSemver,
  type SignedManifest,
  verifyManifestSignature,
} from "../src/firmware-schemas.js";

const manifest: FirmwareManifest = {
  v: 1,
  name: "gw-os",
  version: "1.2.3",
  compatible: ["gw-a", "gw-b"],
  size: 42,
  sha256: "a".repeat(64),
  created: "2026-01-01T00:00:00.000Z",
};

function signWith(m: FirmwareManifest): { signed: SignedManifest; publicPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const publicPem = publicKey.export({ type: "spki", format: "pem" }).toString();
  const signature = sign(null, Buffer.from(canonicalManifest(m)), privateKey).toString("base64");
  return { signed: { manifest: m, signature, keyId: firmwareKeyId(publicPem) }, publicPem };
}

describe("canonical manifest", () => {
  it("is sorted-key JSON without whitespace, whatever the key order", () => {
    const shuffled = Object.fromEntries(Object.entries(manifest).reverse()) as FirmwareManifest;
    expect(canonicalManifest(shuffled)).toBe(canonicalManifest(manifest));
    expect(canonicalManifest(manifest)).toBe(
      `{"compatible":["gw-a","gw-b"],"created":"2026-01-01T00:00:00.000Z","name":"gw-os","sha256":"${"a".repeat(64)}","size":42,"v":1,"version":"1.2.3"}`,
    );
  });

  it("omits an absent minAgentVersion and includes a present one", () => {
    expect(canonicalManifest({ ...manifest, minAgentVersion: undefined })).toBe(canonicalManifest(manifest));
    expect(canonicalManifest({ ...manifest, minAgentVersion: "0.2.0" })).toContain('"minAgentVersion":"0.2.0"');
  });
});

describe("manifest signatures", () => {
  it("verify with the signing key only", () => {
    const { signed, publicPem } = signWith(manifest);
    expect(verifyManifestSignature(signed, publicPem)).toBe(true);
    const other = signWith(manifest);
    expect(verifyManifestSignature(signed, other.publicPem)).toBe(false);
    expect(verifyManifestSignature(other.signed, publicPem)).toBe(false);
  });

  it("fail when any field changes after signing", () => {
    const { signed, publicPem } = signWith(manifest);
    expect(verifyManifestSignature({ ...signed, manifest: { ...manifest, size: 43 } }, publicPem)).toBe(false);
    expect(verifyManifestSignature({ ...signed, manifest: { ...manifest, compatible: ["gw-a"] } }, publicPem)).toBe(
      false,
    );
  });

  it("refuse a non-Ed25519 key and garbage", () => {
    const { signed } = signWith(manifest);
    const ec = generateKeyPairSync("ec", { namedCurve: "prime256v1" }).publicKey.export({
      type: "spki",
      format: "pem",
    });
    expect(verifyManifestSignature(signed, ec.toString())).toBe(false);
    expect(verifyManifestSignature(signed, "not a key")).toBe(false);
  });
});

describe("versions", () => {
  it("compare by semver precedence", () => {
    expect(compareVersions("1.10.0", "1.9.0")).toBeGreaterThan(0);
    expect(compareVersions("1.0.0-rc.1", "1.0.0")).toBeLessThan(0);
    expect(compareVersions("1.0.0+build.2", "1.0.0+build.1")).toBe(0);
    expect(compareVersions("2.0.0", "2.0.0")).toBe(0);
  });

  it("accept strict semver only", () => {
    expect(isSemver("1.2.3")).toBe(true);
    expect(isSemver("1.2.3-beta.1+sha.5")).toBe(true);
    expect(isSemver("v1.2.3")).toBe(false);
    expect(isSemver("01.2.3")).toBe(false);
    expect(isSemver("1.2")).toBe(false);
  });
});

import { generateKeyPairSync } from "node:crypto";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { firmwareKeyId } from "@fieldgate/shared";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FirmwareKeyStore } from "../../src/update/firmware-key-store.js";
import { trustedFirmwareKeys } from "../../src/update/verify-before-install.js";
import { tempDir } from "../helpers/tmp.js";

const ed25519 = () => {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const publicPem = publicKey.export({ type: "spki", format: "pem" }).toString();
  return { publicPem, privatePem: privateKey.export({ type: "pkcs8", format: "pem" }).toString() };
};
const entry = (publicKey: string, signing = true) => ({ keyId: firmwareKeyId(publicKey), publicKey, signing });

describe("FirmwareKeyStore: the keys the cloud sent over mTLS, kept on disk", () => {
  let tmp: ReturnType<typeof tempDir>;
  let store: FirmwareKeyStore;
  beforeEach(() => {
    tmp = tempDir();
    store = new FirmwareKeyStore(tmp.dir);
  });
  afterEach(() => tmp.cleanup());

  it("stores the cloud's keys durably and reads them back in a new instance (a restart)", () => {
    const a = ed25519();
    const b = ed25519();
    expect(store.load()).toBeUndefined();
    expect(store.replace({ v: 1, keys: [entry(a.publicPem), entry(b.publicPem, false)] })).toBe(true);
    const again = new FirmwareKeyStore(tmp.dir).load();
    expect(again?.keys.map((k) => k.keyId)).toEqual([firmwareKeyId(a.publicPem), firmwareKeyId(b.publicPem)]);
    expect(statSync(store.file).mode & 0o777).toBe(0o600);
    // The same answer again changes nothing.
    expect(store.replace({ v: 1, keys: [entry(a.publicPem), entry(b.publicPem, false)] })).toBe(false);
  });

  it("a newer answer replaces the old one: a retired key is no longer trusted", () => {
    const a = ed25519();
    const b = ed25519();
    store.replace({ v: 1, keys: [entry(b.publicPem), entry(a.publicPem, false)] });
    expect(store.replace({ v: 1, keys: [entry(b.publicPem)] })).toBe(true);
    expect(store.load()?.keys.map((k) => k.keyId)).toEqual([firmwareKeyId(b.publicPem)]);
  });

  it("an empty answer keeps the known keys (a cloud without a key cannot make a device forget its keys)", () => {
    const a = ed25519();
    store.replace({ v: 1, keys: [entry(a.publicPem)] });
    expect(store.replace({ v: 1, keys: [] })).toBe(false);
    expect(store.load()?.keys).toHaveLength(1);
  });

  it("refuses, storing nothing, an answer with a key that is not Ed25519, a private key, a wrong key id, or off-schema", () => {
    const good = ed25519();
    const rsa = generateKeyPairSync("rsa", { modulusLength: 1024 })
      .publicKey.export({ type: "spki", format: "pem" })
      .toString();
    const bad: [string, unknown][] = [
      ["rsa", { v: 1, keys: [entry(good.publicPem), entry(rsa)] }],
      [
        "private",
        { v: 1, keys: [{ keyId: firmwareKeyId(good.publicPem), publicKey: good.privatePem, signing: true }] },
      ],
      ["key id", { v: 1, keys: [{ ...entry(good.publicPem), keyId: "0123456789abcdef" }] }],
      ["garbage", { v: 1, keys: [{ keyId: "0123456789abcdef", publicKey: "not a key", signing: true }] }],
      ["schema", { v: 2, keys: [] }],
      ["extra field", { v: 1, keys: [{ ...entry(good.publicPem), trustedForever: true }] }],
    ];
    for (const [what, answer] of bad) {
      expect(() => store.replace(answer), what).toThrow(expect.objectContaining({ code: "VALIDATION_FAILED" }));
      expect(store.load(), what).toBeUndefined();
    }
  });

  it("a stored file that no longer checks out (edited by hand) trusts nothing rather than something", () => {
    const a = ed25519();
    store.replace({ v: 1, keys: [entry(a.publicPem)] });
    const text = JSON.parse(readFileSync(store.file, "utf8"));
    text.keys[0].keyId = "0123456789abcdef";
    writeFileSync(store.file, JSON.stringify(text));
    expect(store.load()).toBeUndefined();
  });
});

describe("trustedFirmwareKeys: where the agent's trust comes from", () => {
  const read = (file: string) => readFileSync(file, "utf8");
  it("the cloud's keys supersede the enrollment key; without them the enrollment key is used", () => {
    const enrolled = ed25519().publicPem;
    const fromCloud = ed25519().publicPem;
    expect(trustedFirmwareKeys({ firmwarePublicKey: enrolled }, {}, read)).toEqual([enrolled]);
    expect(trustedFirmwareKeys({ firmwarePublicKey: enrolled }, {}, read, { v: 1, keys: [entry(fromCloud)] })).toEqual([
      fromCloud,
    ]);
    expect(trustedFirmwareKeys(undefined, {}, read)).toEqual([]);
  });
});

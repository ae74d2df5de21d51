import { spawnSync } from "node:child_process";
import { generateKeyPairSync, webcrypto } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { serveArgs, startCloud, tempDir } from "../../../test/support/cloud-process.js";
import * as x509 from "../../src/pki/x509.js";

/** A data directory as a first start leaves it, copied so each case can break one file. */
async function initialisedDataDir(): Promise<string> {
  const dataDir = tempDir("keyfiles-src");
  const cloud = await startCloud({ dataDir });
  await cloud.stop();
  return dataDir;
}

function serve(dataDir: string, ...extra: string[]) {
  return spawnSync(process.execPath, serveArgs(dataDir, ...extra), { encoding: "utf8", timeout: 20_000 });
}

async function expiredCa(): Promise<{ keyPem: string; certPem: string }> {
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  const alg = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
  const keys = await webcrypto.subtle.generateKey(alg, true, ["sign", "verify"]);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: "01",
    name: "CN=expired test CA",
    notBefore: new Date("2020-01-01T00:00:00Z"),
    notAfter: new Date("2021-01-01T00:00:00Z"),
    keys,
    signingAlgorithm: alg,
    extensions: [new x509.BasicConstraintsExtension(true, 0, true)],
  });
  const der = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey));
  return {
    keyPem: `-----BEGIN PRIVATE KEY-----\n${der.toString("base64")}\n-----END PRIVATE KEY-----\n`,
    certPem: cert.toString("pem"),
  };
}

describe("the cloud checks every key and certificate file it loads (issue #11 item 12)", () => {
  let source: string;
  let other: string;
  beforeAll(async () => {
    [source, other] = await Promise.all([initialisedDataDir(), initialisedDataDir()]);
  }, 60_000);

  const copy = () => {
    const dir = tempDir("keyfiles");
    fs.cpSync(source, dir, { recursive: true });
    return dir;
  };
  const pki = (dir: string, file: string) => path.join(dir, "pki", file);

  const cases: { name: string; breakIt: (dir: string) => unknown; error: RegExp }[] = [
    {
      name: "ca.crt that is not PEM",
      breakIt: (d) => fs.writeFileSync(pki(d, "ca.crt"), "hello\n"),
      error: /pki\/ca\.crt is not a PEM file \(no -----BEGIN line\)\. Restore pki\/ from a backup/,
    },
    {
      name: "ca.crt that holds a key, not a certificate",
      breakIt: (d) => fs.copyFileSync(pki(d, "ca.key"), pki(d, "ca.crt")),
      error: /pki\/ca\.crt holds no certificate \(it holds a PRIVATE KEY\)/,
    },
    {
      name: "an expired CA",
      breakIt: async (d) => {
        const ca = await expiredCa();
        fs.writeFileSync(pki(d, "ca.crt"), ca.certPem);
        fs.writeFileSync(pki(d, "ca.key"), ca.keyPem, { mode: 0o600 });
      },
      error: /pki\/ca\.crt expired on 2021-01-01T00:00:00\.000Z/,
    },
    {
      name: "a CA key that is not the CA certificate's",
      breakIt: (d) => fs.copyFileSync(pki(other, "ca.key"), pki(d, "ca.key")),
      error: /pki\/ca\.key is not the key of the certificate .*pki\/ca\.crt/,
    },
    {
      name: "a CA key without its certificate",
      breakIt: (d) => fs.rmSync(pki(d, "ca.crt")),
      error: /pki\/ca\.crt is missing while .*pki\/ca\.key exists\. Restore pki\/ from a backup/,
    },
    {
      name: "a server key that is not the server certificate's",
      breakIt: (d) => fs.copyFileSync(pki(d, "ca.key"), pki(d, "server.key")),
      error:
        /pki\/server\.key is not the key of the certificate .*pki\/server\.crt\. Move server\.crt and server\.key out of pki\//,
    },
    {
      name: "a server certificate that is not PEM",
      breakIt: (d) => fs.writeFileSync(pki(d, "server.crt"), Buffer.from([0x30, 0x82, 0x01, 0x00])),
      error: /pki\/server\.crt is not a PEM file/,
    },
    {
      name: "a server pair from another cloud's CA",
      breakIt: (d) => {
        fs.copyFileSync(pki(other, "server.crt"), pki(d, "server.crt"));
        fs.copyFileSync(pki(other, "server.key"), pki(d, "server.key"));
      },
      error: /pki\/server\.crt was not issued by .*pki\/ca\.crt/,
    },
    {
      name: "a firmware signing key that is not PEM",
      breakIt: (d) => fs.writeFileSync(path.join(d, "firmware-signing.key"), "not a key\n", { mode: 0o600 }),
      error: /firmware-signing\.key is not a PEM file .*Point --firmware-signing-key at the Ed25519 key/,
    },
    {
      name: "a firmware signing key that is RSA",
      breakIt: (d) => {
        const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
        fs.writeFileSync(
          path.join(d, "firmware-signing.key"),
          rsa.privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
          { mode: 0o600 },
        );
      },
      error: /firmware-signing\.key is not an Ed25519 key/,
    },
  ];

  it.each(cases)(
    "refuses to start with $name: CONFIG_INVALID naming the file and the fix, no stack trace",
    async (c) => {
      const dir = copy();
      await c.breakIt(dir);
      const before = fs.readdirSync(path.join(dir, "pki")).sort();
      const result = serve(dir);
      expect(result.status, result.stderr).toBe(2);
      expect(result.stderr).toMatch(/^error CONFIG_INVALID: /);
      expect(result.stderr).toMatch(c.error);
      expect(result.stderr).not.toMatch(/\n\s+at /);
      // Nothing was replaced, and the lock was released.
      expect(fs.readdirSync(path.join(dir, "pki")).sort()).toEqual(before);
      expect(fs.existsSync(path.join(dir, "cloud.lock"))).toBe(false);
    },
  );

  it("a missing --firmware-signing-key file (no key yet) and a public key (offline signing) start; a directory does not", async () => {
    const dir = copy();
    const cloud = await startCloud({ dataDir: dir, args: ["--firmware-signing-key", path.join(dir, "nothing.key")] });
    await cloud.stop();
    // Offline signing: only a public key on the cloud host.
    const pub = path.join(dir, "offline.pub");
    fs.writeFileSync(pub, generateKeyPairSync("ed25519").publicKey.export({ type: "spki", format: "pem" }).toString());
    const offline = await startCloud({ dataDir: dir, args: ["--firmware-signing-key", pub] });
    await offline.stop();
    const aDirectory = serve(dir, "--firmware-signing-key", dir);
    expect(aDirectory.status).toBe(2);
    expect(aDirectory.stderr).toMatch(/cannot be read \(EISDIR\)/);
  });
});

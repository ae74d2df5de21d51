import { generateKeyPairSync } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ConfigInvalidError, loadConfig } from "../../src/config/load-config.js";
import { identityPaths } from "../../src/identity/identity-store.js";
import { createTestPki, type TestPki } from "../helpers/pki.js";
import { tempDir } from "../helpers/tmp.js";

const UUID = "0f1e2d3c-4b5a-4968-8776-655443322110";
const DAY = 86_400_000;

const p256 = () => generateKeyPairSync("ec", { namedCurve: "prime256v1" });
const pem = (k: ReturnType<typeof p256>["privateKey"]) => k.export({ type: "pkcs8", format: "pem" }).toString();

describe("loadConfig reads every configured key and certificate file", () => {
  let pki: TestPki;
  let tmp: ReturnType<typeof tempDir>;
  beforeAll(async () => {
    pki = await createTestPki();
  });
  beforeEach(() => {
    tmp = tempDir();
  });
  afterEach(() => tmp.cleanup());

  const file = (name: string, text: string) => {
    const path = join(tmp.dir, name);
    writeFileSync(path, text);
    return path;
  };
  /** The problems of a config (`dataDir` in the temp dir), or [] when it loads. */
  const problems = (extra: Record<string, unknown>, now = Date.now()) => {
    try {
      loadConfig({
        raw: { uuid: UUID, dataDir: join(tmp.dir, "data"), cloud: { url: "https://x:1" }, ...extra },
        env: {},
        now: () => now,
      });
      return [];
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigInvalidError);
      return [...(err as ConfigInvalidError).problems];
    }
  };
  const caProblem = (text: string, now?: number) =>
    problems({ cloud: { url: "https://x:1", caFile: file("ca.crt", text) } }, now);

  it("cloud.caFile: accepts a CA certificate, names a file that holds none, with the fix", () => {
    expect(caProblem(pki.caPem)).toEqual([]);
    const [notPem] = caProblem("this is not a certificate\n");
    expect(notPem?.field).toBe("cloud.caFile");
    expect(notPem?.message).toContain(`${join(tmp.dir, "ca.crt")} is not PEM`);
    expect(notPem?.message).toContain("set it to the cloud's CA certificate (<cloud data-dir>/pki/ca.crt)");
    expect(caProblem(pem(p256().privateKey))[0]?.message).toMatch(/holds no certificate \(found PRIVATE KEY\)/);
    const garbled = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    expect(caProblem(garbled)[0]?.message).toMatch(/certificate 1 in .*ca\.crt cannot be parsed/);
    expect(problems({ cloud: { url: "https://x:1", caFile: join(tmp.dir, "none.crt") } })[0]?.message).toContain(
      "(ENOENT)",
    );
  });

  it("cloud.caFile: an expired or not yet valid CA is a warning naming its date (a gateway without a clock must start)", () => {
    const warnings = (now: number) =>
      loadConfig({
        raw: {
          uuid: UUID,
          dataDir: join(tmp.dir, "data"),
          cloud: { url: "https://x:1", caFile: file("ca.crt", pki.caPem) },
        },
        env: {},
        now: () => now,
      }).warnings.join("\n");
    expect(warnings(Date.now())).toBe("");
    expect(warnings(Date.now() + 2 * DAY)).toMatch(/^cloud\.caFile: the certificate in .*ca\.crt expired on \d{4}-/);
    expect(warnings(Date.now() - DAY)).toMatch(/not valid before .*is the clock right/);
  });

  it("enrollment.factoryKeyFile: a P-256 key loads; not PEM, a certificate or an RSA key are named", () => {
    const factory = (text: string) => problems({ enrollment: { factoryKeyFile: file("factory.key", text) } });
    expect(factory(pem(p256().privateKey))).toEqual([]);
    expect(factory("garbage")[0]).toMatchObject({ field: "enrollment.factoryKeyFile" });
    expect(factory("garbage")[0]?.message).toMatch(/is not PEM.*factory-key generate --out/);
    expect(factory(pki.caPem)[0]?.message).toMatch(/holds no private key \(found CERTIFICATE\)/);
    const rsa = generateKeyPairSync("rsa", { modulusLength: 1024 }).privateKey;
    expect(factory(pem(rsa))[0]?.message).toMatch(/must be P-256 or Ed25519, got rsa/);
  });

  it("updates.publicKeyFile: a public key loads; a private key or no PEM is named", () => {
    const keys = p256();
    const publicKey = (text: string) => problems({ updates: { publicKeyFile: file("firmware.pub", text) } });
    expect(publicKey(keys.publicKey.export({ type: "spki", format: "pem" }).toString())).toEqual([]);
    expect(publicKey(pem(keys.privateKey))[0]).toMatchObject({ field: "updates.publicKeyFile" });
    expect(publicKey(pem(keys.privateKey))[0]?.message).toMatch(/holds a private key, not a public key/);
    expect(publicKey("nope")[0]?.message).toMatch(/firmware\.pub is not PEM.*firmware keygen/);
  });

  it("reports every bad file at once", () => {
    const found = problems({
      cloud: { url: "https://x:1", caFile: file("ca.crt", "x") },
      enrollment: { factoryKeyFile: file("f.key", "x") },
      updates: { publicKeyFile: file("p.pub", "x") },
    });
    expect(found.map((p) => p.field)).toEqual(["cloud.caFile", "enrollment.factoryKeyFile", "updates.publicKeyFile"]);
  });

  describe("the stored identity", () => {
    const storeIdentity = async (keyPem?: string) => {
      const paths = identityPaths(join(tmp.dir, "data"));
      mkdirSync(paths.dir, { recursive: true });
      const issued = await pki.issueClient(UUID);
      writeFileSync(paths.key, keyPem ?? issued.keyPem);
      writeFileSync(paths.cert, issued.certPem);
      writeFileSync(paths.ca, pki.caPem);
      writeFileSync(paths.info, JSON.stringify({ uuid: UUID, serial: issued.serial }));
      return paths;
    };

    it("a key that does not match its certificate is named with both files and the fix", async () => {
      const paths = await storeIdentity(pem(p256().privateKey));
      const [mismatch] = problems({});
      expect(mismatch?.field).toBe("dataDir");
      expect(mismatch?.message).toBe(
        `the stored key ${paths.key} does not match its certificate ${paths.cert}; run \`fieldgate-agent reset --yes\` and enroll again`,
      );
    });

    it("a certificate or a CA certificate that is not PEM is named", async () => {
      const paths = await storeIdentity();
      writeFileSync(paths.ca, "broken");
      expect(problems({})[0]?.message).toContain(`the stored identity is broken: ${paths.ca} is not PEM`);
      writeFileSync(paths.cert, "broken");
      expect(problems({})[0]?.message).toContain(`${paths.cert} is not a PEM certificate`);
    });

    it("an expired device certificate is a warning: the agent enrolls again by itself", async () => {
      const paths = await storeIdentity();
      expect(problems({})).toEqual([]);
      const { warnings } = loadConfig({
        raw: { uuid: UUID, dataDir: join(tmp.dir, "data"), cloud: { url: "https://x:1" } },
        env: {},
        now: () => Date.now() + 2 * DAY,
      });
      expect(warnings.join("\n")).toContain(`the device certificate ${paths.cert} expired on`);
    });
  });
});

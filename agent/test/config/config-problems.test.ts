import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { FieldgateError } from "@fieldgate/shared";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ConfigInvalidError, loadConfig } from "../../src/config/load-config.js";
import { identityPaths } from "../../src/identity/identity-store.js";
import { createTestPki, type TestPki } from "../helpers/pki.js";
import { tempDir } from "../helpers/tmp.js";

const UUID = "0f1e2d3c-4b5a-4968-8776-655443322110";
const OTHER = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d";

describe("config errors a person can act on", () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => {
    tmp = tempDir();
  });
  afterEach(() => tmp.cleanup());

  const loadText = (text: string) => {
    const file = join(tmp.dir, "agent.json");
    writeFileSync(file, text);
    try {
      loadConfig({ file, env: {} });
    } catch (err) {
      expect(err).toBeInstanceOf(FieldgateError);
      return err as FieldgateError;
    }
    throw new Error("expected CONFIG_INVALID");
  };

  it("a JSON syntax error names the line and column, not a byte offset", () => {
    const missingComma = loadText('{\n  "uuid": "x"\n  "cloud": {}\n}\n');
    expect(missingComma.code).toBe("CONFIG_INVALID");
    expect(missingComma.message).toBe(
      `config file ${join(tmp.dir, "agent.json")} is not valid JSON: line 3, column 3: expected ',' or '}' after the property value, found "\\""`,
    );
    expect(missingComma.message).not.toMatch(/position/);
    // JSON.parse gives no offset at all for this one.
    expect(loadText('{\n  "cloud": {\n    "url": }\n}').message).toContain("line 3, column 12: expected a value");
    expect(loadText('{ "a": 1, }').message).toContain("line 1, column 11: expected a property name in double quotes");
    expect(loadText('{ "a": 1').message).toContain(
      "line 1, column 9: expected ',' or '}' after the property value, found the end of the file",
    );
    expect(loadText("").message).toContain("line 1, column 1: expected a value");
  });

  it("a byte order mark is not a syntax error", () => {
    const file = join(tmp.dir, "agent.json");
    writeFileSync(file, `\uFEFF${JSON.stringify({ uuid: UUID, cloud: { url: "https://x:1" } })}`);
    expect(loadConfig({ file, env: {} }).config.uuid).toBe(UUID);
  });

  it("reports every failing key of a file at once", () => {
    const err = loadText(
      JSON.stringify({
        uuid: UUID,
        cloud: { url: "http://x" },
        telemetry: { batchMax: 0, sampleInterval: "often" },
        mqtt: { keepalive: 5 },
        bogus: true,
      }),
    );
    expect(err).toBeInstanceOf(ConfigInvalidError);
    const fields = (err as ConfigInvalidError).problems.map((p) => p.field);
    expect(fields.sort()).toEqual(["bogus", "cloud.url", "mqtt.keepalive", "telemetry.batchMax"]);
    expect(err.message).toMatch(/^4 problems in .*agent\.json:\n {2}/);
    expect(err.message).toContain("  telemetry.batchMax: must be >= 1, got 0");
  });

  it("in a union, the branch the author meant: an unknown type lists the choices, a known one its own keys", () => {
    const installer = (value: unknown) =>
      (
        loadText(
          JSON.stringify({ uuid: UUID, cloud: { url: "https://x:1" }, updates: { installer: value } }),
        ) as ConfigInvalidError
      ).problems;
    expect(installer({ type: "nfs" })).toEqual([
      { field: "updates.installer.type", message: 'must be one of "script", "ab-slots", "agent", got "nfs"' },
    ]);
    expect(installer({ type: "agent" })).toEqual([{ field: "updates.installer.root", message: "is required" }]);
  });

  it("a bad link and the rest of the file are reported together", () => {
    const err = loadText(
      JSON.stringify({
        uuid: UUID,
        cloud: { url: "https://x:1" },
        links: [{ id: "a", type: "serial" }],
        telemetry: { batchMax: 0 },
      }),
    ) as ConfigInvalidError;
    expect(err.problems).toEqual([
      { field: "links[0].path", message: "is required" },
      { field: "telemetry.batchMax", message: "must be >= 1, got 0" },
    ]);
  });

  it("past the schema, every bad duration and threshold is reported together", () => {
    const err = loadText(
      JSON.stringify({
        uuid: UUID,
        cloud: { url: "https://x:1" },
        telemetry: { sampleInterval: "often" },
        updates: { jobTimeout: "soon" },
        health: { diskFreeWarnPct: 1, diskFreeCritPct: 2 },
      }),
    ) as ConfigInvalidError;
    expect(err.problems.map((p) => p.field)).toEqual([
      "health.diskFreeWarnPct",
      "telemetry.sampleInterval",
      "updates.jobTimeout",
    ]);
  });

  it("the example the error points to loads (with its CA file and data directory replaced)", async () => {
    const example = fileURLToPath(new URL("../../../docs/examples/agent.json", import.meta.url));
    const ca = join(tmp.dir, "ca.crt");
    writeFileSync(ca, (await createTestPki()).caPem);
    const env = { FIELDGATE_AGENT_CLOUD_CA_FILE: ca, FIELDGATE_AGENT_DATA_DIR: join(tmp.dir, "data") };
    expect(loadConfig({ file: example, env }).config.cloud.url).toBe("https://cloud.example.com:8443");
  });

  it("a missing config file says how to create one", () => {
    const file = join(tmp.dir, "none.json");
    try {
      loadConfig({ file, env: {} });
      throw new Error("expected CONFIG_INVALID");
    } catch (err) {
      expect((err as FieldgateError).message).toBe(
        `cannot read config file ${file}: it does not exist; create it with \`fieldgate-agent enroll --cloud <url> --token <token> --ca-file <ca.crt> --config ${file}\` (enroll writes it), or start from docs/examples/agent.json`,
      );
    }
  });
});

describe("the device uuid", () => {
  let pki: TestPki;
  beforeAll(async () => {
    pki = await createTestPki();
  });
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => {
    tmp = tempDir();
  });
  afterEach(() => tmp.cleanup());

  const machineId = () => {
    const file = join(tmp.dir, "machine-id");
    writeFileSync(file, "4c4c4544004d3510804cb4c04f333232\n");
    return file;
  };
  const storeIdentityOf = async (uuid: string) => {
    const paths = identityPaths(join(tmp.dir, "data"));
    mkdirSync(paths.dir, { recursive: true });
    const issued = await pki.issueClient(uuid);
    writeFileSync(paths.key, issued.keyPem);
    writeFileSync(paths.cert, issued.certPem);
    writeFileSync(paths.ca, pki.caPem);
    writeFileSync(paths.info, JSON.stringify({ uuid, serial: issued.serial }));
  };
  const load = (extra: Record<string, unknown>) =>
    loadConfig({
      raw: { dataDir: join(tmp.dir, "data"), cloud: { url: "https://x:1" }, ...extra },
      env: {},
      machineIdFile: machineId(),
    });

  it("a stored identity's uuid wins over the machine id", async () => {
    const derived = load({}).config.uuid;
    await storeIdentityOf(OTHER);
    expect(load({}).config.uuid).toBe(OTHER);
    expect(derived).not.toBe(OTHER);
  });

  it("a configured uuid that disagrees with the stored identity names both and the fix", async () => {
    await storeIdentityOf(OTHER);
    try {
      load({ uuid: UUID });
      throw new Error("expected CONFIG_INVALID");
    } catch (err) {
      expect(err).toMatchObject({ code: "CONFIG_INVALID", field: "uuid" });
      expect((err as Error).message).toBe(
        `is ${UUID}, but the identity stored in ${join(tmp.dir, "data")} is for ${OTHER}; set uuid to ${OTHER} (or remove it), or run \`fieldgate-agent reset --yes\` and enroll again as ${UUID}`,
      );
    }
    expect(load({ uuid: OTHER.toUpperCase() }).config.uuid).toBe(OTHER);
  });

  it("enroll, which replaces the identity, is not bound by it", async () => {
    await storeIdentityOf(OTHER);
    const { config } = loadConfig({
      raw: { uuid: UUID, dataDir: join(tmp.dir, "data"), cloud: { url: "https://x:1" } },
      env: {},
      replacingIdentity: true,
    });
    expect(config.uuid).toBe(UUID);
  });
});

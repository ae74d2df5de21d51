import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { FieldgateError } from "@fieldgate/shared";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { envNameForPath, loadConfig } from "../../src/config/load-config.js";
import { createTestPki } from "../helpers/pki.js";
import { tempDir } from "../helpers/tmp.js";

const UUID = "0f1e2d3c-4b5a-4968-8776-655443322110";

function configError(fn: () => unknown): FieldgateError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(FieldgateError);
    return err as FieldgateError;
  }
  throw new Error("expected a CONFIG_INVALID error");
}

describe("loadConfig", () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => {
    tmp = tempDir();
  });
  afterEach(() => tmp.cleanup());

  const write = (value: unknown): string => {
    const file = join(tmp.dir, "agent.json");
    writeFileSync(file, JSON.stringify(value));
    return file;
  };

  it("applies defaults and converts durations to milliseconds", () => {
    const { config } = loadConfig({ file: write({ uuid: UUID, cloud: { url: "https://localhost:8443" } }), env: {} });
    expect(config.uuid).toBe(UUID);
    expect(config.dataDir).toBe("/var/lib/fieldgate");
    expect(config.enrollment).toEqual({ retryMinMs: 1000, retryMaxMs: 30_000 });
    expect(config.telemetry).toEqual({
      sampleIntervalMs: 10_000,
      batchMax: 500,
      publishIntervalMs: 1000,
      maxInFlight: 8,
      syntheticRate: 0,
    });
    expect(config.outbox).toEqual({ maxRows: 1_000_000, policy: "drop-oldest", maxSendAttempts: 10 });
    expect(config.mqtt).toEqual({ keepaliveS: 30, reconnectMinMs: 1000, reconnectMaxMs: 30_000 });
    expect(config.log.level).toBe("info");
  });

  it("is deeply frozen", () => {
    const { config } = loadConfig({ raw: { uuid: UUID, cloud: { url: "https://x:1" } }, env: {} });
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.telemetry)).toBe(true);
    expect(() => {
      (config.telemetry as { batchMax: number }).batchMax = 1;
    }).toThrow(TypeError);
  });

  it("names an unknown key", () => {
    const err = configError(() =>
      loadConfig({ raw: { uuid: UUID, cloud: { url: "https://x:1" }, telemetry: { batchSize: 5 } }, env: {} }),
    );
    expect(err.code).toBe("CONFIG_INVALID");
    expect(err.field).toBe("telemetry.batchSize");
    expect(err.message).toMatch(/not an allowed property/);
  });

  it("names a key of the wrong type, with its value and what was expected", () => {
    const err = configError(() =>
      loadConfig({ raw: { uuid: UUID, cloud: { url: "https://x:1" }, telemetry: { batchMax: "lots" } }, env: {} }),
    );
    expect(err.field).toBe("telemetry.batchMax");
    expect(err.message).toMatch(/must be integer/);
    expect(err.message).toContain('"lots"');
  });

  it("names a missing required key", () => {
    const err = configError(() => loadConfig({ raw: { uuid: UUID }, env: {} }));
    expect(err.field).toBe("cloud.url");
    expect(err.message).toMatch(/required/);
  });

  it("rejects a bad duration and a plain-http cloud url", () => {
    expect(
      configError(() =>
        loadConfig({ raw: { uuid: UUID, cloud: { url: "https://x:1" }, mqtt: { keepalive: "soon" } }, env: {} }),
      ).field,
    ).toBe("mqtt.keepalive");
    expect(configError(() => loadConfig({ raw: { uuid: UUID, cloud: { url: "http://x:1" } }, env: {} })).field).toBe(
      "cloud.url",
    );
  });

  it("applies FIELDGATE_AGENT_* overrides by path, coercing numbers", () => {
    const file = write({ uuid: UUID, cloud: { url: "https://file:1" }, telemetry: { batchMax: 10 } });
    const { config, warnings } = loadConfig({
      file,
      env: {
        FIELDGATE_AGENT_CLOUD_URL: "https://env:8443/",
        FIELDGATE_AGENT_ENROLLMENT_TOKEN: "secret-token",
        FIELDGATE_AGENT_DATA_DIR: "/srv/fg",
        FIELDGATE_AGENT_UUID: "AAAAAAAA-BBBB-4CCC-8DDD-EEEEEEEEEEEE",
        FIELDGATE_AGENT_TELEMETRY_BATCH_MAX: "250",
        FIELDGATE_AGENT_BOGUS: "1",
      },
    });
    expect(config.cloud.url).toBe("https://env:8443");
    expect(config.enrollment.token).toBe("secret-token");
    expect(config.dataDir).toBe("/srv/fg");
    expect(config.uuid).toBe("aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee");
    expect(config.telemetry.batchMax).toBe(250);
    expect(warnings).toEqual(["ignoring unknown environment variable FIELDGATE_AGENT_BOGUS"]);
  });

  it("says which environment variable carried a bad value", () => {
    const err = configError(() =>
      loadConfig({
        raw: { uuid: UUID, cloud: { url: "https://x:1" } },
        env: { FIELDGATE_AGENT_TELEMETRY_MAX_IN_FLIGHT: "many" },
      }),
    );
    expect(err.field).toBe("telemetry.maxInFlight");
    expect(err.message).toContain("FIELDGATE_AGENT_TELEMETRY_MAX_IN_FLIGHT");
  });

  it("resolves relative paths against the config file's directory", async () => {
    writeFileSync(join(tmp.dir, "ca.pem"), (await createTestPki()).caPem);
    const file = write({
      uuid: UUID,
      dataDir: "data",
      cloud: { url: "https://x:1", caFile: "ca.pem" },
    });
    const { config } = loadConfig({ file, env: {} });
    expect(config.dataDir).toBe(join(tmp.dir, "data"));
    expect(config.cloud.caFile).toBe(join(tmp.dir, "ca.pem"));
  });

  it("derives the uuid from the machine id when none is configured", () => {
    const machineId = join(tmp.dir, "machine-id");
    writeFileSync(machineId, "4c4c4544004d3510804cb4c04f333232\n");
    const { config } = loadConfig({ raw: { cloud: { url: "https://x:1" } }, env: {}, machineIdFile: machineId });
    expect(config.uuid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it("fails clearly when there is neither a uuid nor a machine id", () => {
    const err = configError(() =>
      loadConfig({ raw: { cloud: { url: "https://x:1" } }, env: {}, machineIdFile: join(tmp.dir, "nope") }),
    );
    expect(err.field).toBe("uuid");
    expect(err.message).toContain("FIELDGATE_AGENT_UUID");
  });

  it("maps camelCase paths to env names", () => {
    expect(envNameForPath(["cloud", "url"])).toBe("FIELDGATE_AGENT_CLOUD_URL");
    expect(envNameForPath(["enrollment", "factoryKeyFile"])).toBe("FIELDGATE_AGENT_ENROLLMENT_FACTORY_KEY_FILE");
    expect(envNameForPath(["dataDir"])).toBe("FIELDGATE_AGENT_DATA_DIR");
  });
});

import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Doctor, type DoctorResult } from "../../src/doctor/doctor.js";
import { tempDir } from "../helpers/tmp.js";

const UUID = "0f1e2d3c-4b5a-4968-8776-655443322110";

/** The doctor on a config whose cloud refuses connections at once, so only local checks matter. */
describe("Doctor, local checks", () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => {
    tmp = tempDir();
  });
  afterEach(() => tmp.cleanup());

  const diagnose = (config: unknown): Promise<DoctorResult[]> => {
    const file = join(tmp.dir, "agent.json");
    writeFileSync(file, typeof config === "string" ? config : JSON.stringify(config));
    return new Doctor({ configFile: file, env: {}, timeoutMs: 1000 }).run();
  };
  const base = { uuid: UUID, dataDir: "data", cloud: { url: "https://127.0.0.1:1" } };
  const check = (results: DoctorResult[], name: string) => results.filter((r) => r.check === name);

  it("updates enabled without an installer is a failure: every job would end INSTALL_FAILED", async () => {
    const [updates] = check(await diagnose({ ...base, updates: { enabled: true } }), "updates");
    expect(updates).toEqual({
      check: "updates",
      status: "fail",
      message: "software updates are enabled but no installer is configured: every job would end INSTALL_FAILED",
      fix: "configure updates.installer (script, ab-slots or agent; docs/updates.md), or set updates.enabled to false",
    });
  });

  it("updates disabled is a warning that says how to enable them", async () => {
    const [updates] = check(await diagnose(base), "updates");
    expect(updates).toMatchObject({ status: "warning" });
    expect(updates?.message).toContain("update jobs end UPDATES_DISABLED");
    expect(updates?.fix).toBe(
      "to allow them, set updates.enabled to true and configure updates.installer (docs/updates.md)",
    );
  });

  it("updates enabled with an installer is ok and names it", async () => {
    const [updates] = check(
      await diagnose({ ...base, updates: { enabled: true, installer: { type: "script", command: ["true"] } } }),
      "updates",
    );
    expect(updates).toMatchObject({ status: "ok", message: "software updates are enabled (installer script)" });
  });

  it("one failing line per config problem, each fix naming the key", async () => {
    const results = await diagnose({ ...base, telemetry: { batchMax: 0 }, mqtt: { keepalive: 30 } });
    const config = check(results, "config");
    expect(config.map((r) => r.status)).toEqual(["fail", "fail"]);
    expect(config.map((r) => r.fix)).toEqual([
      `correct telemetry.batchMax in ${join(tmp.dir, "agent.json")} (see docs/config.md)`,
      `correct mqtt.keepalive in ${join(tmp.dir, "agent.json")} (see docs/config.md)`,
    ]);
    expect(config.every((r) => r.code === "CONFIG_INVALID")).toBe(true);
    expect(results).toHaveLength(2); // nothing else is checked on a config that does not load
  });

  it("a problem of the whole file has a fix with no missing word", async () => {
    const [config] = check(await diagnose("{ not json"), "config");
    expect(config?.message).toMatch(/is not valid JSON: line 1, column 3/);
    expect(config?.fix).toBe(`correct ${join(tmp.dir, "agent.json")} (see docs/config.md)`);
    expect(config?.fix).not.toMatch(/ {2}/);
  });

  it("a missing config file: the fix says how to create one", async () => {
    const file = join(tmp.dir, "none.json");
    const [config] = await new Doctor({ configFile: file, env: {} }).run();
    expect(config).toMatchObject({ check: "config", status: "fail", message: `${file} does not exist` });
    expect(config?.fix).toContain(
      `fieldgate-agent enroll --cloud <url> --token <token> --ca-file <ca.crt> --config ${file}`,
    );
  });

  it("a CA file that holds no certificate fails the config check, before any TLS", async () => {
    writeFileSync(join(tmp.dir, "ca.crt"), "not a certificate\n");
    const results = await diagnose({ ...base, cloud: { url: "https://127.0.0.1:1", caFile: "ca.crt" } });
    const [config] = check(results, "config");
    expect(config?.status).toBe("fail");
    expect(config?.message).toBe(
      `cloud.caFile: ${join(tmp.dir, "ca.crt")} is not PEM: it holds no -----BEGIN CERTIFICATE----- block; set it to the cloud's CA certificate (<cloud data-dir>/pki/ca.crt)`,
    );
    expect(check(results, "tls")).toEqual([]);
  });
});

import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { checkFileModes } from "../../src/config/file-modes.js";
import { tempDir } from "../helpers/tmp.js";

describe("checkFileModes", () => {
  const tmp = tempDir();
  afterEach(() => tmp.cleanup());

  function layout() {
    const dataDir = join(tmp.dir, "data");
    mkdirSync(join(dataDir, "identity"), { recursive: true, mode: 0o700 });
    chmodSync(dataDir, 0o700);
    const key = join(dataDir, "identity", "device.key");
    writeFileSync(key, "key", { mode: 0o600 });
    const factoryKey = join(tmp.dir, "factory.key");
    writeFileSync(factoryKey, "key", { mode: 0o600 });
    const config = join(tmp.dir, "agent.json");
    writeFileSync(config, JSON.stringify({ enrollment: { token: "abc" } }), { mode: 0o600 });
    chmodSync(config, 0o600);
    return { dataDir, key, factoryKey, config };
  }

  it("passes private files and names nothing", () => {
    const l = layout();
    expect(checkFileModes({ dataDir: l.dataDir, factoryKeyFile: l.factoryKey, configFile: l.config })).toEqual({
      errors: [],
      warnings: [],
    });
  });

  it("refuses a key others can read, with the chmod that fixes it", () => {
    const l = layout();
    chmodSync(l.key, 0o644);
    chmodSync(l.factoryKey, 0o640);
    const { errors } = checkFileModes({ dataDir: l.dataDir, factoryKeyFile: l.factoryKey });
    expect(errors).toEqual([
      {
        field: "dataDir",
        message: expect.stringContaining(`mode 0644: only its owner may read it; run \`chmod 600 ${l.key}\``),
      },
      { field: "enrollment.factoryKeyFile", message: expect.stringContaining(`chmod 600 ${l.factoryKey}`) },
    ]);
  });

  it("refuses a data directory others can write, not one they can only enter", () => {
    const l = layout();
    chmodSync(l.dataDir, 0o755);
    expect(checkFileModes({ dataDir: l.dataDir }).errors).toEqual([]);
    chmodSync(l.dataDir, 0o777);
    expect(checkFileModes({ dataDir: l.dataDir }).errors).toEqual([
      { field: "dataDir", message: expect.stringContaining(`is mode 0777`) },
    ]);
  });

  it("warns about a readable config only while it holds a token", () => {
    const l = layout();
    chmodSync(l.config, 0o644);
    expect(checkFileModes({ dataDir: l.dataDir, configFile: l.config }).warnings).toEqual([
      expect.stringContaining(`holds an enrollment token and is mode 0644`),
    ]);
    writeFileSync(l.config, JSON.stringify({ enrollment: {} }));
    expect(checkFileModes({ dataDir: l.dataDir, configFile: l.config }).warnings).toEqual([]);
  });

  it("says nothing about files that do not exist", () => {
    expect(checkFileModes({ dataDir: join(tmp.dir, "none"), factoryKeyFile: join(tmp.dir, "none.key") })).toEqual({
      errors: [],
      warnings: [],
    });
  });
});

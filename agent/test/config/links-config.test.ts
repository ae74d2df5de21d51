import { FieldgateError } from "@fieldgate/shared";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/load-config.js";

const UUID = "0f1e2d3c-4b5a-4968-8776-655443322110";
const base = { uuid: UUID, cloud: { url: "https://localhost:8443" } };
const thermo = { id: "thermo", type: "serial", path: "/dev/ttyUSB1", protocol: { type: "lines", format: "kv" } };

function configError(fn: () => unknown): FieldgateError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(FieldgateError);
    return err as FieldgateError;
  }
  throw new Error("expected a CONFIG_INVALID error");
}

describe("links in the agent config file", () => {
  it("defaults to none and keeps the configured links, frozen", () => {
    expect(loadConfig({ raw: base, env: {} }).config.links).toEqual([]);
    const { config } = loadConfig({ raw: { ...base, links: [thermo] }, env: {} });
    expect(config.links).toEqual([thermo]);
    expect(Object.isFrozen(config.links[0])).toBe(true);
  });

  it("refuses duplicate ids and bad links with CONFIG_INVALID naming the field", () => {
    const dup = configError(() => loadConfig({ raw: { ...base, links: [thermo, { ...thermo }] }, env: {} }));
    expect(dup).toMatchObject({ code: "CONFIG_INVALID", field: "links[1].id" });
    const bad = configError(() =>
      loadConfig({ raw: { ...base, links: [{ ...thermo, protocol: { type: "lines", format: "csv" } }] }, env: {} }),
    );
    expect(bad).toMatchObject({ code: "CONFIG_INVALID", field: "links[0].protocol.format" });
  });

  it("takes links as JSON from FIELDGATE_AGENT_LINKS", () => {
    const { config } = loadConfig({ raw: base, env: { FIELDGATE_AGENT_LINKS: JSON.stringify([thermo]) } });
    expect(config.links.map((l) => l.id)).toEqual(["thermo"]);
  });
});

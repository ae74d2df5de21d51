import { describe, expect, it } from "vitest";
import { DesiredConfigMessage } from "../src/config-schemas.js";
import { FieldgateError } from "../src/errors.js";
import { checkLinks, namedGroups } from "../src/link-schemas.js";
import { SchemaValidator } from "../src/validation.js";

const lines = { id: "thermo", type: "serial", path: "/dev/ttyUSB1", protocol: { type: "lines", format: "json" } };
const meter = {
  id: "meter",
  type: "serial",
  path: "/dev/ttyUSB0",
  baudRate: 19200,
  parity: "even",
  protocol: {
    type: "modbus-rtu",
    interval: "5s",
    poll: [{ unitId: 1, function: "holding", address: 0, type: "float32", wordOrder: "little", name: "voltage" }],
  },
};
const ble = {
  id: "env",
  type: "ble",
  match: { localName: "Env" },
  characteristics: [{ service: "181a", characteristic: "2a6e", mode: "notify", decode: { type: "int16", name: "t" } }],
};

function errorOf(fn: () => unknown): FieldgateError {
  try {
    fn();
  } catch (err) {
    if (err instanceof FieldgateError) return err;
    throw err;
  }
  throw new Error("expected a FieldgateError");
}

describe("checkLinks", () => {
  it("accepts serial (lines, modbus-rtu) and ble links together", () => {
    expect(checkLinks([lines, meter, ble]).map((l) => l.id)).toEqual(["thermo", "meter", "env"]);
    expect(checkLinks([])).toEqual([]);
  });

  it("refuses a duplicate id, naming the field and the first use", () => {
    const err = errorOf(() => checkLinks([lines, meter, { ...ble, id: "thermo" }]));
    expect(err.code).toBe("VALIDATION_FAILED");
    expect(err.field).toBe("links[2].id");
    expect(err.message).toContain("links[0]");
  });

  it("refuses two enabled serial links on one path", () => {
    const err = errorOf(() => checkLinks([lines, { ...meter, path: lines.path }]));
    expect(err.field).toBe("links[1].path");
    expect(checkLinks([lines, { ...meter, path: lines.path, enabled: false }])).toHaveLength(2);
  });

  it("validates each link against its own type, so the error names the right field", () => {
    const bad = errorOf(() => checkLinks([lines, { ...ble, match: {} }]));
    expect(bad.field).toBe("links[1].match");
    const unknown = errorOf(() => checkLinks([{ id: "x", type: "zigbee" }]));
    expect(unknown.field).toBe("links[0].type");
    expect(unknown.message).toContain("serial, ble");
    const typo = errorOf(() => checkLinks([{ ...meter, baudrate: 9600 }]));
    expect(typo.field).toBe("links[0].baudrate");
    expect(checkLinks.length).toBeGreaterThan(0);
  });

  it("uses the caller's code and prefix (the agent config file says CONFIG_INVALID)", () => {
    const err = errorOf(() => checkLinks([{ ...lines, path: "" }], "links", "CONFIG_INVALID"));
    expect(err).toMatchObject({ code: "CONFIG_INVALID", field: "links[0].path" });
    expect(errorOf(() => checkLinks({})).field).toBe("links");
  });

  it("checks durations and the warn/critical pair", () => {
    expect(errorOf(() => checkLinks([{ ...lines, staleAfter: "soon" }])).field).toBe("links[0].staleAfter");
    expect(errorOf(() => checkLinks([{ ...lines, downCriticalAfter: "10s" }])).field).toBe(
      "links[0].downCriticalAfter",
    );
    expect(errorOf(() => checkLinks([{ ...lines, reconnectMin: "10s", reconnectMax: "1s" }])).field).toBe(
      "links[0].reconnectMax",
    );
  });

  it("checks the regex of format regex: required, compiling, with valid named groups", () => {
    const regex = (r: string | undefined) => ({ ...lines, protocol: { type: "lines", format: "regex", regex: r } });
    expect(checkLinks([regex("^T=(?<temp>[-0-9.]+)$")])).toHaveLength(1);
    expect(errorOf(() => checkLinks([{ ...lines, protocol: { type: "lines", format: "regex" } }])).field).toBe(
      "links[0].protocol.regex",
    );
    expect(errorOf(() => checkLinks([regex("(?<t>[0-9")])).message).toContain("does not compile");
    expect(errorOf(() => checkLinks([regex("([0-9]+)")])).message).toContain("named group");
    expect(namedGroups(/(?<a>x)(?<=y)(?<b_2>z)/)).toEqual(["a", "b_2"]);
  });

  it("checks Modbus request sizes and unique reading names", () => {
    const poll = (entries: object[]) => ({ ...meter, protocol: { type: "modbus-rtu", poll: entries } });
    const entry = { unitId: 1, function: "holding", address: 0, name: "a" };
    expect(errorOf(() => checkLinks([poll([{ ...entry, type: "float32", count: 63 }])])).field).toBe(
      "links[0].protocol.poll[0].count",
    );
    expect(checkLinks([poll([{ ...entry, type: "float32", count: 62 }])])).toHaveLength(1);
    expect(errorOf(() => checkLinks([poll([{ ...entry, address: 65_535, count: 2 }])])).message).toContain("65535");
    expect(errorOf(() => checkLinks([poll([entry, { ...entry, address: 4 }])])).field).toBe(
      "links[0].protocol.poll[1].name",
    );
    expect(errorOf(() => checkLinks([poll([{ ...entry, function: "coil", type: "int16" }])])).field).toBe(
      "links[0].protocol.poll[0].type",
    );
    expect(errorOf(() => checkLinks([poll([{ ...entry, unitId: 0 }])])).field).toBe("links[0].protocol.poll[0].unitId");
  });

  it("is part of the desired config message", () => {
    const v = new SchemaValidator();
    expect(v.parse(DesiredConfigMessage, { v: 1, version: 3, links: [lines, ble] }).links).toHaveLength(2);
    expect(() => v.parse(DesiredConfigMessage, { v: 1, version: 3, links: {} })).toThrow(FieldgateError);
  });
});

describe("serial paths from the cloud (devicePaths)", () => {
  const cloudLinks = (path: string) =>
    checkLinks([{ ...lines, path }], "links", "VALIDATION_FAILED", { devicePaths: true });

  it("accepts device nodes under /dev, by-id names included", () => {
    for (const path of [
      "/dev/ttyUSB0",
      "/dev/ttyS1",
      "/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0",
    ]) {
      expect(cloudLinks(path)[0]).toMatchObject({ path });
    }
  });

  it("refuses paths outside /dev and dot or empty segments, naming the field and the allowed forms", () => {
    for (const path of [
      "/etc/shadow",
      "/dev/../etc/shadow",
      "/dev/tty/../../etc",
      "/dev/.hidden",
      "/dev//ttyS0",
      "/dev/",
      "ttyS0",
      "/devices/x",
    ]) {
      const err = errorOf(() => cloudLinks(path));
      expect(err.code, path).toBe("VALIDATION_FAILED");
      expect(err.field).toBe("links[0].path");
      expect(err.message).toBe(
        `links[0].path must be a device node under /dev such as /dev/ttyUSB0 or /dev/serial/by-id/<name> (no . or .. segments), got ${JSON.stringify(path)}`,
      );
    }
  });

  it("leaves a gateway's own file to its linkPaths allow-list", () => {
    expect(checkLinks([{ ...lines, path: "/tmp/pty-dev" }], "links", "CONFIG_INVALID")[0]).toMatchObject({
      path: "/tmp/pty-dev",
    });
  });
});

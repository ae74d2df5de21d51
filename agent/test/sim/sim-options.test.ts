import { describe, expect, it } from "vitest";
import { picked } from "../../src/sim/fleet.js";
import { LatencyRecorder, percentile } from "../../src/sim/latency-recorder.js";
import { resolveSimOptions } from "../../src/sim/sim-options.js";

const files: Record<string, string> = {
  "/cloud/runtime.json": JSON.stringify({ url: "https://localhost:8443" }),
  "/cloud/pki/ca.crt": "-----BEGIN CERTIFICATE-----\nCA PEM\n-----END CERTIFICATE-----\n",
  "/cloud/admin-credential.json": JSON.stringify({ credentialId: "cred", secret: "s3cret" }),
};
const read = (file: string): string => {
  const text = files[file];
  if (text === undefined) throw new Error(`ENOENT ${file}`);
  return text;
};

describe("fieldgate-sim options", () => {
  it("takes URL, CA and operator credential from a local cloud's data directory", () => {
    const options = resolveSimOptions({ cloudDataDir: "/cloud", enroll: true, failUpdates: "10%" }, {}, read);
    expect(options.cloudUrl).toBe("https://localhost:8443");
    expect(options.caPem).toBe("-----BEGIN CERTIFICATE-----\nCA PEM\n-----END CERTIFICATE-----\n");
    expect(options.operatorAuthorization).toBe(`Basic ${Buffer.from("cred:s3cret").toString("base64")}`);
    expect(options.failUpdatesPct).toBe(10);
    expect(options).toMatchObject({ devices: 10, rate: 1, batch: 100, durationMs: 10_000 });
    expect(Object.isFrozen(options)).toBe(true);
  });

  it("names the flag of a bad value", () => {
    const bad = (flags: Record<string, string>) => () =>
      resolveSimOptions({ cloudDataDir: "/cloud", ...flags }, {}, read);
    expect(bad({ devices: "0" })).toThrow(/--devices "0": expected a number from 1/);
    expect(bad({ batch: "2.5" })).toThrow(/--batch "2.5": expected a whole number/);
    expect(bad({ failUpdates: "150%" })).toThrow(/--fail-updates/);
    expect(bad({ duration: "soon" })).toThrow(/--duration "soon": expected a duration/);
    expect(() => resolveSimOptions({ url: "http://x" }, {}, read)).toThrow(/--url/);
  });

  it("refuses --enroll without an operator credential", () => {
    expect(() =>
      resolveSimOptions({ url: "https://h:1", caFile: "/cloud/pki/ca.crt", enroll: true }, {}, read),
    ).toThrow(expect.objectContaining({ code: "AUTH_REQUIRED", field: "credential" }));
  });
});

describe("picked: an exact, evenly spread share of the devices", () => {
  it.each([
    [10, 0, 0],
    [10, 10, 1],
    [200, 10, 20],
    [4, 50, 2],
    [7, 100, 7],
  ])("%i devices at %i%% → %i", (n, pct, expected) => {
    expect(Array.from({ length: n }, (_, i) => picked(i, pct)).filter(Boolean)).toHaveLength(expected);
  });
});

describe("latency recorder", () => {
  it("gives nearest-rank percentiles and the true maximum", () => {
    const recorder = new LatencyRecorder();
    for (let ms = 1; ms <= 100; ms++) recorder.record(ms);
    expect(recorder.summary()).toEqual({ count: 100, p50: 50, p99: 99, max: 100 });
    expect(new LatencyRecorder().summary()).toEqual({ count: 0, p50: null, p99: null, max: null });
  });

  it("stays bounded past its capacity and keeps the maximum", () => {
    const recorder = new LatencyRecorder(10, () => 0.99);
    for (let ms = 1; ms <= 1000; ms++) recorder.record(ms);
    expect(recorder.summary().count).toBe(1000);
    expect(recorder.summary().max).toBe(1000);
    expect(percentile([3, 1, 2].sort(), 0.5)).toBe(2);
  });
});

import { describe, expect, it } from "vitest";
import { resolveCloudConfig } from "../../src/config/cloud-config.js";

describe("cloud config", () => {
  it("applies the documented listener limits, from flags or FIELDGATE_* variables", () => {
    expect(resolveCloudConfig({}, {}).limits).toEqual({
      tlsHandshakeTimeoutMs: 10_000,
      maxPendingConnections: 1024,
      mqttConnectTimeoutMs: 10_000,
      mqttMaxPacketSize: 2 * 1024 ** 2,
      httpHeadersTimeoutMs: 10_000,
      httpRequestTimeoutMs: 30 * 60_000,
      httpKeepAliveTimeoutMs: 72_000,
      authFailureLimit: 10,
      authFailureWindowMs: 15 * 60_000,
      loginDelayMs: 1000,
    });
    const env = {
      FIELDGATE_MQTT_MAX_PACKET_SIZE: "64KiB",
      FIELDGATE_AUTH_FAILURE_LIMIT: "3",
      FIELDGATE_LOGIN_DELAY: "5s",
    };
    expect(resolveCloudConfig({ tlsHandshakeTimeout: "2s" }, env).limits).toMatchObject({
      tlsHandshakeTimeoutMs: 2000,
      mqttMaxPacketSize: 65_536,
      authFailureLimit: 3,
      loginDelayMs: 5000,
    });
  });

  it("names the limit flag and its range on bad values", () => {
    const bad: [Record<string, string>, string][] = [
      [{ tlsHandshakeTimeout: "0s" }, "tls-handshake-timeout"],
      [{ tlsHandshakeTimeout: "forever" }, "tls-handshake-timeout"],
      [{ maxPendingConnections: "0" }, "max-pending-connections"],
      [{ maxPendingConnections: "1.5" }, "max-pending-connections"],
      [{ mqttConnectTimeout: "1h" }, "mqtt-connect-timeout"],
      [{ mqttMaxPacketSize: "512" }, "mqtt-max-packet-size"],
      [{ mqttMaxPacketSize: "1GiB" }, "mqtt-max-packet-size"],
      [{ httpHeadersTimeout: "2h" }, "http-headers-timeout"],
      [{ httpHeadersTimeout: "2m", httpRequestTimeout: "1m" }, "http-headers-timeout"],
      [{ httpKeepaliveTimeout: "-1s" }, "http-keepalive-timeout"],
      [{ authFailureLimit: "none" }, "auth-failure-limit"],
      [{ authFailureWindow: "10ms" }, "auth-failure-window"],
      [{ loginDelay: "10ms" }, "login-delay"],
      [{ loginDelay: "2m" }, "login-delay"],
    ];
    for (const [flags, field] of bad) {
      expect(() => resolveCloudConfig(flags, {}), JSON.stringify(flags)).toThrow(
        expect.objectContaining({ code: "CONFIG_INVALID", field, message: expect.stringContaining(`--${field} `) }),
      );
    }
  });

  it("applies the documented defaults", () => {
    const c = resolveCloudConfig({}, {});
    expect(c).toMatchObject({
      httpPort: 8443,
      mqttPort: 8883,
      enrollWindowMs: 600_000,
      host: "0.0.0.0",
      certLifetimeDays: 90,
    });
    expect(c.dataDir.endsWith("/data")).toBe(true);
    expect(Object.isFrozen(c)).toBe(true);
  });

  it("takes FIELDGATE_* variables when a flag is absent, and flags over variables", () => {
    const env = {
      FIELDGATE_HTTP_PORT: "9443",
      FIELDGATE_ENROLL_WINDOW: "90s",
      FIELDGATE_HOSTNAME: "gw.example, 10.0.0.5",
    };
    expect(resolveCloudConfig({}, env)).toMatchObject({
      httpPort: 9443,
      enrollWindowMs: 90_000,
      hostnames: ["gw.example", "10.0.0.5"],
    });
    expect(resolveCloudConfig({ httpPort: "1234", hostname: ["a.example"] }, env)).toMatchObject({
      httpPort: 1234,
      hostnames: ["a.example"],
    });
  });

  it("names the flag and the expectation on bad values", () => {
    expect(() => resolveCloudConfig({ httpPort: "http" }, {})).toThrow(/--http-port "http": expected a port number/);
    expect(() => resolveCloudConfig({ enrollWindow: "soon" }, {})).toThrow(
      expect.objectContaining({ code: "CONFIG_INVALID", field: "enroll-window" }),
    );
    expect(() => resolveCloudConfig({ mqttUrl: "http://x" }, {})).toThrow(
      expect.objectContaining({ field: "mqtt-url" }),
    );
    expect(() => resolveCloudConfig({ hostname: ["bad name"] }, {})).toThrow(
      expect.objectContaining({ field: "hostname" }),
    );
  });

  it("has a one-minute keep-alive unit checked every 30s, both settable for tests", () => {
    expect(resolveCloudConfig({}, {})).toMatchObject({ keepaliveUnitMs: 60_000, keepaliveCheckMs: 30_000 });
    expect(
      resolveCloudConfig({}, { FIELDGATE_KEEPALIVE_UNIT: "200ms", FIELDGATE_KEEPALIVE_CHECK: "100ms" }),
    ).toMatchObject({ keepaliveUnitMs: 200, keepaliveCheckMs: 100 });
    expect(
      resolveCloudConfig({ keepaliveUnit: "2s", keepaliveCheck: "1s" }, { FIELDGATE_KEEPALIVE_UNIT: "200ms" }),
    ).toMatchObject({ keepaliveUnitMs: 2000, keepaliveCheckMs: 1000 });
  });

  it("refuses a keep-alive unit or check interval that is not a sensible duration", () => {
    for (const [flags, field] of [
      [{ keepaliveUnit: "soon" }, "keepalive-unit"],
      [{ keepaliveUnit: "1ms" }, "keepalive-unit"],
      [{ keepaliveCheck: "0s" }, "keepalive-check"],
      [{ keepaliveCheck: "2h" }, "keepalive-check"],
    ] as const) {
      expect(() => resolveCloudConfig(flags, {}), JSON.stringify(flags)).toThrow(
        expect.objectContaining({ code: "CONFIG_INVALID", field }),
      );
    }
  });

  it("keeps device logs 7 days by default; --log-retention or FIELDGATE_LOG_RETENTION changes it", () => {
    expect(resolveCloudConfig({}, {}).logRetentionMs).toBe(7 * 86_400_000);
    expect(resolveCloudConfig({}, { FIELDGATE_LOG_RETENTION: "12h" }).logRetentionMs).toBe(12 * 3_600_000);
    expect(resolveCloudConfig({ logRetention: "30d" }, { FIELDGATE_LOG_RETENTION: "12h" }).logRetentionMs).toBe(
      30 * 86_400_000,
    );
    for (const bad of ["forever", "0s", "500ms"]) {
      expect(() => resolveCloudConfig({ logRetention: bad }, {}), bad).toThrow(
        expect.objectContaining({ code: "CONFIG_INVALID", field: "log-retention" }),
      );
    }
  });

  it("keeps telemetry for ever by default; --telemetry-retention or FIELDGATE_TELEMETRY_RETENTION bounds it", () => {
    expect(resolveCloudConfig({}, {}).telemetryRetentionMs).toBeUndefined();
    expect(resolveCloudConfig({}, { FIELDGATE_TELEMETRY_RETENTION: "0" }).telemetryRetentionMs).toBeUndefined();
    expect(resolveCloudConfig({}, { FIELDGATE_TELEMETRY_RETENTION: "90d" }).telemetryRetentionMs).toBe(90 * 86_400_000);
    expect(
      resolveCloudConfig({ telemetryRetention: "2h" }, { FIELDGATE_TELEMETRY_RETENTION: "90d" }).telemetryRetentionMs,
    ).toBe(2 * 3_600_000);
    for (const bad of ["forever", "0s", "30m"]) {
      expect(() => resolveCloudConfig({ telemetryRetention: bad }, {}), bad).toThrow(
        expect.objectContaining({ code: "CONFIG_INVALID", field: "telemetry-retention" }),
      );
    }
  });
});

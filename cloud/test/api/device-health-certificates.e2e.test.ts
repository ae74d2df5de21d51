import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CloudProcess, eventually, startCloud } from "../../../test/support/cloud-process.js";
import {
  connectDevice,
  makeCsr,
  newUuid,
  registerAndEnroll,
  registerDevice,
  renewOverMtls,
} from "../../../test/support/device-identity.js";

type ErrorAnswer = { error: { code: string; message: string; field?: string } };
type HealthAnswer = {
  uuid: string;
  status: string | null;
  reportedAt: string | null;
  receivedAt: string | null;
  checks: { name: string; status: string; message: string | null }[];
};
type CertificatesAnswer = {
  uuid: string;
  items: {
    serial: string;
    issuedAt: string;
    notAfter: string;
    current: boolean;
    revokedAt: string | null;
    revokeReason: string | null;
  }[];
};

describe("a device's health checks and certificate history, over the API", () => {
  let cloud: CloudProcess;
  beforeAll(async () => {
    cloud = await startCloud();
  });
  afterAll(() => cloud.stop());

  it("serves no checks before the first health report, then the latest report's checks with their messages", async () => {
    const device = await registerAndEnroll(cloud);
    const before = await cloud.api<HealthAnswer>("GET", `/api/v1/devices/${device.uuid}/health`);
    expect(before.status).toBe(200);
    expect(before.body).toEqual({ uuid: device.uuid, status: null, reportedAt: null, receivedAt: null, checks: [] });

    const client = await connectDevice(cloud, device, device.uuid);
    const report = (status: string, checks: unknown[], ts: number) =>
      client.publishAsync(`fieldgate/v1/${device.uuid}/health`, JSON.stringify({ v: 1, ts, status, checks }), {
        qos: 1,
      });
    await report("ok", [{ name: "disk", status: "ok", message: "41.0% free" }], 1_700_000_000_000);
    await report(
      "warning",
      [
        { name: "disk", status: "ok", message: "40.9% free" },
        { name: "valve", status: "warning", message: "valve stuck" },
        { name: "clock", status: "unknown" },
      ],
      1_700_000_001_000,
    );
    const latest = await eventually(
      async () => {
        const got = (await cloud.api<HealthAnswer>("GET", `/api/v1/devices/${device.uuid}/health`)).body;
        return got.status === "warning" ? got : undefined;
      },
      10_000,
      "the second report",
    );
    await client.endAsync();
    expect(latest).toMatchObject({
      uuid: device.uuid,
      status: "warning",
      reportedAt: new Date(1_700_000_001_000).toISOString(),
      checks: [
        { name: "disk", status: "ok", message: "40.9% free" },
        { name: "valve", status: "warning", message: "valve stuck" },
        { name: "clock", status: "unknown", message: null },
      ],
    });
    expect(Date.parse(latest.receivedAt ?? "")).toBeGreaterThan(Date.now() - 60_000);
  });

  it("lists every certificate newest first: renewed, then revoked by a token reset", async () => {
    const { uuid } = await registerDevice(cloud);
    const none = await cloud.api<CertificatesAnswer>("GET", `/api/v1/devices/${uuid}/certificates`);
    expect(none.status).toBe(200);
    expect(none.body).toEqual({ uuid, items: [] });

    const device = await registerAndEnroll(cloud);
    const renewal = await renewOverMtls(cloud, device, (await makeCsr()).csrPem);
    expect(renewal.status).toBe(200);
    const renewed = await cloud.api<CertificatesAnswer>("GET", `/api/v1/devices/${device.uuid}/certificates`);
    expect(renewed.body.items.map((c) => [c.serial, c.current, c.revokeReason])).toEqual([
      [renewal.body.serial, true, null],
      [device.serial, false, "renewed"],
    ]);
    expect(renewed.body.items[1]?.revokedAt).not.toBeNull();
    const shown = await cloud.api<{ certificate: { serial: string } }>("GET", `/api/v1/devices/${device.uuid}`);
    expect(shown.body.certificate.serial).toBe(renewal.body.serial);

    const reset = await cloud.api("POST", `/api/v1/devices/${device.uuid}/reset-token`);
    expect(reset.status).toBe(200);
    const revoked = await cloud.api<CertificatesAnswer>("GET", `/api/v1/devices/${device.uuid}/certificates`);
    expect(revoked.body.items.map((c) => [c.current, c.revokeReason])).toEqual([
      [false, "reset-token"],
      [false, "renewed"],
    ]);
  });

  it("answers 404 DEVICE_NOT_FOUND for an unknown device and 400 for a malformed uuid, on both", async () => {
    for (const what of ["health", "certificates"]) {
      const unknown = await cloud.api<ErrorAnswer>("GET", `/api/v1/devices/${newUuid()}/${what}`);
      expect(unknown.status, what).toBe(404);
      expect(unknown.body.error.code).toBe("DEVICE_NOT_FOUND");
      const bad = await cloud.api<ErrorAnswer>("GET", `/api/v1/devices/not-a-uuid/${what}`);
      expect(bad.status, what).toBe(400);
      expect(bad.body.error.code).toBe("VALIDATION_FAILED");
    }
  });
});

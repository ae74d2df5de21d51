import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CloudProcess, startCloud } from "../../../test/support/cloud-process.js";
import {
  connectDevice,
  enrollWithToken,
  makeCsr,
  makeCsrForKey,
  registerDevice,
  renewOverMtls,
} from "../../../test/support/device-identity.js";

type Answer = { error: { code: string; field?: string }; certificate: string; serial: string };
type DeviceAnswer = { certificate: { serial: string } | null; window: { open: boolean; failedAttempts: number } };

/** Issue #12, item 4: a key a device once had a certificate for never gets another one. */
describe("a revoked or superseded key stays dead (real cloud)", () => {
  let cloud: CloudProcess;
  beforeAll(async () => {
    cloud = await startCloud();
  });
  afterAll(() => cloud.stop());

  const enroll = (uuid: string, token: string, csr: string) =>
    cloud.api<Answer>("POST", "/api/v1/enroll", { v: 1, uuid, method: "token", token, csr }, false);
  const resetToken = async (uuid: string) =>
    (await cloud.api<{ enrollmentToken: string }>("POST", `/api/v1/devices/${uuid}/reset-token`)).body.enrollmentToken;

  it("refuses re-enrollment after reset-token with the revoked key, without spending the window; a new key enrolls", async () => {
    const { uuid, token } = await registerDevice(cloud);
    const stolen = await enrollWithToken(cloud, uuid, token);
    const fresh = await resetToken(uuid);

    const thief = await enroll(uuid, fresh, (await makeCsrForKey(stolen.keyPem)).csrPem);
    expect(thief.status).toBe(409);
    expect(thief.body.error).toMatchObject({ code: "ENROLL_KEY_REUSED", field: "csr" });
    const device = (await cloud.api<DeviceAnswer>("GET", `/api/v1/devices/${uuid}`)).body;
    expect(device.certificate).toBeNull();
    expect(device.window).toMatchObject({ open: true, failedAttempts: 0 });
    await expect(connectDevice(cloud, stolen, uuid)).rejects.toThrow(/Not authorized|closed/i);

    const rightful = await makeCsr();
    const ok = await enroll(uuid, fresh, rightful.csrPem);
    expect(ok.status).toBe(200);
    const client = await connectDevice(cloud, { keyPem: rightful.keyPem, certPem: ok.body.certificate }, uuid);
    client.end(true);
  });

  it("refuses the key of any earlier certificate, not only the last one", async () => {
    const { uuid, token } = await registerDevice(cloud);
    const first = await enrollWithToken(cloud, uuid, token);
    await enrollWithToken(cloud, uuid, await resetToken(uuid));
    const again = await enroll(uuid, await resetToken(uuid), (await makeCsrForKey(first.keyPem)).csrPem);
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe("ENROLL_KEY_REUSED");
  });

  it("refuses renewal with the current key or a superseded one; a new key renews", async () => {
    const { uuid, token } = await registerDevice(cloud);
    const first = await enrollWithToken(cloud, uuid, token);

    const same = await renewOverMtls(cloud, first, (await makeCsrForKey(first.keyPem)).csrPem);
    expect(same.status).toBe(409);
    expect(same.body.error).toMatchObject({ code: "ENROLL_KEY_REUSED", field: "csr" });

    const next = await makeCsr();
    const renewed = await renewOverMtls(cloud, first, next.csrPem);
    expect(renewed.status).toBe(200);
    const current = { keyPem: next.keyPem, certPem: renewed.body.certificate };

    const back = await renewOverMtls(cloud, current, (await makeCsrForKey(first.keyPem)).csrPem);
    expect(back.status).toBe(409);
    expect(back.body.error.code).toBe("ENROLL_KEY_REUSED");
    const shown = (await cloud.api<DeviceAnswer>("GET", `/api/v1/devices/${uuid}`)).body;
    expect(shown.certificate?.serial).toBe(renewed.body.serial);

    expect((await renewOverMtls(cloud, current, (await makeCsr()).csrPem)).status).toBe(200);
  });
});

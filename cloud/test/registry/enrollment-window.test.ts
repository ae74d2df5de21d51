import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type DeviceRegistry, MAX_FAILED_ATTEMPTS } from "../../src/registry/device-registry.js";
import { codeOf, issued, openRegistry, type RegistryFixture } from "./registry-fixture.js";

const UUID = "7c1d2e3f-0000-4000-8000-00000000abcd";

describe("the registry's enrollment window and certificates", () => {
  let fixture: RegistryFixture;
  let registry: DeviceRegistry;
  let orgId: number;
  let now: number;

  beforeEach(async () => {
    now = 1_700_000_000_000;
    fixture = await openRegistry({ clock: () => now });
    ({ registry, orgId } = fixture);
    await registry.create(orgId, { uuid: UUID }, { groupId: fixture.root.id });
  });
  afterEach(() => fixture.dispose());

  const device = async () => (await registry.findByUuid(UUID)) ?? expect.unreachable();

  it("spends a window once: a second request that saw the same window is refused", async () => {
    const seen = await device();
    expect(await registry.spendWindow(UUID, seen, issued("A1"), "key-a")).toBe(0);
    expect((await registry.currentCertificate(seen.id))?.serial).toBe("A1");
    expect((await registry.get(orgId, UUID)).window.open).toBe(false);
    expect(await codeOf(registry.spendWindow(UUID, seen, issued("B2"), "key-b"))).toBe("ENROLL_WINDOW_CLOSED");
    expect((await registry.certificates(orgId, UUID)).items.map((c) => c.serial)).toEqual(["A1"]);
  });

  it("refuses to spend a window that was replaced after the request saw it", async () => {
    const seen = await device();
    await registry.resetToken(orgId, UUID);
    expect(await codeOf(registry.spendWindow(UUID, seen, issued("A1"), "key-a"))).toBe("ENROLL_TOKEN_INVALID");
    expect(await registry.isEnrolled(seen.id)).toBe(false);
  });

  it(`closes the window after ${MAX_FAILED_ATTEMPTS} wrong proofs, not before`, async () => {
    const { id } = await device();
    for (let i = 1; i < MAX_FAILED_ATTEMPTS; i++) await registry.countWrongProof(id);
    expect((await registry.get(orgId, UUID)).window).toMatchObject({
      open: true,
      failedAttempts: MAX_FAILED_ATTEMPTS - 1,
    });
    await registry.countWrongProof(id);
    expect((await registry.get(orgId, UUID)).window.open).toBe(false);
    expect((await device()).token_hash).toBeNull();
  });

  it("renews only from the current certificate, and never for a key certified before", async () => {
    const { id } = await device();
    await registry.spendWindow(UUID, await device(), issued("A1"), "key-a");
    now += 1000;
    expect(await codeOf(registry.renewCertificate(id, "OLD", issued("B2"), "key-b"))).toBe("CERT_REVOKED");
    await registry.renewCertificate(id, "A1", issued("B2"), "key-b");
    expect((await registry.certificates(orgId, UUID)).items).toMatchObject([
      { serial: "B2", current: true, revokedAt: null },
      { serial: "A1", current: false, revokeReason: "renewed" },
    ]);
    expect(await codeOf(registry.assertKeyNotUsed(id, "key-a"))).toBe("ENROLL_KEY_REUSED");
    expect(await codeOf(registry.assertKeyNotUsed(id, "key-c"))).toBeUndefined();
  });

  it("lists a certificate renewed in the same millisecond after the one it superseded", async () => {
    const { id } = await device();
    await registry.spendWindow(UUID, await device(), issued("A1"), "key-a");
    await registry.renewCertificate(id, "A1", issued("B2"), "key-b");
    expect((await registry.certificates(orgId, UUID)).items.map((c) => [c.serial, c.current])).toEqual([
      ["B2", true],
      ["A1", false],
    ]);
  });

  it("revokes every current certificate with the reason given, and says how many", async () => {
    const { id } = await device();
    await registry.spendWindow(UUID, await device(), issued("A1"), "key-a");
    expect(await registry.revokeCertificates(id, "replaced")).toBe(1);
    expect(await registry.revokeCertificates(id, "replaced")).toBe(0);
    expect((await registry.certificates(orgId, UUID)).items[0]).toMatchObject({
      serial: "A1",
      revokeReason: "replaced",
    });
    expect(await registry.isEnrolled(id)).toBe(false);
  });
});

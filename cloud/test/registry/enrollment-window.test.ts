import { FieldgateError } from "@fieldgate/shared";
import type Database from "better-sqlite3";
import { beforeEach, describe, expect, it } from "vitest";
import { EmbeddedGroupLookup } from "../../src/groups/embedded-group-lookup.js";
import type { IssuedCertificate } from "../../src/pki/certificate-authority.js";
import { DeviceRegistry, MAX_FAILED_ATTEMPTS } from "../../src/registry/device-registry.js";
import { openDatabase } from "../../src/storage/database.js";

const UUID = "7c1d2e3f-0000-4000-8000-00000000abcd";

function issued(serial: string): IssuedCertificate {
  const at = new Date(1_700_000_000_000);
  return { pem: `pem-${serial}`, serial, notBefore: at, notAfter: new Date(at.getTime() + 86_400_000), renewAfter: at };
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof FieldgateError) return err.code;
    throw err;
  }
  return undefined;
}

describe("the registry's enrollment window and certificates", () => {
  let db: Database.Database;
  let registry: DeviceRegistry;
  let orgId: number;
  let now: number;

  beforeEach(() => {
    now = 1_700_000_000_000;
    db = openDatabase(":memory:");
    const groups = new EmbeddedGroupLookup(db);
    registry = new DeviceRegistry(db, groups, 600_000, () => now);
    orgId = registry.ensureDefaultOrganization();
    registry.create(orgId, { uuid: UUID }, { groupId: groups.root(orgId).id });
  });

  const device = () => registry.findByUuid(UUID) ?? expect.unreachable();

  it("spends a window once: a second request that saw the same window is refused", () => {
    const seen = device();
    expect(registry.spendWindow(UUID, seen, issued("A1"), "key-a")).toBe(0);
    expect(registry.currentCertificate(seen.id)?.serial).toBe("A1");
    expect(registry.get(orgId, UUID).window.open).toBe(false);
    expect(codeOf(() => registry.spendWindow(UUID, seen, issued("B2"), "key-b"))).toBe("ENROLL_WINDOW_CLOSED");
    expect(registry.certificates(orgId, UUID).items.map((c) => c.serial)).toEqual(["A1"]);
  });

  it("refuses to spend a window that was replaced after the request saw it", () => {
    const seen = device();
    registry.resetToken(orgId, UUID);
    expect(codeOf(() => registry.spendWindow(UUID, seen, issued("A1"), "key-a"))).toBe("ENROLL_TOKEN_INVALID");
    expect(registry.isEnrolled(seen.id)).toBe(false);
  });

  it(`closes the window after ${MAX_FAILED_ATTEMPTS} wrong proofs, not before`, () => {
    const { id } = device();
    for (let i = 1; i < MAX_FAILED_ATTEMPTS; i++) registry.countWrongProof(id);
    expect(registry.get(orgId, UUID).window).toMatchObject({ open: true, failedAttempts: MAX_FAILED_ATTEMPTS - 1 });
    registry.countWrongProof(id);
    expect(registry.get(orgId, UUID).window.open).toBe(false);
    expect(device().token_hash).toBeNull();
  });

  it("renews only from the current certificate, and never for a key certified before", () => {
    const { id } = device();
    registry.spendWindow(UUID, device(), issued("A1"), "key-a");
    now += 1000;
    expect(codeOf(() => registry.renewCertificate(id, "OLD", issued("B2"), "key-b"))).toBe("CERT_REVOKED");
    registry.renewCertificate(id, "A1", issued("B2"), "key-b");
    expect(registry.certificates(orgId, UUID).items).toMatchObject([
      { serial: "B2", current: true, revokedAt: null },
      { serial: "A1", current: false, revokeReason: "renewed" },
    ]);
    expect(codeOf(() => registry.assertKeyNotUsed(id, "key-a"))).toBe("ENROLL_KEY_REUSED");
    expect(codeOf(() => registry.assertKeyNotUsed(id, "key-c"))).toBeUndefined();
  });

  it("revokes every current certificate with the reason given, and says how many", () => {
    const { id } = device();
    registry.spendWindow(UUID, device(), issued("A1"), "key-a");
    expect(registry.revokeCertificates(id, "replaced")).toBe(1);
    expect(registry.revokeCertificates(id, "replaced")).toBe(0);
    expect(registry.certificates(orgId, UUID).items[0]).toMatchObject({ serial: "A1", revokeReason: "replaced" });
    expect(registry.isEnrolled(id)).toBe(false);
  });
});

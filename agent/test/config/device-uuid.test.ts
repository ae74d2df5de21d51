import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { uuidFromMachineId } from "../../src/config/device-uuid.js";

describe("uuidFromMachineId", () => {
  it("is deterministic, ignores surrounding whitespace, and differs per machine", () => {
    const a = uuidFromMachineId("4c4c4544004d3510804cb4c04f333232");
    expect(uuidFromMachineId("4c4c4544004d3510804cb4c04f333232\n")).toBe(a);
    expect(uuidFromMachineId("4c4c4544004d3510804cb4c04f333233")).not.toBe(a);
  });

  it("is an RFC 9562 version 8 uuid with variant 10", () => {
    for (const id of ["a", "machine", "0123456789abcdef0123456789abcdef"]) {
      const uuid = uuidFromMachineId(id);
      expect(uuid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    }
  });

  it("is the documented HMAC with only the version and variant bits changed", () => {
    const mac = createHmac("sha256", "abc").update("fieldgate-agent-uuid").digest("hex").slice(0, 32);
    const uuid = uuidFromMachineId("  abc ").replace(/-/g, "");
    expect(uuid.slice(0, 12)).toBe(mac.slice(0, 12));
    expect(uuid.slice(13, 16)).toBe(mac.slice(13, 16));
    expect(uuid.slice(17)).toBe(mac.slice(17));
  });
});

import { BULK_CSV_MAX_BYTES, CreateUserBody } from "@fieldgate/shared";
import { describe, expect, it } from "vitest";
import { PERMISSIONS, ROLE_PERMISSIONS, ROLES } from "../../cloud/src/access/roles.js";
import { BULK_MAX_BYTES, PASSWORD_MIN_LENGTH } from "../src/lib/limits.js";
import { AREAS, accessOf, ROLE_PERMISSIONS as CONSOLE, ROLE_NAMES } from "../src/lib/roles.js";

describe("the console's copy of the cloud's rules", () => {
  it("lists the same roles with the same permissions as cloud/src/access/roles.ts", () => {
    expect([...ROLE_NAMES]).toEqual([...ROLES]);
    for (const role of ROLES) expect([...CONSOLE[role]].sort()).toEqual([...ROLE_PERMISSIONS[role]].sort());
    expect(AREAS.map(([area]) => area).sort()).toEqual([...new Set(PERMISSIONS.map((p) => p.split(":")[0]))].sort());
  });

  it("reads R for a viewer and R/W for the areas a role may change", () => {
    expect(accessOf("viewer", "devices")).toBe("R");
    expect(accessOf("device-manager", "devices")).toBe("R/W");
    expect(accessOf("device-manager", "types")).toBe("R/W");
    expect(accessOf("device-manager", "firmware")).toBe("R");
    expect(accessOf("firmware-manager", "firmware")).toBe("R/W");
    expect(accessOf("admin", "users")).toBe("R/W");
    expect(accessOf("nobody", "devices")).toBe("");
  });

  it("asks for the password length and file size the API enforces", () => {
    expect(PASSWORD_MIN_LENGTH).toBe(CreateUserBody.properties.password.minLength);
    expect(BULK_MAX_BYTES).toBe(BULK_CSV_MAX_BYTES);
  });
});

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { EmbeddedGroupLookup } from "../../src/groups/embedded-group-lookup.js";
import { DeviceRegistry } from "../../src/registry/device-registry.js";
import { openDatabase } from "../../src/storage/database.js";
import { naturalSortKey } from "../../src/storage/natural-sort.js";

const everywhere = { clause: "1", params: [] };

describe("natural sort of device names", () => {
  it("orders numbers inside names by value, ignoring case and leading zeros", () => {
    const names = ["meter-10", "Meter-9", "meter-1", "meter-009a", "meter-100", "meter", "meter-2b", "METER-2a"];
    expect([...names].sort((a, b) => cmp(naturalSortKey(a), naturalSortKey(b)))).toEqual([
      "meter",
      "meter-1",
      "METER-2a",
      "meter-2b",
      "Meter-9",
      "meter-009a",
      "meter-10",
      "meter-100",
    ]);
  });

  it("compares two numbers at the same place as numbers, whatever their length", () => {
    fc.assert(
      fc.property(
        fc.string({ unit: fc.constantFrom("a", "-", "_", " ") }),
        fc.bigInt({ min: 0n, max: 10n ** 40n }),
        fc.bigInt({ min: 0n, max: 10n ** 40n }),
        (prefix, a, b) => {
          const order = cmp(naturalSortKey(`${prefix}${a}`), naturalSortKey(`${prefix}${b}`));
          expect(order).toBe(a < b ? -1 : a > b ? 1 : 0);
        },
      ),
    );
  });

  it("sorts in the query, so offset pages and the keyset export walk agree: meter-9 before meter-10", () => {
    const db = openDatabase(":memory:");
    const groups = new EmbeddedGroupLookup(db);
    const registry = new DeviceRegistry(db, groups, 600_000);
    const org = registry.ensureDefaultOrganization();
    const root = groups.root(org);
    // Created out of order, so creation order cannot pass for the natural one.
    const numbers = [12, 3, 25, 1, 10, 9, 2, 20, 11, 30, 100, 5];
    numbers.forEach((n, i) => {
      const uuid = `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`;
      registry.create(org, { uuid, name: `meter-${n}` }, { groupId: root.id, typeId: null });
    });
    const natural = [...numbers].sort((a, b) => a - b).map((n) => `meter-${n}`);
    const filters = registry.resolveFilters(org, { sort: "name" }, () => true);
    const paged: string[] = [];
    for (let offset = 0; offset < numbers.length; offset += 5) {
      paged.push(...registry.list(org, everywhere, filters, { limit: 5, offset }).items.map((d) => d.name));
    }
    expect(paged).toEqual(natural);
    const walked = [...registry.exportPages(org, everywhere, filters, 4)].flat().map((r) => r.name);
    expect(walked).toEqual(natural);
    const descending = registry.resolveFilters(org, { sort: "-name" }, () => true);
    expect(registry.list(org, everywhere, descending, { limit: 3, offset: 0 }).items.map((d) => d.name)).toEqual([
      "meter-100",
      "meter-30",
      "meter-25",
    ]);
    db.close();
  });
});

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

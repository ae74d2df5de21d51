import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { EVENT_CODES } from "../../src/events/event-codes.js";

/** The rows of the "Codes the cloud records" table in docs/events.md, as code → severities. */
function documentedCodes(): Map<string, string[]> {
  const doc = fs.readFileSync(path.resolve(import.meta.dirname, "../../../docs/events.md"), "utf8");
  const section = doc.split(/^## /m).find((s) => s.startsWith("Codes the cloud records"));
  if (!section) throw new Error('docs/events.md has no "Codes the cloud records" section');
  const rows = new Map<string, string[]>();
  for (const line of section.split("\n")) {
    const cells = line.split("|").map((c) => c.trim());
    const code = /^`([A-Z_]+)`$/.exec(cells[1] ?? "")?.[1];
    if (code)
      rows.set(
        code,
        (cells[2] ?? "").split("/").map((s) => s.trim()),
      );
  }
  return rows;
}

describe("event code registry", () => {
  const documented = documentedCodes();

  it("documents every code the cloud records with its severities", () => {
    for (const [code, { severities }] of Object.entries(EVENT_CODES)) {
      expect(documented.has(code), `${code} is missing from docs/events.md`).toBe(true);
      expect(documented.get(code), `${code} must be documented as ${severities.join(" / ")}`).toEqual(severities);
    }
  });

  it("documents no code the cloud does not record", () => {
    expect([...documented.keys()].filter((c) => !(c in EVENT_CODES))).toEqual([]);
  });
});

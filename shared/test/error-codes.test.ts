import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ERROR_CODES } from "../src/errors.js";

/** The rows of the codes table in docs/error-codes.md, as code → HTTP status cell. */
function documentedCodes(): Map<string, string> {
  const doc = fs.readFileSync(path.resolve(import.meta.dirname, "../../docs/error-codes.md"), "utf8");
  const rows = new Map<string, string>();
  for (const line of doc.split("\n")) {
    const cells = line.split("|").map((c) => c.trim());
    const code = /^`([A-Z_]+)`$/.exec(cells[1] ?? "")?.[1];
    if (code) rows.set(code, cells[2] ?? "");
  }
  return rows;
}

describe("error code registry", () => {
  const documented = documentedCodes();

  it("documents every code with its HTTP status", () => {
    for (const [code, { status }] of Object.entries(ERROR_CODES)) {
      expect(documented.has(code), `${code} is missing from docs/error-codes.md`).toBe(true);
      expect(documented.get(code), `${code} must be documented with status ${status}`).toBe(String(status));
    }
  });

  it("documents no code that does not exist", () => {
    expect([...documented.keys()].filter((c) => !(c in ERROR_CODES))).toEqual([]);
  });
});

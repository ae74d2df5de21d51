import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ERROR_CODES } from "../src/errors.js";

describe("error code registry", () => {
  const doc = fs.readFileSync(path.resolve(import.meta.dirname, "../../docs/error-codes.md"), "utf8");

  it("documents every code with its HTTP status", () => {
    for (const [code, { status }] of Object.entries(ERROR_CODES)) {
      const row = doc.split("\n").find((line) => line.startsWith(`| \`${code}\` |`));
      expect(row, `${code} is missing from docs/error-codes.md`).toBeDefined();
      expect(row, `${code} row must give status ${status}`).toContain(`| ${status} |`);
    }
  });

  it("documents no code that does not exist", () => {
    const documented = [...doc.matchAll(/^\| `([A-Z_]+)` \|/gm)].map((m) => m[1]);
    expect(documented.filter((c) => !(c && c in ERROR_CODES))).toEqual([]);
  });
});

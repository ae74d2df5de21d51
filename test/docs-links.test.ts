import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

// The repository stands alone: no document or source file may point to a file outside it, and
// every relative link in the docs must reach a file (and a heading) that exists.
const root = path.resolve(import.meta.dirname, "..");
const tracked = execFileSync("git", ["ls-files"], { cwd: root, encoding: "utf8" })
  .split("\n")
  .filter((file) => file.length > 0 && fs.existsSync(path.join(root, file)));
const markdown = tracked.filter((file) => file.endsWith(".md"));

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes. */
function anchorsOf(file: string): Set<string> {
  const anchors = new Set<string>();
  for (const line of fs.readFileSync(path.join(root, file), "utf8").split("\n")) {
    const heading = /^#{1,6}\s+(.*)$/.exec(line)?.[1];
    if (heading !== undefined)
      anchors.add(
        heading
          .trim()
          .toLowerCase()
          .replace(/[^\p{L}\p{N}_\- ]/gu, "")
          .replace(/ /g, "-"),
      );
  }
  return anchors;
}

describe("the repository's references", () => {
  it("has documents to check", () => {
    expect(markdown).toContain("README.md");
    expect(markdown).toContain("docs/architecture.md");
  });

  it.each(markdown)("%s links only to files and headings inside the repository", (file) => {
    const text = fs.readFileSync(path.join(root, file), "utf8");
    const broken: string[] = [];
    for (const match of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const link = match[1] ?? "";
      if (/^[a-z]+:/.test(link)) continue; // https:, mailto:
      const [target = "", anchor] = link.split("#");
      const resolved = target === "" ? file : path.posix.normalize(path.posix.join(path.posix.dirname(file), target));
      if (resolved.startsWith("../")) broken.push(`${link}: outside the repository`);
      else if (!fs.existsSync(path.join(root, resolved))) broken.push(`${link}: no such file`);
      else if (anchor && resolved.endsWith(".md") && !anchorsOf(resolved).has(anchor))
        broken.push(`${link}: no such heading`);
    }
    expect(broken).toEqual([]);
  });

  it("names no path outside the repository in any tracked text file", () => {
    const outside = tracked
      .filter((file) => /\.(md|ts|mjs|js|json|sh)$|^\.ci\/|Dockerfile$/.test(file) && file !== "package-lock.json")
      .filter((file) =>
        /\.\.\/shared\/DESIGN\.md|\/work\/|\bDESIGN\.md\b/.test(fs.readFileSync(path.join(root, file), "utf8")),
      )
      .filter((file) => file !== "test/docs-links.test.ts");
    expect(outside).toEqual([]);
  });
});

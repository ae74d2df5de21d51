import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

/**
 * No module imports itself through others: each package's source is a graph without circles. Type-only
 * imports count too (a circle of types is still two modules that cannot be understood one at a time).
 */
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const SOURCE_DIRS = ["shared/src", "cloud/src", "agent/src", "console/src"];
const SOURCE_FILE = /\.(ts|tsx)$/;

/** Relative specifiers of static imports and re-exports, side-effect imports and `import("...")`. */
const IMPORTS = [
  /^\s*(?:import|export)\s[^;"'`]*?\bfrom\s*["']([^"']+)["']/gm,
  /^\s*import\s*["']([^"']+)["']/gm,
  /\bimport\(\s*["']([^"']+)["']\s*\)/g,
];

type Graph = Map<string, string[]>;

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(full);
    return SOURCE_FILE.test(entry.name) && !entry.name.endsWith(".d.ts") ? [full] : [];
  });
}

/** The file a relative specifier names (`./x.js` is `./x.ts` or `./x.tsx`), or undefined (a CSS file, say). */
function resolve(from: string, specifier: string): string | undefined {
  const target = path.resolve(path.dirname(from), specifier);
  const stem = target.replace(/\.(js|jsx|ts|tsx)$/, "");
  const candidates = [
    target,
    `${stem}.ts`,
    `${stem}.tsx`,
    path.join(target, "index.ts"),
    path.join(target, "index.tsx"),
  ];
  return candidates.find((file) => SOURCE_FILE.test(file) && fs.existsSync(file) && fs.statSync(file).isFile());
}

function importGraph(dirs: readonly string[]): Graph {
  const graph: Graph = new Map();
  for (const file of dirs.flatMap((dir) => sourceFiles(path.join(root, dir)))) {
    const text = fs.readFileSync(file, "utf8");
    const targets = new Set<string>();
    for (const pattern of IMPORTS) {
      for (const match of text.matchAll(pattern)) {
        const specifier = match[1] as string;
        if (!specifier.startsWith(".")) continue;
        const target = resolve(file, specifier);
        if (target) targets.add(path.relative(root, target));
      }
    }
    graph.set(path.relative(root, file), [...targets].sort());
  }
  return graph;
}

/** Every circle reached by a depth-first walk, each as its path `a -> b -> a`. */
function findCycles(graph: Graph): string[] {
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const cycles: string[] = [];
  const visit = (node: string) => {
    state.set(node, "open");
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      const seen = state.get(next);
      if (seen === "open") cycles.push([...stack.slice(stack.indexOf(next)), next].join(" -> "));
      else if (seen === undefined) visit(next);
    }
    stack.pop();
    state.set(node, "done");
  };
  for (const node of [...graph.keys()].sort()) if (!state.has(node)) visit(node);
  return cycles;
}

describe("import cycles", () => {
  it("finds a circle with its path, and none in a tree", () => {
    const circle: Graph = new Map([
      ["a.ts", ["b.ts"]],
      ["b.ts", ["c.ts"]],
      ["c.ts", ["a.ts"]],
    ]);
    expect(findCycles(circle)).toEqual(["a.ts -> b.ts -> c.ts -> a.ts"]);
    const tree: Graph = new Map([
      ["a.ts", ["b.ts", "c.ts"]],
      ["b.ts", ["c.ts"]],
      ["c.ts", []],
    ]);
    expect(findCycles(tree)).toEqual([]);
  });

  it("reads the imports of the sources, type-only and multi-line ones too", () => {
    const graph = importGraph(["cloud/src"]);
    expect(graph.get("cloud/src/cloud.ts")).toContain("cloud/src/firmware/firmware-store.ts");
    expect(graph.get("cloud/src/jobs/device-jobs.ts")).toContain("cloud/src/firmware/firmware-record.ts");
  });

  it.each(SOURCE_DIRS)("%s has no import cycle", (dir) => {
    expect(findCycles(importGraph([dir]))).toEqual([]);
  });
});

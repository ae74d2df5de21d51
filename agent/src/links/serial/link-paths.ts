import fs from "node:fs";

/** What a serial link may open unless the gateway's config says otherwise (`linkPaths`). */
export const DEFAULT_LINK_PATHS: readonly string[] = ["/dev/tty*", "/dev/serial/by-id/*"];

/** A `linkPaths` pattern as a regex: `*` matches within one path segment, all else literally. */
function patternRegex(pattern: string): RegExp {
  const body = pattern
    .split("*")
    .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
    .join("[^/]*");
  return new RegExp(`^${body}$`);
}

function allowed(path: string, patterns: readonly string[]): boolean {
  return patterns.some((p) => patternRegex(p).test(path));
}

/**
 * Why the link must not open `path`, or undefined when it may (or when the path does not exist
 * yet: an unplugged adapter is the open's business, retried). The path must match a `linkPaths`
 * pattern, and so must what it resolves to (symlinks followed), which must be a character device:
 * a desired config pointing a link at /etc/shadow, or an allowed name linked to a regular file,
 * is refused before the agent (often root) opens anything.
 */
export function linkPathRefusal(path: string, patterns: readonly string[]): string | undefined {
  const fix = `add a pattern to linkPaths in the gateway's agent config (now ${patterns.join(", ")})`;
  if (path.split("/").some((segment) => segment === "..") || !allowed(path, patterns)) {
    return `${path} is not in the allowed link paths; ${fix}`;
  }
  let target: string;
  try {
    target = fs.realpathSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    return `${path} cannot be resolved (${(err as NodeJS.ErrnoException).code})`;
  }
  if (target !== path && !allowed(target, patterns)) {
    return `${path} resolves to ${target}, which is not in the allowed link paths; ${fix}`;
  }
  if (!fs.statSync(target).isCharacterDevice()) {
    return `${path}${target === path ? "" : ` (${target})`} is not a character device; a serial link opens only device nodes`;
  }
  return undefined;
}

import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic } from "../identity/atomic-file.js";

/**
 * Tokens the cloud has rejected, kept as SHA-256 hashes. A rejected token never becomes valid (a
 * reset issues a new one), and every retry with it counts toward the five wrong tries that close
 * the window, so the daemon must not send it again, not even after a restart.
 */
export class RejectedTokens {
  private readonly file: string;

  constructor(dataDir: string) {
    this.file = join(dataDir, "rejected-tokens.json");
  }

  has(token: string): boolean {
    return this.read().includes(hash(token));
  }

  add(token: string): void {
    const hashes = this.read();
    if (!hashes.includes(hash(token)))
      writeFileAtomic(this.file, JSON.stringify([...hashes, hash(token)].slice(-16)), 0o600);
  }

  private read(): string[] {
    if (!existsSync(this.file)) return [];
    try {
      const parsed = JSON.parse(readFileSync(this.file, "utf8")) as unknown;
      return Array.isArray(parsed) ? parsed.filter((h): h is string => typeof h === "string") : [];
    } catch {
      return [];
    }
  }
}

function hash(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

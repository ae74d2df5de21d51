import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

/**
 * Enrollment tokens and API secrets are 256 random bits, so a fast hash is enough: there is no
 * dictionary to search (the same reasoning GitHub applies to its tokens). Human passwords, when
 * they arrive, need scrypt instead.
 */
export function newSecret(prefix: string): string {
  return `${prefix}${randomBytes(32).toString("base64url")}`;
}

export function hashSecret(secret: string): Buffer {
  return createHash("sha256").update(secret, "utf8").digest();
}

/** Constant-time comparison of a presented secret against a stored hash. */
export function secretMatches(presented: string, storedHash: Buffer | null | undefined): boolean {
  const candidate = hashSecret(presented);
  // Compare against a dummy when nothing is stored, so a miss costs the same time as a wrong secret.
  const reference = storedHash && storedHash.length === candidate.length ? storedHash : Buffer.alloc(candidate.length);
  const equal = timingSafeEqual(candidate, reference);
  return equal && storedHash !== null && storedHash !== undefined && storedHash.length === candidate.length;
}

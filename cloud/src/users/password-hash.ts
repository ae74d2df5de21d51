import { randomBytes, scrypt, timingSafeEqual } from "node:crypto";

/** scrypt parameters: N=2^15, r=8, p=1 (about 32 MiB and tens of milliseconds per hash, OWASP's floor). */
const N = 32768;
const R = 8;
const P = 1;
const KEY_LEN = 32;
const MAX_MEM = 64 * 1024 * 1024;

function derive(password: string, salt: Buffer, n: number, r: number, p: number): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(password, salt, KEY_LEN, { N: n, r, p, maxmem: MAX_MEM }, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

/** `scrypt$N$r$p$salt$hash`, salt and hash in base64. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(password, salt, N, R, P);
  return `scrypt$${N}$${R}$${P}$${salt.toString("base64")}$${key.toString("base64")}`;
}

/** Constant-time check; a missing hash still costs one derivation, so unknown users take as long. */
export async function verifyPassword(password: string, stored: string | undefined): Promise<boolean> {
  const parts = (stored ?? "").split("$");
  const valid = parts.length === 6 && parts[0] === "scrypt";
  const n = valid ? Number(parts[1]) : N;
  const r = valid ? Number(parts[2]) : R;
  const p = valid ? Number(parts[3]) : P;
  const salt = valid ? Buffer.from(parts[4] ?? "", "base64") : randomBytes(16);
  const expected = valid ? Buffer.from(parts[5] ?? "", "base64") : Buffer.alloc(KEY_LEN);
  const actual = await derive(password, salt, n, r, p);
  return valid && expected.length === actual.length && timingSafeEqual(expected, actual);
}

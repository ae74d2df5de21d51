import fs from "node:fs";
import path from "node:path";

/** Writes a file that holds a secret: mode 0600 from the first byte, replaced atomically. */
export function writeSecretFile(file: string, data: string | Buffer): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, data, { mode: 0o600 });
  fs.chmodSync(tmp, 0o600);
  fs.renameSync(tmp, file);
}

/** Writes a public file (a certificate) atomically; owner-only like the rest of the data directory
 * (public in content, not shared in place: the operator hands out copies). */
export function writePublicFile(file: string, data: string | Buffer): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, data, { mode: 0o600 });
  fs.renameSync(tmp, file);
}

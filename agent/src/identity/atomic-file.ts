import { randomBytes } from "node:crypto";
import { chmodSync, closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { basename, dirname } from "node:path";
import { isStorageFull, storageFullError } from "../storage/storage-full.js";

/**
 * Writes a file atomically: a temp file in the same directory, fsync, rename, fsync the directory.
 * A crash leaves either the old content or the new, never half a key. On a full disk it throws
 * STORAGE_FULL (the old content stays), which every caller reports instead of crashing.
 */
export function writeFileAtomic(path: string, data: string | Buffer, mode = 0o600): void {
  try {
    writeThenRename(path, data, mode);
  } catch (err) {
    throw isStorageFull(err) ? storageFullError(basename(path)) : err;
  }
}

function writeThenRename(path: string, data: string | Buffer, mode: number): void {
  const tmp = `${path}.${randomBytes(4).toString("hex")}.tmp`;
  const fd = openSync(tmp, "wx", mode);
  try {
    writeSync(fd, typeof data === "string" ? Buffer.from(data) : data);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    unlinkSync(tmp);
    throw err;
  }
  closeSync(fd);
  // The umask may have narrowed or (for an existing file) `mode` never applied; make it exact.
  chmodSync(tmp, mode);
  renameSync(tmp, path);
  fsyncDir(dirname(path));
}

function fsyncDir(dir: string): void {
  try {
    const fd = openSync(dir, "r");
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // Some filesystems refuse fsync on directories; the rename is still atomic there.
  }
}

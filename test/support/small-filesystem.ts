import { execFileSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A tmpfs of a few MiB that a test can fill; `undefined` (with the reason) where mounting is not permitted. */
export interface SmallFilesystem {
  dir: string;
  /** Writes a filler file until the filesystem refuses (ENOSPC); returns its path. */
  fill(name?: string): string;
  unmount(): void;
}

export function mountSmallFilesystem(sizeMiB: number): SmallFilesystem | { skipped: string } {
  const dir = mkdtempSync(join(tmpdir(), "fieldgate-small-fs-"));
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${sizeMiB}m,mode=0700`, "tmpfs", dir], { stdio: "pipe" });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    const why = (err as { stderr?: Buffer }).stderr?.toString().trim() || (err as Error).message;
    return { skipped: `cannot mount a tmpfs (needs root or CAP_SYS_ADMIN): ${why}` };
  }
  return {
    dir,
    fill(name = "filler") {
      const file = join(dir, name);
      const fd = openSync(file, "a");
      const chunk = Buffer.alloc(4096, 1);
      try {
        for (;;) writeSync(fd, chunk);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOSPC") throw err;
      } finally {
        closeSync(fd);
      }
      return file;
    },
    unmount() {
      execFileSync("umount", ["-l", dir], { stdio: "pipe" });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

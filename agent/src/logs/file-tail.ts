import { open, stat } from "node:fs/promises";

/** Options of a file tail. */
export interface FileTailOptions {
  path: string;
  onLine: (line: string) => void;
  /** Called once per distinct problem (missing file, unreadable); the caller decides how to log it. */
  onProblem?: (message: string) => void;
  pollMs?: number;
}

/** Longest partial line kept while waiting for its newline; longer lines are cut here. */
const MAX_PENDING = 64 * 1024;
/** At most this much is read per poll, so a file that grows fast cannot stall the event loop. */
const MAX_READ = 1024 * 1024;

/**
 * Follows a text file from its end, like `tail -F`: polls every second (fs.watch misses rotations
 * on some filesystems), starts over when the file is replaced (new inode: logrotate's create mode)
 * or truncated (copytruncate), and waits for a file that does not exist yet.
 */
export class FileTail {
  private timer: NodeJS.Timeout | undefined;
  private ino: number | undefined;
  private position = 0;
  private pending = "";
  private polling = false;
  private lastProblem: string | undefined;
  private started = false;

  constructor(private readonly options: FileTailOptions) {}

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    // Start at the current end: history before the agent started is not forwarded.
    try {
      const s = await stat(this.options.path);
      this.ino = s.ino;
      this.position = s.size;
    } catch (err) {
      this.problem(
        `cannot read ${this.options.path} (${(err as NodeJS.ErrnoException).code ?? "error"}); waiting for it`,
      );
    }
    this.timer = setInterval(() => void this.poll(), this.options.pollMs ?? 1000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.started = false;
  }

  /** One poll: read what was appended since the last one. */
  async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      let s: Awaited<ReturnType<typeof stat>>;
      try {
        s = await stat(this.options.path);
      } catch (err) {
        this.problem(
          `cannot read ${this.options.path} (${(err as NodeJS.ErrnoException).code ?? "error"}); waiting for it`,
        );
        return;
      }
      if (this.ino !== undefined && s.ino !== this.ino) {
        this.flushPending();
        this.position = 0; // rotated: the new file is read from its start
      } else if (s.size < this.position) {
        this.flushPending();
        this.position = 0; // truncated in place
      }
      this.ino = s.ino;
      this.lastProblem = undefined;
      if (s.size <= this.position) return;
      const length = Math.min(s.size - this.position, MAX_READ);
      const handle = await open(this.options.path, "r");
      try {
        const buf = Buffer.alloc(length);
        const { bytesRead } = await handle.read(buf, 0, length, this.position);
        this.position += bytesRead;
        this.consume(buf.subarray(0, bytesRead).toString("utf8"));
      } finally {
        await handle.close();
      }
    } catch (err) {
      this.problem(`reading ${this.options.path} failed: ${(err as Error).message}`);
    } finally {
      this.polling = false;
    }
  }

  private consume(text: string): void {
    const parts = (this.pending + text).split("\n");
    this.pending = parts.pop() ?? "";
    if (this.pending.length > MAX_PENDING) {
      this.options.onLine(this.pending.slice(0, MAX_PENDING));
      this.pending = "";
    }
    for (const line of parts) {
      const trimmed = line.replace(/\r$/, "");
      if (trimmed.length > 0) this.options.onLine(trimmed);
    }
  }

  private flushPending(): void {
    if (this.pending.length > 0) this.options.onLine(this.pending);
    this.pending = "";
  }

  private problem(message: string): void {
    if (message === this.lastProblem) return;
    this.lastProblem = message;
    this.options.onProblem?.(message);
  }
}

/**
 * A reader that went away (`fieldgate-agent status --json | head -1`) is not an error: stop
 * quietly, as a Unix tool killed by SIGPIPE would, instead of crashing on the next write with EPIPE.
 */
export function exitQuietlyOnClosedOutput(streams: NodeJS.WriteStream[] = [process.stdout, process.stderr]): void {
  for (const stream of streams) {
    stream.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "EPIPE") process.exit(typeof process.exitCode === "number" ? process.exitCode : 0);
      throw err;
    });
  }
}

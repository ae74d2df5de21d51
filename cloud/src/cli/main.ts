#!/usr/bin/env node
// The entry point: the process's io and exit code around buildProgram (program.ts), which tests drive in-process.
import { buildProgram } from "./program.js";

// First, before any file is opened: every file and directory this process creates, its libraries'
// too (SQLite's -wal and -shm, the firmware store), is owner-only (0600/0700) whatever mode asks for more.
process.umask(0o077);

// A reader that went away (`devices list | head -1`): stop quietly, as other Unix tools do.
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code === "EPIPE") process.exit(0);
    throw err;
  });
}

const io = {
  out: (text: string) => void process.stdout.write(`${text}\n`),
  err: (text: string) => void process.stderr.write(`${text}\n`),
  env: process.env,
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
};

const code = await buildProgram(io).run(process.argv.slice(2));
// `serve` keeps running after its start; other commands end when their work is done.
if (code !== 0) process.exit(code);

#!/usr/bin/env node
// First of all: every file the agent or a library creates (SQLite's -wal and -shm, the socket,
// staged firmware) is then 0600 and every directory 0700 (docs/security.md). Same value as AGENT_UMASK.
process.umask(0o077);
// Catch a stop signal from the first instant: a supervisor may stop the daemon while it is still
// loading its modules, and the default action would kill it without a clean shutdown.
let stopSignal: string | undefined;
const stopWaiters: ((signal: string) => void)[] = [];
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    stopSignal ??= signal;
    for (const resolve of stopWaiters.splice(0)) resolve(signal);
  });
}
const waitForStop = (): Promise<string> =>
  stopSignal ? Promise.resolve(stopSignal) : new Promise((resolve) => stopWaiters.push(resolve));

const { exitQuietlyOnClosedOutput } = await import("./closed-output.js");
exitQuietlyOnClosedOutput();
const { buildProgram } = await import("./program.js");
const io = {
  out: (text: string) => process.stdout.write(`${text}\n`),
  err: (text: string) => process.stderr.write(`${text}\n`),
  env: process.env,
  waitForStop,
};

const code = await buildProgram(io).run(process.argv.slice(2));
// Exit explicitly: pino's destination and sockets closing late must not keep a stopped daemon alive.
process.exitCode = code;
setTimeout(() => process.exit(code), 200).unref();

#!/usr/bin/env node
import { buildProgram } from "./program.js";

const io = {
  out: (text: string) => process.stdout.write(`${text}\n`),
  err: (text: string) => process.stderr.write(`${text}\n`),
  env: process.env,
};

const code = await buildProgram(io).run(process.argv.slice(2));
// Exit explicitly: pino's destination and sockets closing late must not keep a stopped daemon alive.
process.exitCode = code;
setTimeout(() => process.exit(code), 200).unref();

#!/usr/bin/env node
// `fieldgate-sim` from `npm install` on: runs the built CLI, or says how to build it (scripts/run-built.mjs).
import { runBuilt } from "../../scripts/run-built.mjs";

await runBuilt("fieldgate-sim", new URL("../dist/sim/main.js", import.meta.url));

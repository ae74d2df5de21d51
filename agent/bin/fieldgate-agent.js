#!/usr/bin/env node
// `fieldgate-agent` from `npm install` on: runs the built CLI, or says how to build it (scripts/run-built.mjs).
import { runBuilt } from "../../scripts/run-built.mjs";

await runBuilt("fieldgate-agent", new URL("../dist/cli/main.js", import.meta.url));

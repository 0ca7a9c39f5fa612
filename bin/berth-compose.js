#!/usr/bin/env node
// `berth-compose …` is `berth compose …`.
import { runCliArgs } from '../dist/src/cli/main.js';
runCliArgs(['compose', ...process.argv.slice(2)]).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);

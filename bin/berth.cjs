#!/usr/bin/env node
'use strict';
// The berth CLI. A CommonJS entry: Node starts it without setting up its ES module loader.
// The bundled CLI (scripts/bundle-cli.js, loaded by cli-loader.cjs with its code cache) starts
// several times faster than the ~50 modules tsc emits; it is used unless a later `tsc` left it behind
// the compiled sources. `berth run …` gets the bundle that holds `run` alone.
const { statSync } = require('node:fs');
const path = require('node:path');

/** The command asked for, when only -H/--host and -D/--debug come before it (as src/cli/program.ts). */
function requestedCommand(argv) {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-H' || a === '--host') i++;
    else if (!a.startsWith('-')) return a;
    else if (a !== '-D' && a !== '--debug' && !a.startsWith('--host=')) return undefined;
  }
  return undefined;
}

const dist = path.join(__dirname, '..', 'dist', 'src');
const run = requestedCommand(process.argv.slice(2)) === 'run';
const bundle = path.join(dist, 'cli-bundle', run ? 'run.cjs' : 'berth.cjs');
const compiled = path.join(dist, 'cli', run ? 'run-main.js' : 'main.js');
let fresh = false;
try {
  fresh = statSync(bundle).mtimeMs >= statSync(compiled).mtimeMs;
} catch {
  // no bundle (or no build at all): the compiled modules
}
if (fresh) require('./cli-loader.cjs').loadBundle(bundle).exports.runCli();
else
  import(require('node:url').pathToFileURL(compiled).href).then(
    (m) => m.runCli(),
    (err) => {
      process.stderr.write(`berth: ${err.message}\n`);
      process.exitCode = 1;
    },
  );

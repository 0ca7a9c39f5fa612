'use strict';
// Loads the bundled CLI (dist/src/cli-bundle/berth.cjs, made by scripts/bundle-cli.js) with the V8
// code cache made for it at build time (berth.cjs.cache): V8 then takes the compiled functions from
// the cache instead of parsing and compiling ~1 MB of JavaScript on every start. V8 checks that the
// cache fits (its own version and flags, the source) and compiles as usual when it does not, e.g.
// after a Node upgrade or under other Node flags.
const { readFileSync } = require('node:fs');
const Module = require('node:module');
const path = require('node:path');
const vm = require('node:vm');

/** The bundle's exports, and the script (for making the cache). */
function loadBundle(file) {
  const source = readFileSync(file, 'utf8');
  let cachedData;
  try {
    cachedData = readFileSync(`${file}.cache`);
  } catch {
    // no cache: compiled from source
  }
  const script = new vm.Script(Module.wrap(source), { filename: file, cachedData });
  const mod = { exports: {} };
  script.runInThisContext()(mod.exports, Module.createRequire(file), mod, file, path.dirname(file));
  return { exports: mod.exports, script };
}

module.exports = { loadBundle };

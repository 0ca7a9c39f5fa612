#!/usr/bin/env node
import { statSync } from 'node:fs';

// The bundled CLI (scripts/bundle-cli.js) starts several times faster than the ~50 modules tsc
// emits; it is used unless a later `tsc` left it behind the compiled sources.
const dist = new URL('../dist/src/', import.meta.url);
const bundle = new URL('cli-bundle/berth.js', dist);
const compiled = new URL('cli/main.js', dist);
let entry = compiled;
try {
  if (statSync(bundle).mtimeMs >= statSync(compiled).mtimeMs) entry = bundle;
} catch {
  // no bundle (or no build at all): the compiled modules
}
const { runCli } = await import(entry.href);
runCli();

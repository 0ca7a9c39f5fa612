#!/usr/bin/env node
// Bundles the compiled CLI into CommonJS files in dist/src/cli-bundle/: berth.cjs (every command, from
// dist/src/cli/main.js) and run.cjs (`berth run` alone, from run-main.js: a fifth of the size), and
// makes V8's code cache for each (scripts/cli-code-cache.cjs). Node reads one script instead of ~50 ES
// modules and, with the cache, does not even compile it: most of `berth`'s start-up was module loading.
// bin/berth.cjs picks the bundle and uses it when it is at least as new as the compiled CLI.
// The output stays three levels below the project root, like dist/src/cli/, so the paths the code
// resolves from its own location (the native addon, bin/berthd.js) stay right.
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';

const root = new URL('..', import.meta.url).pathname;
const outdir = join(root, 'dist', 'src', 'cli-bundle');
rmSync(outdir, { recursive: true, force: true });
await build({
  entryPoints: {
    berth: join(root, 'dist', 'src', 'cli', 'main.js'),
    run: join(root, 'dist', 'src', 'cli', 'run-main.js'),
  },
  outdir,
  outExtension: { '.js': '.cjs' },
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  // the native addon is loaded at run time from build/Release
  external: ['*.node'],
  // import() of Node's own modules becomes require(): a script run by node:vm has no module loader
  supported: { 'dynamic-import': false },
  // The sources are ES modules: strict, and import.meta.url is the bundle's own URL.
  define: { 'import.meta.url': '__berthBundleUrl' },
  banner: {
    js: "'use strict';\nconst __berthBundleUrl = require('node:url').pathToFileURL(__filename).href;",
  },
  logLevel: 'warning',
});
// A separate process, started like the CLI (no Node flags): V8 accepts a code cache only from a
// process with the same flags.
for (const name of ['berth', 'run'])
  execFileSync(process.execPath, [join(root, 'scripts', 'cli-code-cache.cjs'), join(outdir, `${name}.cjs`)], {
    stdio: 'inherit',
    env: { ...process.env, NODE_OPTIONS: '' },
  });

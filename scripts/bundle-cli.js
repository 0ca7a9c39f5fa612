#!/usr/bin/env node
// Bundles the compiled CLI (dist/src/cli/main.js) into dist/src/cli-bundle/: one file for the
// commands every run needs, plus chunks loaded on demand (compose, hub, cp, build). Node resolves,
// reads and compiles one module instead of ~50, which is most of `berth`'s start-up time.
// bin/berth.js uses the bundle when it is at least as new as the compiled CLI.
// The output stays three levels below the project root, like dist/src/cli/, so the paths the code
// resolves from its own location (the native addon, bin/berthd.js) stay right.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';

const root = new URL('..', import.meta.url).pathname;
const outdir = join(root, 'dist', 'src', 'cli-bundle');
rmSync(outdir, { recursive: true, force: true });
await build({
  entryPoints: { berth: join(root, 'dist', 'src', 'cli', 'main.js') },
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // the native addon is loaded at run time from build/Release
  external: ['*.node'],
  // CommonJS packages inside an ES module bundle still call require() for Node's own modules
  banner: {
    js: "import { createRequire as __berthRequire } from 'node:module';\nconst require = __berthRequire(import.meta.url);",
  },
  logLevel: 'warning',
});

#!/usr/bin/env node
// `node bin/berth.js` as before: the CLI is bin/berth.cjs (bin/berth is what `berth` on PATH runs).
import { createRequire } from 'node:module';

createRequire(import.meta.url)('./berth.cjs');

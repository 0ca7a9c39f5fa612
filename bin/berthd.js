#!/usr/bin/env node
import { relaunchWithV8Flags } from '../dist/src/daemon/v8flags.js';
relaunchWithV8Flags();
const { runDaemon } = await import('../dist/src/daemon/main.js');
runDaemon();

#!/usr/bin/env node
import { runDaemon } from '../dist/src/daemon/main.js';
runDaemon();

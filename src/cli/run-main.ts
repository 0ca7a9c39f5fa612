/**
 * `berth run` alone: the program main.ts sets up when `run` is the command asked for, as an entry of
 * its own, so that its bundle (scripts/bundle-cli.js) holds only what a run needs: bin/berth.cjs
 * loads it for `berth run …`, the command whose start-up users wait for most.
 */
import type { Command } from 'commander';
import { runCommandOf } from './commands/containers.js';
import type { CliContext } from './context.js';
import { configureErrors, globalProgram, runProgram, startCli } from './program.js';

export function buildRunProgram(ctx: CliContext): Command {
  const program = globalProgram(ctx);
  runCommandOf(program, ctx);
  configureErrors(program);
  return program;
}

export function runCliArgs(argv: string[]): Promise<number> {
  return runProgram(buildRunProgram({}), argv);
}

export function runCli(): void {
  // A run is over when its promise settles: the container's output is written, the terminal restored.
  startCli(runCliArgs, { exitWhenDone: true });
}

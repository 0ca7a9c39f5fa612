/**
 * What every berth program shares: the global flags, Docker's exit code for flag errors, and running
 * a program to an exit code. main.ts sets up every command; run-main.ts only `run`, for the bundle
 * bin/berth.cjs loads when `run` is the command asked for.
 */
import { Command, CommanderError } from 'commander';
import { ComposeError } from '../compose/errors.js';
import { type CliContext, closeClient } from './context.js';
import { describeError, ExitError } from './errors.js';
import { restoreDeferredCaCerts } from './extraca.js';

export function globalProgram(ctx: CliContext): Command {
  const program = new Command('berth')
    .description('A container platform that speaks Docker')
    .option('-H, --host <host>', 'daemon socket to connect to')
    .option('-D, --debug', 'enable debug mode')
    .version('Berth version 0.1.0', '-v, --version', 'print version information and quit')
    .showSuggestionAfterError(true)
    .enablePositionalOptions();
  program.hook('preAction', (cmd) => {
    ctx.hostFlag = (cmd.opts() as { host?: string }).host;
  });
  return program;
}

/** Flag errors exit 125 with Docker's hint, like the docker CLI. */
export function configureErrors(cmd: Command): void {
  cmd.exitOverride();
  cmd.configureOutput({
    writeErr: (s) => process.stderr.write(s),
    outputError: (s, write) => write(s.replace(/^error: /, '')),
  });
  for (const sub of cmd.commands) configureErrors(sub);
}

/** The command asked for, when only the global -H/--host and -D/--debug come before it. */
export function requestedCommand(argv: string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-H' || a === '--host') i++;
    else if (!a.startsWith('-')) return a;
    else if (!['-D', '--debug'].includes(a) && !a.startsWith('--host=')) return undefined;
  }
  return undefined;
}

/** Parses argv with the program and runs the action; the exit code, Docker's for each kind of failure. */
export async function runProgram(program: Command, argv: string[]): Promise<number> {
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.exitCode === 0)
        return 0;
      if (err.code === 'commander.help') return 0;
      process.stderr.write(`See 'berth --help'.\n`);
      return 125;
    }
    if (err instanceof ComposeError) {
      process.stderr.write(err.message + '\n');
      return 1;
    }
    if (err instanceof ExitError) {
      if (err.message) process.stderr.write(err.message + '\n');
      return err.code;
    }
    process.stderr.write(describeError(err) + '\n');
    return 1;
  } finally {
    closeClient();
  }
}

/**
 * The process's CLI run: the arguments after `berth`, the exit code set when done. `exitWhenDone`
 * (a command known to have nothing left to do once its promise settles) ends the process as soon as
 * stdout and stderr have passed on what was written to them, sparing Node's teardown of its heap.
 */
export function startCli(
  runArgs: (argv: string[]) => Promise<number>,
  opts: { exitWhenDone?: boolean } = {},
): void {
  const argv = process.argv.slice(2);
  if (restoreDeferredCaCerts(argv)) return;
  runArgs(argv).then(
    (code) => {
      process.exitCode = code;
      if (opts.exitWhenDone) exitWhenFlushed(code);
    },
    (err: unknown) => {
      process.stderr.write(`${describeError(err)}\n`);
      process.exitCode = 1;
    },
  );
}

function exitWhenFlushed(code: number): void {
  const pending = [process.stdout, process.stderr].filter((s) => s.writableLength > 0);
  let left = pending.length;
  if (left === 0) process.exit(code);
  for (const s of pending) {
    let seen = false;
    const flushed = () => {
      if (seen) return;
      seen = true;
      if (--left === 0) process.exit(code);
    };
    s.once('drain', flushed).once('error', flushed).once('close', flushed);
  }
}

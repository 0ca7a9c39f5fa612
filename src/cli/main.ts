/**
 * berth: the command-line client. Docker's command names, flags, output and exit codes.
 */
import type { Command } from 'commander';
import { ApiError } from '../client/client.js';
import { buildCommands } from './commands/build.js';
import { containerCommands } from './commands/containers.js';
import { cpCommand } from './commands/cp.js';
import { daemonCommands } from './commands/daemon.js';
import { searchCommand } from './commands/search.js';
import { imageCommands } from './commands/images.js';
import { registryCommands } from './commands/registry.js';
import { networkCommands } from './commands/network.js';
import { systemCommands } from './commands/system.js';
import { inspectVolume, volumeCommands } from './commands/volumes.js';
import { type CliContext, connect } from './context.js';
import { ExitError } from './errors.js';
import { printInspect } from './output.js';
import { configureErrors, globalProgram, requestedCommand, runProgram, startCli } from './program.js';
import { buildRunProgram } from './run-main.js';

/** Command groups heavy to load (the hub server, compose's YAML and engine): loaded only when used. */
interface LazyGroups {
  compose?: typeof import('../compose/commands.js');
  hub?: typeof import('./commands/hub.js');
}

async function loadLazyGroups(argv: string[]): Promise<LazyGroups> {
  return {
    compose: argv.includes('compose') ? await import('../compose/commands.js') : undefined,
    hub: argv.includes('hub') ? await import('./commands/hub.js') : undefined,
  };
}

/** A group's name in `berth --help` without loading it. */
function placeholder(program: Command, name: string, description: string): void {
  program.command(name).description(description).allowUnknownOption().argument('[args...]');
}

/**
 * Commands set up alone when they are the one asked for, sparing the set-up of all the others
 * (`run` declares ~100 flags, twice with `container run`): its start-up latency is the one users feel.
 */
const SOLO: Record<string, (ctx: CliContext) => Command> = { run: buildRunProgram };

export function buildProgram(ctx: CliContext, lazy: LazyGroups = {}, only?: string): Command {
  if (only !== undefined && Object.hasOwn(SOLO, only)) return SOLO[only](ctx);
  const program = globalProgram(ctx);
  allCommands(program, ctx, lazy);
  configureErrors(program);
  return program;
}

function allCommands(program: Command, ctx: CliContext, lazy: LazyGroups): void {
  systemCommands(program, ctx);
  imageCommands(program, ctx);
  registryCommands(program, ctx);
  buildCommands(program, ctx);
  containerCommands(program, ctx);
  cpCommand(program, ctx);
  networkCommands(program, ctx);
  volumeCommands(program, ctx);
  daemonCommands(program);
  if (lazy.hub) lazy.hub.hubCommands(program, ctx);
  else
    placeholder(program, 'hub', 'Run and manage Berth Hub, a registry with accounts, search and web pages');
  searchCommand(program, ctx);
  if (lazy.compose) lazy.compose.composeCommand(program, ctx);
  else placeholder(program, 'compose', 'Define and run multi-container applications');
  program
    .command('inspect')
    .description('Return low-level information on Berth objects')
    .argument('<name...>')
    .option('-f, --format <format>', 'format output using a Go template')
    .option('--type <type>', 'only inspect objects of the given type (container, image)')
    .action(async (names: string[], o: { format?: string; type?: string }) => {
      const client = await connect(ctx);
      const found: unknown[] = [];
      let failed = false;
      for (const n of names) {
        const byContainer = (x: string): Promise<unknown> => client.inspectContainer(x);
        const byImage = (x: string): Promise<unknown> => client.inspectImage(x);
        const byVolume = (x: string): Promise<unknown> => inspectVolume(client, x);
        const tries =
          o.type === 'image'
            ? [byImage]
            : o.type === 'container'
              ? [byContainer]
              : o.type === 'volume'
                ? [byVolume]
                : [byContainer, byImage, byVolume];
        let obj: unknown;
        for (const get of tries) {
          try {
            obj = await get(n);
            break;
          } catch (err) {
            if (!(err instanceof ApiError) || err.status !== 404) throw err;
          }
        }
        if (obj) found.push(obj);
        else {
          failed = true;
          process.stderr.write(`Error: No such object: ${n}\n`);
        }
      }
      printInspect(found, o.format);
      if (failed) throw new ExitError(1);
    });
}

export async function runCliArgs(argv: string[]): Promise<number> {
  const ctx: CliContext = {};
  return runProgram(buildProgram(ctx, await loadLazyGroups(argv), requestedCommand(argv)), argv);
}

export function runCli(): void {
  startCli(runCliArgs);
}

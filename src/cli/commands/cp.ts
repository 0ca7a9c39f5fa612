import type { Command } from 'commander';
import { type CliContext, connect } from '../context.js';
import { ExitError } from '../errors.js';

function splitSpec(s: string): { container?: string; path: string } {
  const m = /^([a-zA-Z0-9][a-zA-Z0-9_.-]*):(.*)$/.exec(s);
  return m && !s.startsWith('/') && !s.startsWith('.') ? { container: m[1], path: m[2] || '/' } : { path: s };
}

export function cpCommand(program: Command, ctx: CliContext): void {
  for (const parent of [program, program.commands.find((c) => c.name() === 'container')!]) {
    parent
      .command('cp')
      .description('Copy files/folders between a container and the local filesystem (- for a tar stream)')
      .argument('<src>')
      .argument('<dest>')
      .action(async (srcSpec: string, destSpec: string) => {
        const src = splitSpec(srcSpec);
        const dest = splitSpec(destSpec);
        if (!!src.container === !!dest.container)
          throw new ExitError(1, 'copying between containers is not supported; one side must be local');
        const client = await connect(ctx);
        const { copy } = await import('../copy.js');
        await copy(client, src, dest);
      });
  }
}

/**
 * `berth volume create|ls|inspect|rm|prune`, with Docker's flags and output.
 */
import type { Command } from 'commander';
import type { Client } from '../../client/client.js';
import { type CliContext, connect } from '../context.js';
import { describeError, ExitError } from '../errors.js';
import { printInspect, printRows } from '../output.js';
import { humanSize } from '../table.js';
import { parseFilterFlags } from './images.js';

interface Volume {
  CreatedAt: string;
  Driver: string;
  Labels: Record<string, string> | null;
  Mountpoint: string;
  Name: string;
  Options: Record<string, string> | null;
  Scope: string;
}

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

function keyValues(list: string[], flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of list) {
    const eq = l.indexOf('=');
    if (flag === '--opt' && eq <= 0)
      throw new ExitError(
        125,
        `invalid argument "${l}" for "-o, --opt" flag: invalid key value pair format in driver options`,
      );
    out[eq < 0 ? l : l.slice(0, eq)] = eq < 0 ? '' : l.slice(eq + 1);
  }
  return out;
}

export function filtersQuery(f: Record<string, string[]>): string | undefined {
  if (!Object.keys(f).length) return undefined;
  return JSON.stringify(
    Object.fromEntries(Object.entries(f).map(([k, vs]) => [k, Object.fromEntries(vs.map((v) => [v, true]))])),
  );
}

export function inspectVolume(client: Client, name: string): Promise<Volume> {
  return client.json<Volume>({ method: 'GET', path: `/volumes/${encodeURIComponent(name)}` });
}

async function confirm(question: string): Promise<boolean> {
  process.stdout.write(question);
  const { createInterface } = await import('node:readline');
  const rl = createInterface({ input: process.stdin });
  const line = await new Promise<string>((resolve) => {
    rl.once('line', resolve);
    rl.once('close', () => resolve(''));
  });
  rl.close();
  return /^y(es)?$/i.test(line.trim());
}

function labelsText(l: Record<string, string> | null): string {
  return Object.entries(l ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

export function volumeCommands(program: Command, ctx: CliContext): void {
  const volume = program.command('volume').description('Manage volumes');

  volume
    .command('create')
    .description('Create a volume')
    .argument('[name]')
    .option('-d, --driver <driver>', 'specify volume driver name', 'local')
    .option('--label <label>', 'set metadata for a volume', collect, [])
    .option('-o, --opt <opt>', 'set driver specific options', collect, [])
    .option('--name <name>', 'specify volume name')
    .action(
      async (
        name: string | undefined,
        o: { driver: string; label: string[]; opt: string[]; name?: string },
      ) => {
        if (name && o.name && name !== o.name)
          throw new ExitError(
            125,
            `conflicting options: cannot specify a volume-name through both --name and as a positional arg`,
          );
        const client = await connect(ctx);
        const v = await client.json<Volume>({
          method: 'POST',
          path: '/volumes/create',
          body: {
            Name: name ?? o.name ?? '',
            Driver: o.driver,
            DriverOpts: keyValues(o.opt, '--opt'),
            Labels: keyValues(o.label, '--label'),
          },
        });
        process.stdout.write(v.Name + '\n');
      },
    );

  volume
    .command('ls')
    .alias('list')
    .description('List volumes')
    .option('-f, --filter <filter>', 'provide filter values (e.g. "dangling=true")', collect, [])
    .option('--format <format>', 'format output using a custom template')
    .option('-q, --quiet', 'only display volume names')
    .action(async (o: { filter: string[]; format?: string; quiet?: boolean }) => {
      const client = await connect(ctx);
      const r = await client.json<{ Volumes: Volume[] | null }>({
        method: 'GET',
        path: '/volumes',
        query: { filters: filtersQuery(parseFilterFlags(o.filter)) },
      });
      const list = (r.Volumes ?? []).sort((a, b) => a.Name.localeCompare(b.Name));
      if (o.quiet) {
        for (const v of list) process.stdout.write(v.Name + '\n');
        return;
      }
      printRows(
        list,
        [
          { header: 'DRIVER', field: 'Driver', value: (v) => v.Driver },
          { header: 'VOLUME NAME', field: 'Name', value: (v) => v.Name },
        ],
        o.format,
        (v) => ({
          Availability: 'N/A',
          Driver: v.Driver,
          Group: 'N/A',
          Labels: labelsText(v.Labels),
          Links: 'N/A',
          Mountpoint: v.Mountpoint,
          Name: v.Name,
          Scope: v.Scope,
          Size: 'N/A',
          Status: 'N/A',
        }),
      );
    });

  volume
    .command('inspect')
    .description('Display detailed information on one or more volumes')
    .argument('<volume...>')
    .option('-f, --format <format>', 'format output using a Go template')
    .action(async (names: string[], o: { format?: string }) => {
      const client = await connect(ctx);
      const found: unknown[] = [];
      let failed = false;
      for (const n of names) {
        try {
          found.push(await inspectVolume(client, n));
        } catch (err) {
          failed = true;
          process.stderr.write(describeError(err) + '\n');
        }
      }
      printInspect(found, o.format);
      if (failed) throw new ExitError(1);
    });

  volume
    .command('rm')
    .alias('remove')
    .description('Remove one or more volumes')
    .argument('<volume...>')
    .option('-f, --force', 'force the removal of one or more volumes')
    .action(async (names: string[], o: { force?: boolean }) => {
      const client = await connect(ctx);
      let failed = false;
      for (const n of names) {
        try {
          await client.json({
            method: 'DELETE',
            path: `/volumes/${encodeURIComponent(n)}`,
            query: { force: o.force ? 1 : undefined },
          });
          process.stdout.write(n + '\n');
        } catch (err) {
          failed = true;
          process.stderr.write(describeError(err) + '\n');
        }
      }
      if (failed) throw new ExitError(1);
    });

  volume
    .command('prune')
    .description('Remove unused local volumes')
    .option('-f, --force', 'do not prompt for confirmation')
    .option('--filter <filter>', 'provide filter values (e.g. "label=<label>")', collect, [])
    .action(async (o: { force?: boolean; filter: string[] }) => {
      const client = await connect(ctx);
      if (
        !o.force &&
        !(await confirm(
          'WARNING! This will remove all local volumes not used by at least one container.\nAre you sure you want to continue? [y/N] ',
        ))
      )
        return;
      const r = await client.json<{ VolumesDeleted: string[] | null; SpaceReclaimed: number }>({
        method: 'POST',
        path: '/volumes/prune',
        query: { filters: filtersQuery(parseFilterFlags(o.filter)) },
      });
      if (r.VolumesDeleted?.length)
        process.stdout.write(`Deleted Volumes:\n${r.VolumesDeleted.join('\n')}\n\n`);
      process.stdout.write(`Total reclaimed space: ${humanSize(r.SpaceReclaimed)}\n`);
    });
}

/** `berth search TERM`: Docker Hub-style search through the daemon (`GET /images/search`). */
import type { Command } from 'commander';
import { type CliContext, connect } from '../context.js';
import { ExitError } from '../errors.js';
import { printRows } from '../output.js';
import { parseFilterFlags } from './images.js';
import { filtersQuery } from './volumes.js';

interface Result {
  name: string;
  description: string;
  star_count: number;
  is_official: boolean;
  is_automated: boolean;
}

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

export function searchCommand(program: Command, ctx: CliContext): void {
  program
    .command('search <term>')
    .description('Search the registry for images')
    .option(
      '-f, --filter <filter>',
      'filter output (is-official=true, is-automated=true, stars=N)',
      collect,
      [],
    )
    .option('--limit <n>', 'max number of search results', '25')
    .option('--no-trunc', "don't truncate output")
    .option('--format <format>', 'pretty-print search using a Go template')
    .action(async (term: string, o: { filter: string[]; limit: string; trunc: boolean; format?: string }) => {
      const limit = Number(o.limit);
      if (!Number.isInteger(limit))
        throw new ExitError(125, `invalid argument "${o.limit}" for "--limit" flag`);
      const client = await connect(ctx);
      const results = await client.json<Result[]>({
        method: 'GET',
        path: '/images/search',
        query: { term, limit: String(limit), filters: filtersQuery(parseFilterFlags(o.filter)) },
      });
      const desc = (r: Result) => {
        const d = r.description.replace(/\n/g, ' ');
        return o.trunc && d.length > 45 ? `${d.slice(0, 44)}…` : d;
      };
      printRows(
        results,
        [
          { header: 'NAME', field: 'Name', value: (r) => r.name },
          { header: 'DESCRIPTION', field: 'Description', value: desc },
          { header: 'STARS', field: 'StarCount', value: (r) => String(r.star_count) },
          { header: 'OFFICIAL', field: 'IsOfficial', value: (r) => (r.is_official ? '[OK]' : '') },
          { header: 'AUTOMATED', field: 'IsAutomated', value: (r) => (r.is_automated ? '[OK]' : '') },
        ],
        o.format,
        (r) => ({
          Name: r.name,
          Description: desc(r),
          StarCount: String(r.star_count),
          IsOfficial: r.is_official ? '[OK]' : '',
          IsAutomated: r.is_automated ? '[OK]' : '',
        }),
      );
    });
}

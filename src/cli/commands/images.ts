import type { Command } from 'commander';
import { createReadStream, createWriteStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Client, JsonMessage } from '../../client/client.js';
import type { ImageSummary } from '../../client/types.js';
import { type CliContext, connect } from '../context.js';
import { describeError, ExitError } from '../errors.js';
import { type Column, printInspect, printRows } from '../output.js';
import { ProgressPrinter } from '../progress.js';
import { registryAuthFor } from './registry.js';
import { humanDuration, humanSize, truncateId } from '../table.js';

interface ImageRow {
  id: string;
  repository: string;
  tag: string;
  digest: string;
  created: number;
  size: number;
  containers: number;
}

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

/** `key=value` filter flags into the API's filters map. */
export function parseFilterFlags(flags: string[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const f of flags) {
    const eq = f.indexOf('=');
    if (eq <= 0)
      throw new ExitError(
        125,
        `invalid argument "${f}" for "-f, --filter" flag: bad format of filter (expected name=value)`,
      );
    (out[f.slice(0, eq)] ??= []).push(f.slice(eq + 1));
  }
  return out;
}

function rowsOf(images: ImageSummary[], withDigests: boolean): ImageRow[] {
  const rows: ImageRow[] = [];
  for (const img of images) {
    const base = { id: img.Id, created: img.Created, size: img.Size, containers: img.Containers };
    const tags = (img.RepoTags ?? []).filter((t) => t !== '<none>:<none>');
    const digests = (img.RepoDigests ?? []).filter((d) => d !== '<none>@<none>');
    const digestOf = (repo: string) =>
      digests.find((d) => d.startsWith(`${repo}@`))?.split('@')[1] ?? '<none>';
    if (tags.length === 0) {
      if (withDigests && digests.length)
        for (const d of digests) {
          const [repo, digest] = d.split('@');
          rows.push({ ...base, repository: repo, tag: '<none>', digest });
        }
      else
        rows.push({
          ...base,
          repository: '<none>',
          tag: '<none>',
          digest: digests[0]?.split('@')[1] ?? '<none>',
        });
      continue;
    }
    for (const t of tags) {
      const i = t.lastIndexOf(':');
      const repo = t.slice(0, i);
      rows.push({ ...base, repository: repo, tag: t.slice(i + 1), digest: digestOf(repo) });
    }
  }
  return rows;
}

/** Go's time.Time String(): `2024-09-26 21:31:42 +0000 UTC`. */
export function goTime(seconds: number): string {
  const d = new Date(seconds * 1000);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +0000 UTC`;
}

export function since(seconds: number): string {
  if (!seconds) return 'N/A';
  return `${humanDuration(Date.now() - seconds * 1000)} ago`;
}

async function listImages(ctx: CliContext, repo: string | undefined, o: ListOpts): Promise<void> {
  const client = await connect(ctx);
  const filters = parseFilterFlags(o.filter);
  if (repo) (filters.reference ??= []).push(repo);
  const images = await client.listImages({ all: o.all, digests: o.digests, filters });
  const rows = rowsOf(images, !!o.digests);
  if (o.quiet) {
    const seen = new Set<string>();
    for (const r of rows) {
      const id = o.trunc ? truncateId(r.id) : r.id;
      if (!seen.has(id)) process.stdout.write(id + '\n');
      seen.add(id);
    }
    return;
  }
  const idOf = (r: ImageRow) => (o.trunc ? truncateId(r.id) : r.id);
  const columns: Column<ImageRow>[] = [
    { header: 'REPOSITORY', field: 'Repository', value: (r) => r.repository },
    { header: 'TAG', field: 'Tag', value: (r) => r.tag },
    ...(o.digests ? [{ header: 'DIGEST', field: 'Digest', value: (r: ImageRow) => r.digest }] : []),
    { header: 'IMAGE ID', field: 'ID', value: idOf },
    { header: 'CREATED', field: 'CreatedSince', value: (r) => since(r.created) },
    { header: 'SIZE', field: 'Size', value: (r) => humanSize(r.size) },
  ];
  printRows(rows, columns, o.format, (r) => ({
    Containers: r.containers < 0 ? 'N/A' : String(r.containers),
    CreatedAt: goTime(r.created),
    CreatedSince: since(r.created),
    Digest: r.digest,
    ID: idOf(r),
    Repository: r.repository,
    SharedSize: 'N/A',
    Size: humanSize(r.size),
    Tag: r.tag,
    UniqueSize: 'N/A',
    VirtualSize: humanSize(r.size),
  }));
}

interface ListOpts {
  all?: boolean;
  digests?: boolean;
  filter: string[];
  format?: string;
  /** commander turns --no-trunc into trunc=false */
  trunc: boolean;
  quiet?: boolean;
}

function addListOptions(cmd: Command): Command {
  return cmd
    .option('-a, --all', 'show all images (default hides intermediate images)')
    .option('--digests', 'show digests')
    .option('-f, --filter <filter>', 'filter output based on conditions provided', collect, [])
    .option(
      '--format <format>',
      "format output using a custom template: 'table', 'table TEMPLATE', 'json', or a Go template",
    )
    .option('--no-trunc', "don't truncate output")
    .option('-q, --quiet', 'only show image IDs');
}

/** Runs `fn` for each argument, printing errors like Docker and failing at the end if any failed. */
async function eachArg(args: string[], fn: (a: string) => Promise<void>): Promise<void> {
  let failed = false;
  for (const a of args) {
    try {
      await fn(a);
    } catch (err) {
      failed = true;
      process.stderr.write(describeError(err) + '\n');
    }
  }
  if (failed) throw new ExitError(1);
}

function printProgress(m: JsonMessage): void {
  if (typeof m.error === 'string') throw new Error(m.error);
  if (typeof m.stream === 'string') process.stdout.write(m.stream);
  else if (typeof m.status === 'string')
    process.stdout.write((m.id ? `${String(m.id)}: ` : '') + m.status + '\n');
}

export function imageCommands(program: Command, ctx: CliContext): void {
  const image = program.command('image').description('Manage images');

  for (const [parent, name, aliases] of [
    [program, 'images', []],
    [image, 'ls', ['list']],
  ] as const) {
    addListOptions(
      parent
        .command(name)
        .aliases([...aliases])
        .description('List images')
        .argument('[repository]'),
    ).action((repo: string | undefined, o: ListOpts) => listImages(ctx, repo, o));
  }

  image
    .command('inspect')
    .description('Display detailed information on one or more images')
    .argument('<image...>')
    .option('-f, --format <format>', 'format output using a Go template')
    .action(async (names: string[], o: { format?: string }) => {
      const client = await connect(ctx);
      const found: unknown[] = [];
      let failed = false;
      for (const n of names) {
        try {
          found.push(await client.inspectImage(n));
        } catch (err) {
          failed = true;
          process.stderr.write(`Error: No such image: ${n}\n`);
          void err;
        }
      }
      printInspect(found, o.format);
      if (failed) throw new ExitError(1);
    });

  for (const [parent, name] of [
    [program, 'rmi'],
    [image, 'rm'],
  ] as const) {
    parent
      .command(name)
      .description('Remove one or more images')
      .argument('<image...>')
      .option('-f, --force', 'force removal of the image')
      .option('--no-prune', 'do not delete untagged parents')
      .action(async (names: string[], o: { force?: boolean; prune: boolean }) => {
        const client = await connect(ctx);
        await eachArg(names, async (n) => {
          for (const r of await client.removeImage(n, { force: o.force, noPrune: !o.prune })) {
            if (r.Untagged) process.stdout.write(`Untagged: ${r.Untagged}\n`);
            if (r.Deleted) process.stdout.write(`Deleted: ${r.Deleted}\n`);
          }
        });
      });
  }

  for (const parent of [program, image]) {
    parent
      .command('tag')
      .description('Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE')
      .argument('<source>')
      .argument('<target>')
      .action(async (source: string, target: string) => {
        const client = await connect(ctx);
        const { repo, tag } = splitRepoTag(target);
        await client.tagImage(source, repo, tag);
      });

    parent
      .command('history')
      .description('Show the history of an image')
      .argument('<image>')
      .option('-H, --human', 'print sizes and dates in human readable format', true)
      .option('--no-human', 'print sizes and dates as raw numbers')
      .option('--format <format>', 'format output using a custom template')
      .option('--no-trunc', "don't truncate output")
      .option('-q, --quiet', 'only show image IDs')
      .action(
        async (name: string, o: { human: boolean; format?: string; trunc: boolean; quiet?: boolean }) => {
          await showHistory(await connect(ctx), name, o);
        },
      );

    parent
      .command('load')
      .description('Load an image from a tar archive or STDIN')
      .option('-i, --input <file>', 'read from tar archive file, instead of STDIN')
      .option('-q, --quiet', 'suppress the load output')
      .action(async (o: { input?: string; quiet?: boolean }) => {
        const client = await connect(ctx);
        if (!o.input && process.stdin.isTTY)
          throw new ExitError(1, 'requested load from stdin, but stdin is empty');
        const input: Readable = o.input ? createReadStream(o.input) : process.stdin;
        await client.loadImages(input, !!o.quiet, printProgress);
      });

    parent
      .command('save')
      .description('Save one or more images to a tar archive (streamed to STDOUT by default)')
      .argument('<image...>')
      .option('-o, --output <file>', 'write to a file, instead of STDOUT')
      .action(async (names: string[], o: { output?: string }) => {
        if (!o.output && process.stdout.isTTY)
          throw new ExitError(1, 'cowardly refusing to save to a terminal. Use the -o flag or redirect');
        const client = await connect(ctx);
        const tar = await client.saveImages(names);
        await pipeline(tar, o.output ? createWriteStream(o.output) : process.stdout);
      });

    parent
      .command('import')
      .description('Import the contents from a tarball to create a filesystem image')
      .argument('<file>', 'a file path or - for STDIN')
      .argument('[repository]')
      .option('-c, --change <instruction>', 'apply Dockerfile instruction to the created image', collect, [])
      .option('-m, --message <message>', 'set commit message for imported image')
      .option('--platform <platform>', 'set platform if server is multi-platform capable')
      .action(
        async (
          file: string,
          repository: string | undefined,
          o: { change: string[]; message?: string; platform?: string },
        ) => {
          const client = await connect(ctx);
          const input: Readable = file === '-' ? process.stdin : createReadStream(file);
          const { repo, tag } = repository ? splitRepoTag(repository) : { repo: undefined, tag: undefined };
          await client.importImage(
            input,
            { repo, tag, message: o.message, changes: o.change, platform: o.platform },
            (m) => {
              if (typeof m.error === 'string') throw new Error(m.error);
              if (typeof m.status === 'string') process.stdout.write(m.status + '\n');
            },
          );
        },
      );
  }

  for (const parent of [program, image]) {
    parent
      .command('pull')
      .description('Download an image from a registry')
      .argument('<name>')
      .option('-a, --all-tags', 'download all tagged images in the repository')
      .option('-q, --quiet', 'suppress verbose output')
      .option('--platform <platform>', 'set platform if server is multi-platform capable')
      .action(async (name: string, o: { quiet?: boolean; platform?: string; allTags?: boolean }) => {
        const client = await connect(ctx);
        if (!o.quiet && !o.allTags && !name.includes('@') && !splitRepoTag(name).tag)
          process.stdout.write('Using default tag: latest\n');
        await pullWithProgress(client, name, { quiet: !!o.quiet, platform: o.platform, all: !!o.allTags });
      });
  }

  image
    .command('prune')
    .description('Remove unused images')
    .option('-a, --all', 'remove all unused images, not just dangling ones')
    .option('--filter <filter>', 'provide filter values (e.g. "until=<timestamp>")', collect, [])
    .option('-f, --force', 'do not prompt for confirmation')
    .action(async (o: { all?: boolean; filter: string[]; force?: boolean }) => {
      const client = await connect(ctx);
      const filters = parseFilterFlags(o.filter);
      if (o.all) filters.dangling = ['false'];
      const report = await client.pruneImages(filters);
      if (report.ImagesDeleted?.length) {
        process.stdout.write('Deleted Images:\n');
        for (const r of report.ImagesDeleted) {
          if (r.Untagged) process.stdout.write(`untagged: ${r.Untagged}\n`);
          if (r.Deleted) process.stdout.write(`deleted: ${r.Deleted}\n`);
        }
        process.stdout.write('\n');
      }
      process.stdout.write(`Total reclaimed space: ${humanSize(report.SpaceReclaimed)}\n`);
    });
}

/** Pulls, printing Docker's progress; the last line is the reference, like the docker CLI. */
export async function pullWithProgress(
  client: Client,
  name: string,
  opts: { quiet?: boolean; platform?: string; all?: boolean; out?: NodeJS.WritableStream },
): Promise<void> {
  const out = opts.out ?? process.stdout;
  const { repo, tag } = splitRepoTag(name);
  const at = name.indexOf('@');
  const fromImage = at >= 0 ? name.slice(0, at) : repo;
  if (opts.all && (tag || at >= 0)) throw new ExitError(1, "tag can't be used with --all-tags/-a");
  let t = at >= 0 ? name.slice(at + 1) : tag;
  // Without -a a bare name means :latest; with -a the daemon pulls every tag.
  if (!t && !opts.all) t = 'latest';
  const printer = new ProgressPrinter(out);
  const registryAuth = await registryAuthFor(fromImage);
  await client.pullImage(fromImage, { tag: t, platform: opts.platform, registryAuth }, (m) => {
    if (typeof m.error === 'string') throw new Error(m.error);
    if (!opts.quiet) printer.handle(m);
  });
  out.write(`${at >= 0 ? name : t ? `${fromImage}:${t}` : fromImage}\n`);
}

/** `repo[:tag]` where the tag is after the last ':' that follows the last '/'. */
export function splitRepoTag(s: string): { repo: string; tag?: string } {
  const at = s.indexOf('@');
  if (at >= 0) return { repo: s };
  const slash = s.lastIndexOf('/');
  const colon = s.lastIndexOf(':');
  if (colon > slash) return { repo: s.slice(0, colon), tag: s.slice(colon + 1) };
  return { repo: s };
}

async function showHistory(
  client: Client,
  name: string,
  o: { human: boolean; format?: string; trunc: boolean; quiet?: boolean },
): Promise<void> {
  const items = await client.imageHistory(name);
  const idOf = (id: string) => (id === '<missing>' || !o.trunc ? id : truncateId(id));
  if (o.quiet) {
    for (const h of items) process.stdout.write(idOf(h.Id) + '\n');
    return;
  }
  const createdBy = (s: string) => {
    const flat = s.replace(/\s+/g, ' ');
    return o.trunc && flat.length > 45 ? flat.slice(0, 44) + '…' : flat;
  };
  const created = (t: number) =>
    o.human ? since(t) : new Date(t * 1000).toISOString().replace('.000Z', 'Z');
  const size = (n: number) => (o.human ? humanSize(n) : String(n));
  printRows(
    items,
    [
      { header: 'IMAGE', field: 'ID', value: (h) => idOf(h.Id) },
      { header: 'CREATED', field: 'CreatedSince', value: (h) => created(h.Created) },
      { header: 'CREATED BY', field: 'CreatedBy', value: (h) => createdBy(h.CreatedBy) },
      { header: 'SIZE', field: 'Size', value: (h) => size(h.Size) },
      { header: 'COMMENT', field: 'Comment', value: (h) => h.Comment },
    ],
    o.format,
    (h) => ({
      ID: idOf(h.Id),
      CreatedSince: created(h.Created),
      CreatedAt: new Date(h.Created * 1000).toISOString(),
      CreatedBy: createdBy(h.CreatedBy),
      Size: size(h.Size),
      Comment: h.Comment,
    }),
  );
}

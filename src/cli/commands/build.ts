/**
 * berth build (the classic builder's request, like `DOCKER_BUILDKIT=0 docker build`) and
 * berth builder prune.
 */
import type { Command } from 'commander';
import { promises as fsp, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import type { JsonMessage } from '../../client/client.js';
import { type CliContext, connect } from '../context.js';
import { ExitError } from '../errors.js';
import { humanSize } from '../table.js';

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

interface BuildFlags {
  tag: string[];
  file?: string;
  buildArg: string[];
  target?: string;
  cache: boolean;
  pull?: boolean;
  label: string[];
  quiet?: boolean;
  iidfile?: string;
  network?: string;
  platform?: string;
  progress: string;
  rm: boolean;
  forceRm?: boolean;
}

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** `--build-arg K=V` sets K; `--build-arg K` takes K from the environment (unset: skipped), like Docker. */
function buildArgs(list: string[]): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  for (const a of list) {
    const eq = a.indexOf('=');
    if (eq === 0) throw new ExitError(125, `invalid argument "${a}" for "--build-arg" flag: invalid key`);
    if (eq > 0) out[a.slice(0, eq)] = a.slice(eq + 1);
    else if (process.env[a] !== undefined) out[a] = process.env[a]!;
  }
  return out;
}

function labels(list: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of list) {
    const eq = l.indexOf('=');
    if (eq < 0) out[l] = '';
    else out[l.slice(0, eq)] = l.slice(eq + 1);
  }
  return out;
}

/** The request body and the Dockerfile name the daemon should read. */
async function prepareContext(
  contextArg: string,
  file: string | undefined,
): Promise<{ body: Readable; dockerfile?: string; description: string }> {
  if (contextArg === '-') {
    if (file === '-')
      throw new ExitError(125, "invalid argument: can't use stdin for both build context and dockerfile");
    // A tar (plain or compressed) or a bare Dockerfile: the daemon tells them apart.
    return { body: Readable.from(await readStdin()), dockerfile: file, description: 'stdin' };
  }
  let dir: string;
  try {
    dir = path.resolve(contextArg);
    if (!statSync(dir).isDirectory()) throw new Error('not a directory');
  } catch {
    throw new ExitError(1, `unable to prepare context: path "${contextArg}" not found`);
  }
  // tar-stream and .dockerignore matching: loaded by `build` only, not on every CLI start
  const { contextTar, randomDockerfileName, readDockerignore } = await import('../buildcontext.js');
  const excludes = readDockerignore(dir);
  const extra: { name: string; data: Buffer }[] = [];
  let dockerfile: string | undefined;
  if (file === '-') {
    dockerfile = randomDockerfileName();
    extra.push({ name: dockerfile, data: await readStdin() });
  } else {
    const abs = file ? path.resolve(file) : path.join(dir, 'Dockerfile');
    try {
      await fsp.access(abs);
    } catch {
      throw new ExitError(
        1,
        `unable to prepare context: unable to evaluate symlinks in Dockerfile path: lstat ${abs}: no such file or directory`,
      );
    }
    const rel = path.relative(dir, abs);
    if (rel.startsWith('..') || path.isAbsolute(rel)) {
      dockerfile = randomDockerfileName();
      extra.push({ name: dockerfile, data: await fsp.readFile(abs) });
    } else dockerfile = rel.split(path.sep).join('/');
  }
  const keep = ['.dockerignore', ...(dockerfile ? [dockerfile] : [])];
  return { body: contextTar(dir, { excludes, keep, extra }), dockerfile, description: dir };
}

export function buildCommands(program: Command, ctx: CliContext): void {
  const build = (parent: Command, name: string): void => {
    parent
      .command(name)
      .description('Build an image from a Dockerfile')
      .argument('<context>', 'context directory, or - for a tar or a Dockerfile on stdin')
      .option('-t, --tag <name>', 'name and optionally a tag in the name:tag format', collect, [])
      .option('-f, --file <file>', "name of the Dockerfile (default: 'PATH/Dockerfile'; - for stdin)")
      .option('--build-arg <arg>', 'set build-time variables', collect, [])
      .option('--target <stage>', 'set the target build stage to build')
      .option('--no-cache', 'do not use cache when building the image')
      .option('--pull', 'always attempt to pull a newer version of the image')
      .option('--label <label>', 'set metadata for an image', collect, [])
      .option('-q, --quiet', 'suppress the build output and print image ID on success')
      .option('--iidfile <file>', 'write the image ID to the file')
      .option('--network <mode>', 'set the networking mode for the RUN instructions during build', 'default')
      .option('--platform <platform>', 'set platform if server is multi-platform capable')
      .option('--progress <type>', 'set type of progress output (auto, plain, tty)', 'auto')
      .option('--rm', 'remove intermediate containers after a successful build', true)
      .option('--no-rm', 'keep intermediate containers')
      .option('--force-rm', 'always remove intermediate containers')
      .action(async (contextArg: string, o: BuildFlags) => {
        if (!['auto', 'plain', 'tty', 'quiet'].includes(o.progress))
          throw new ExitError(
            125,
            `invalid argument "${o.progress}" for "--progress" flag: must be auto, plain, tty or quiet`,
          );
        const quiet = o.quiet || o.progress === 'quiet';
        const client = await connect(ctx);
        const { body, dockerfile } = await prepareContext(contextArg, o.file);
        if (o.iidfile) await fsp.rm(o.iidfile, { force: true });
        let id: string | undefined;
        let failure: { message: string; code?: number } | undefined;
        await client.build(
          body,
          {
            t: o.tag,
            dockerfile,
            buildargs: JSON.stringify(buildArgs(o.buildArg)),
            labels: JSON.stringify(labels(o.label)),
            target: o.target,
            nocache: o.cache ? undefined : 1,
            pull: o.pull ? 1 : undefined,
            q: quiet ? 1 : undefined,
            networkmode: o.network,
            platform: o.platform,
            rm: o.rm ? 1 : 0,
            forcerm: o.forceRm ? 1 : undefined,
            version: 1,
          },
          (m: JsonMessage) => {
            const detail = m.errorDetail as { message?: string; code?: number } | undefined;
            if (typeof m.error === 'string') {
              failure = { message: m.error, code: detail?.code };
              return;
            }
            const aux = m.aux as { ID?: string } | undefined;
            if (aux?.ID) id = aux.ID;
            if (typeof m.stream === 'string') {
              if (quiet) {
                const s = m.stream.trim();
                if (/^sha256:[0-9a-f]{64}$/.test(s)) id = s;
                return;
              }
              process.stdout.write(m.stream);
            } else if (typeof m.status === 'string' && !quiet) {
              if (['Downloading', 'Extracting', 'Waiting'].includes(m.status)) return;
              process.stdout.write((m.id ? `${String(m.id)}: ` : '') + m.status + '\n');
            }
          },
        );
        if (failure) {
          process.stderr.write(`${failure.message}\n`);
          throw new ExitError(failure.code && failure.code > 0 ? failure.code : 1);
        }
        if (quiet && id) process.stdout.write(`${id}\n`);
        if (o.iidfile && id) writeFileSync(o.iidfile, id);
      });
  };
  build(program, 'build');
  const image = program.commands.find((c) => c.name() === 'image');
  if (image) build(image, 'build');

  const builder = program.command('builder').description('Manage builds');
  build(builder, 'build');
  builder
    .command('prune')
    .description('Remove build cache')
    .option('-a, --all', 'remove all unused build cache, not just dangling ones')
    .option('-f, --force', 'do not prompt for confirmation')
    .action(async (o: { all?: boolean }) => {
      const client = await connect(ctx);
      const report = await client.pruneBuildCache({ all: o.all });
      const deleted = report.CachesDeleted ?? [];
      if (deleted.length) {
        process.stdout.write('Deleted build cache objects:\n');
        for (const id of deleted) process.stdout.write(`${id}\n`);
      }
      process.stdout.write(`Total reclaimed space: ${humanSize(report.SpaceReclaimed)}\n`);
    });
}

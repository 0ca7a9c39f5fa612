import type { Command } from 'commander';
import { createReadStream, mkdtempSync, promises as fsp, statSync } from 'node:fs';
import * as path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { extractLayer } from '../../common/safetar.js';
import { type CliContext, connect } from '../context.js';
import { ExitError } from '../errors.js';

const DIR_BIT = 2 ** 31;

function splitSpec(s: string): { container?: string; path: string } {
  const m = /^([a-zA-Z0-9][a-zA-Z0-9_.-]*):(.*)$/.exec(s);
  return m && !s.startsWith('/') && !s.startsWith('.') ? { container: m[1], path: m[2] || '/' } : { path: s };
}

/** A tar of a host file or directory, named by `name`. */
function packHost(src: string, name: string): Readable {
  const pack = tar.pack();
  const walk = async (p: string, n: string): Promise<void> => {
    const st = await fsp.lstat(p);
    const h = { name: n, mode: st.mode & 0o7777, mtime: st.mtime, uid: st.uid, gid: st.gid };
    if (st.isDirectory()) {
      await new Promise<void>((res, rej) =>
        pack.entry({ ...h, name: `${n}/`, type: 'directory' }, (e) => (e ? rej(e) : res())),
      );
      for (const c of (await fsp.readdir(p)).sort()) await walk(path.join(p, c), `${n}/${c}`);
    } else if (st.isSymbolicLink()) {
      const linkname = await fsp.readlink(p);
      await new Promise<void>((res, rej) =>
        pack.entry({ ...h, type: 'symlink', linkname }, (e) => (e ? rej(e) : res())),
      );
    } else if (st.isFile()) {
      await new Promise<void>((res, rej) => {
        const sink = pack.entry({ ...h, type: 'file', size: st.size }, (e) => (e ? rej(e) : res()));
        const file = createReadStream(p);
        file.on('error', rej);
        file.pipe(sink as unknown as NodeJS.WritableStream);
      });
    }
  };
  void walk(src, name).then(
    () => pack.finalize(),
    (e: unknown) => pack.destroy(e as Error),
  );
  return pack as unknown as Readable;
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
        if (src.container) {
          const archive = await client.getArchive(src.container, src.path);
          if (dest.path === '-') return pipeline(archive, process.stdout);
          let destIsDir = false;
          try {
            destIsDir = statSync(dest.path).isDirectory();
          } catch {
            destIsDir = false;
          }
          if (destIsDir) return void (await extractLayer(archive, dest.path));
          // A new name: unpack beside it, then rename the one top entry.
          const parentDir = path.dirname(path.resolve(dest.path));
          const tmp = mkdtempSync(path.join(parentDir, '.berth-cp-'));
          try {
            await extractLayer(archive, tmp);
            const [entry] = await fsp.readdir(tmp);
            await fsp.rename(path.join(tmp, entry), dest.path);
          } finally {
            await fsp.rm(tmp, { recursive: true, force: true });
          }
          return;
        }
        const target = dest.path;
        const stat = await client.statPath(dest.container!, target);
        const body = src.path === '-' ? process.stdin.pipe(new PassThrough()) : undefined;
        if (stat && stat.mode >= DIR_BIT) {
          await client.putArchive(
            dest.container!,
            target,
            body ?? packHost(src.path, path.basename(path.resolve(src.path))),
          );
          return;
        }
        if (body) throw new ExitError(1, `destination "${target}" must be a directory`);
        await client.putArchive(
          dest.container!,
          path.posix.dirname(target) || '/',
          packHost(src.path, path.posix.basename(target)),
        );
      });
  }
}

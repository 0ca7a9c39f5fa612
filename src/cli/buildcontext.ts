/**
 * The build context as the docker CLI sends it: a tar of the context directory, `.dockerignore`
 * applied on this side (Docker's pattern semantics, `!` exceptions, `**`), entries in walk order,
 * owner 0:0 with empty names, permission bits only, times kept. Files stream from disk.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, promises as fsp, readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { createRequire } from 'node:module';
import tar from 'tar-stream';
import type { Ignore } from '@balena/dockerignore';

// A CommonJS module whose typings declare an ES default export.
const ignore = createRequire(import.meta.url)('@balena/dockerignore') as () => Ignore;

/** The patterns of `<dir>/.dockerignore` (comments and blank lines dropped), or none. */
export function readDockerignore(dir: string): string[] {
  let text: string;
  try {
    text = readFileSync(path.join(dir, '.dockerignore'), 'utf8');
  } catch {
    return [];
  }
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

export interface ContextTarOptions {
  excludes: string[];
  /** Files always sent even when a pattern excludes them (the Dockerfile, .dockerignore). */
  keep: string[];
  /** Extra files added at the end (a Dockerfile from stdin or from outside the context). */
  extra?: { name: string; data: Buffer }[];
}

function entry(pack: tar.Pack, header: Partial<tar.Header> & { name: string }, file?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error | null): void => (err ? reject(err) : resolve());
    if (!file) {
      pack.entry(header, done);
      return;
    }
    const sink = pack.entry(header, done);
    const src = createReadStream(file);
    src.on('error', reject);
    src.pipe(sink as unknown as NodeJS.WritableStream);
  });
}

export function contextTar(dir: string, opts: ContextTarOptions): Readable {
  const ig = ignore().add(opts.excludes);
  const hasExceptions = opts.excludes.some((p) => p.startsWith('!'));
  const keep = new Set(opts.keep);
  const pack = tar.pack();
  const walk = async (rel: string): Promise<void> => {
    const names = (await fsp.readdir(rel ? path.join(dir, rel) : dir)).sort();
    for (const name of names) {
      const r = rel ? `${rel}/${name}` : name;
      const host = path.join(dir, r);
      const st = await fsp.lstat(host);
      const ignored = !keep.has(r) && ig.ignores(r);
      if (st.isDirectory()) {
        if (ignored && !hasExceptions) continue;
        if (!ignored)
          await entry(pack, {
            name: `${r}/`,
            type: 'directory',
            mode: st.mode & 0o7777,
            uid: 0,
            gid: 0,
            uname: '',
            gname: '',
            mtime: st.mtime,
          });
        await walk(r);
        continue;
      }
      if (ignored) continue;
      const base = { name: r, mode: st.mode & 0o7777, uid: 0, gid: 0, uname: '', gname: '', mtime: st.mtime };
      if (st.isSymbolicLink())
        await entry(pack, { ...base, type: 'symlink', linkname: await fsp.readlink(host) });
      else if (st.isFile()) await entry(pack, { ...base, type: 'file', size: st.size }, host);
    }
  };
  void walk('')
    .then(async () => {
      for (const e of opts.extra ?? [])
        await new Promise<void>((resolve, reject) =>
          pack.entry({ name: e.name, mode: 0o600, uid: 0, gid: 0, mtime: new Date() }, e.data, (err) =>
            err ? reject(err) : resolve(),
          ),
        );
      pack.finalize();
    })
    .catch((err: unknown) => pack.destroy(err as Error));
  return pack as unknown as Readable;
}

/** The name a Dockerfile that is not inside the context travels under, like the docker CLI's. */
export function randomDockerfileName(): string {
  return `.dockerfile.${randomBytes(10).toString('hex')}`;
}

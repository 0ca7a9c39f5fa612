/**
 * `cp` between a container and the host: tar streams both ways, unpacked with the layer
 * extractor's rules. Loaded by `cp` only (tar-stream and the native addon stay off other commands).
 */
import { createReadStream, mkdtempSync, promises as fsp, statSync } from 'node:fs';
import * as path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import type { Client } from '../client/client.js';
import { extractLayer } from '../common/safetar.js';
import { ExitError } from './errors.js';

const DIR_BIT = 2 ** 31;

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

/** Copies `src` to `dest`: exactly one of them names a container path. */
export async function copy(
  client: Client,
  src: { container?: string; path: string },
  dest: { container?: string; path: string },
): Promise<void> {
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
}

/**
 * `docker cp`: reading and writing files in a container's root file system. Paths are resolved
 * inside the root (symlinks cannot lead out) and tars are written and read with the same safety
 * rules as image layers.
 */
import { createReadStream, promises as fsp, type Stats } from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import tar from 'tar-stream';
import { errnoCode, invalidArgument, notFound } from '../../common/errors.js';
import { resolveInRoot } from '../../common/rootpath.js';
import { extractLayer } from '../../common/safetar.js';

export interface PathStat {
  name: string;
  size: number;
  mode: number;
  mtime: string;
  linkTarget: string;
}

/** Go's os.FileMode bits, as the docker CLI reads them from X-Docker-Container-Path-Stat. */
function goMode(st: Stats): number {
  // Sums, not `|`: JavaScript's bitwise operators are 32-bit signed and bit 31 is ModeDir.
  let m = st.mode & 0o777;
  if (st.isDirectory()) m += 2 ** 31;
  if (st.isSymbolicLink()) m += 2 ** 27;
  if (st.isFIFO()) m += 2 ** 25;
  if (st.isSocket()) m += 2 ** 24;
  if (st.isCharacterDevice()) m += 2 ** 26 + 2 ** 21;
  if (st.isBlockDevice()) m += 2 ** 26;
  if (st.mode & 0o4000) m += 2 ** 23;
  if (st.mode & 0o2000) m += 2 ** 22;
  if (st.mode & 0o1000) m += 2 ** 20;
  return m;
}

export async function statPath(root: string, p: string): Promise<{ host: string; stat: PathStat }> {
  const host = resolveInRoot(root, p, false);
  let st: Stats;
  try {
    st = await fsp.lstat(host);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') throw notFound(`Could not find the file ${p} in container`);
    throw err;
  }
  const linkTarget = st.isSymbolicLink() ? await fsp.readlink(host) : '';
  return {
    host,
    stat: {
      name: path.posix.basename(p) || '/',
      size: st.size,
      mode: goMode(st),
      mtime: st.mtime.toISOString(),
      linkTarget,
    },
  };
}

/** A tar of `p` (a file, or a directory and everything in it), named by its base name. */
export async function archivePath(root: string, p: string): Promise<{ stat: PathStat; tar: Readable }> {
  const { host, stat } = await statPath(root, p);
  return { stat, tar: packTree(host, path.posix.basename(p.replace(/\/+$/, '')) || '.') };
}

/**
 * `docker export`: the whole root file system, entries relative to it. `mountPoints` (relative
 * paths) are the container's mount destinations: left out when they are empty placeholders.
 */
export function exportRoot(root: string, mountPoints?: Set<string>): Readable {
  return packTree(root, '', mountPoints);
}

/** A tar of a host tree (devices, fifos and sockets left out); `name` '' puts the tree's children at the top. */
function packTree(host: string, name: string, skipEmpty?: Set<string>): Readable {
  const pack = tar.pack();
  const walk = async (hostPath: string, name: string): Promise<void> => {
    const st = await fsp.lstat(hostPath);
    if (
      skipEmpty?.has(name) &&
      (st.isDirectory() ? (await fsp.readdir(hostPath)).length === 0 : st.size === 0)
    )
      return;
    const common = { name, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: st.mtime };
    if (st.isDirectory()) {
      if (name) await entry(pack, { ...common, name: `${name}/`, type: 'directory' });
      for (const child of (await fsp.readdir(hostPath)).sort())
        await walk(path.join(hostPath, child), name ? `${name}/${child}` : child);
    } else if (st.isSymbolicLink()) {
      await entry(pack, { ...common, type: 'symlink', linkname: await fsp.readlink(hostPath) });
    } else if (st.isFile()) {
      await new Promise<void>((resolve, reject) => {
        const sink = pack.entry({ ...common, type: 'file', size: st.size }, (err) =>
          err ? reject(err) : resolve(),
        );
        const src = createReadStream(hostPath);
        src.on('error', reject);
        src.pipe(sink as unknown as NodeJS.WritableStream);
      });
    }
  };
  void walk(host, name).then(
    () => pack.finalize(),
    (err: unknown) => pack.destroy(err as Error),
  );
  return pack as unknown as Readable;
}

function entry(pack: tar.Pack, header: Parameters<tar.Pack['entry']>[0]): Promise<void> {
  return new Promise((resolve, reject) => pack.entry(header, (err) => (err ? reject(err) : resolve())));
}

/** Extracts a tar into the directory `p` of the container. */
export async function extractToPath(root: string, p: string, input: Readable): Promise<void> {
  const host = resolveInRoot(root, p);
  let st: Stats;
  try {
    st = await fsp.stat(host);
  } catch {
    throw notFound(`Could not find the file ${p} in container`);
  }
  if (!st.isDirectory()) throw invalidArgument(`extraction point is not a directory: ${p}`);
  await extractLayer(input, host);
}

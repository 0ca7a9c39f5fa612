/**
 * The changes in a writable (upper) overlay directory, as Docker's `diff` kinds and as an OCI layer
 * tar (overlay whiteouts turned back into `.wh.` entries, opaque directories into `.wh..wh..opq`).
 */
import { createReadStream, promises as fsp, type Stats } from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import tar from 'tar-stream';
import { native } from '../../common/native.js';

export type ChangeKind = 0 | 1 | 2; // Docker: 0 modified, 1 added, 2 deleted

export interface Change {
  Path: string;
  Kind: ChangeKind;
}

function isWhiteout(st: Stats): boolean {
  return st.isCharacterDevice() && st.rdev === 0;
}

function isOpaque(p: string): boolean {
  try {
    return native.lgetxattr(p, 'trusted.overlay.opaque')?.toString() === 'y';
  } catch {
    return false;
  }
}

/** Mount points runc creates in a container's root: empty placeholders, not the user's changes. */
const RUNTIME_MOUNTPOINTS = new Set([
  'etc/hostname',
  'etc/hosts',
  'etc/resolv.conf',
  'proc',
  'sys',
  'dev',
  'dev/shm',
  'dev/pts',
  'dev/mqueue',
]);

function isPlaceholder(rel: string, st: Stats, below: boolean, extra?: Set<string>): boolean {
  return (
    !below &&
    (RUNTIME_MOUNTPOINTS.has(rel) || !!extra?.has(rel)) &&
    (st.isDirectory() || (st.isFile() && st.size === 0))
  );
}

/** Walks `upper` (sorted), telling for each path whether a lower layer had it. */
async function walk(
  upper: string,
  lowers: string[],
  visit: (rel: string, st: Stats, existedBelow: boolean) => Promise<void>,
  rel = '',
  extra?: Set<string>,
): Promise<void> {
  for (const name of (await fsp.readdir(path.join(upper, rel))).sort()) {
    const r = rel ? `${rel}/${name}` : name;
    const st = await fsp.lstat(path.join(upper, r));
    let below = false;
    for (const l of lowers) {
      try {
        await fsp.lstat(path.join(l, r));
        below = true;
        break;
      } catch {
        // not in this lower
      }
    }
    if (
      isPlaceholder(r, st, below, extra) &&
      (!st.isDirectory() || (await fsp.readdir(path.join(upper, r))).length === 0)
    )
      continue;
    await visit(r, st, below);
    if (st.isDirectory() && !isWhiteout(st)) await walk(upper, lowers, visit, r, extra);
  }
}

/** `mountPoints`: the container's own mount destinations (relative), left out like runc's. */
export async function changes(upper: string, lowers: string[], mountPoints?: Set<string>): Promise<Change[]> {
  const out: Change[] = [];
  await walk(
    upper,
    lowers,
    async (rel, st, below) => {
      if (isWhiteout(st)) out.push({ Path: `/${rel}`, Kind: 2 });
      else out.push({ Path: `/${rel}`, Kind: below ? 0 : 1 });
    },
    '',
    mountPoints,
  );
  return out;
}

/**
 * The upper directory as a layer tar (uncompressed), entries sorted, times kept; with `clampMtime`
 * (SOURCE_DATE_EPOCH) no time is later than it, so the same content gives the same bytes.
 */
export function diffTar(
  upper: string,
  lowers: string[],
  mountPoints?: Set<string>,
  opts: { clampMtime?: Date } = {},
): Readable {
  const clamp = opts.clampMtime;
  const pack = tar.pack();
  const add = (header: Parameters<tar.Pack['entry']>[0], file?: string) =>
    new Promise<void>((resolve, reject) => {
      const done = (err?: Error | null) => (err ? reject(err) : resolve());
      // An entry without a source (whiteout markers) is given its empty body at once.
      if (!file && header.type === 'file') return void pack.entry(header, Buffer.alloc(0), done);
      const sink = pack.entry(header, done);
      if (file) {
        const src = createReadStream(file);
        src.on('error', reject);
        src.pipe(sink as unknown as NodeJS.WritableStream);
      }
    });
  void walk(
    upper,
    lowers,
    async (rel, st) => {
      const mtime = clamp && st.mtime > clamp ? clamp : st.mtime;
      const base = { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime };
      const dir = path.posix.dirname(rel) === '.' ? '' : `${path.posix.dirname(rel)}/`;
      if (isWhiteout(st))
        return add({
          ...base,
          name: `${dir}.wh.${path.posix.basename(rel)}`,
          type: 'file',
          size: 0,
          mode: 0o644,
        });
      const p = path.join(upper, rel);
      if (st.isDirectory()) {
        await add({ ...base, name: `${rel}/`, type: 'directory' });
        if (isOpaque(p))
          await add({ ...base, name: `${rel}/.wh..wh..opq`, type: 'file', size: 0, mode: 0o644 });
        return;
      }
      if (st.isSymbolicLink())
        return add({ ...base, name: rel, type: 'symlink', linkname: await fsp.readlink(p) });
      if (st.isFIFO()) return add({ ...base, name: rel, type: 'fifo' });
      if (st.isFile()) return add({ ...base, name: rel, type: 'file', size: st.size }, p);
    },
    '',
    mountPoints,
  ).then(
    () => pack.finalize(),
    (err: unknown) => pack.destroy(err as Error),
  );
  return pack as unknown as Readable;
}

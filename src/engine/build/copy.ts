/**
 * COPY and ADD: sources resolved inside their root (the build context or another image's root file
 * system: `..` and symlinks never lead out of it), Docker's wildcard and directory semantics, and
 * the copy into the step's mounted root with --chown/--chmod. Also the content checksum of the
 * sources that keys the build cache.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, promises as fsp, type Stats } from 'node:fs';
import * as path from 'node:path';
import { invalidArgument, notFound } from '../../common/errors.js';
import { resolveInRoot } from '../../common/rootpath.js';

export interface SourceFile {
  /** Path relative to the source root, '/'-separated (for messages and the checksum). */
  rel: string;
  host: string;
  st: Stats;
}

const WILDCARD = /[*?[]/;

/** Go's filepath.Match for one pattern, as a RegExp ('*' and '?' never match '/'). */
export function globToRegExp(pattern: string): RegExp {
  let re = '^';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '\\' && i + 1 < pattern.length) re += escapeRe(pattern[++i]);
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end < 0) throw invalidArgument(`syntax error in pattern: ${pattern}`);
      let cls = pattern.slice(i + 1, end);
      if (cls.startsWith('^')) cls = '!' + cls.slice(1);
      re += '[' + (cls.startsWith('!') ? '^' + cls.slice(1) : cls).replace(/\\/g, '\\\\') + ']';
      i = end;
    } else re += escapeRe(c);
  }
  return new RegExp(re + '$');
}

function escapeRe(c: string): string {
  return c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/** A source path as given, cleaned to a path relative to its root; refuses climbing above it. */
export function cleanSourcePath(p: string, what: string): string {
  const parts: string[] = [];
  for (const c of p.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') {
      if (parts.length === 0) throw invalidArgument(`forbidden path outside the ${what}: ${p}`);
      parts.pop();
      continue;
    }
    parts.push(c);
  }
  return parts.join('/');
}

async function walkRel(root: string, rel: string, out: string[]): Promise<void> {
  let names: string[];
  try {
    names = await fsp.readdir(rel ? path.join(root, rel) : root);
  } catch {
    return;
  }
  for (const n of names.sort()) {
    const r = rel ? `${rel}/${n}` : n;
    out.push(r);
    const st = await fsp.lstat(path.join(root, r));
    if (st.isDirectory()) await walkRel(root, r, out);
  }
}

/**
 * Resolves COPY/ADD sources inside `root`. A wildcard matches whole paths (Go's filepath.Match); a
 * plain path is followed through symlinks scoped to the root. `what` names the root in errors.
 */
export async function resolveSources(root: string, patterns: string[], what: string): Promise<SourceFile[]> {
  const out: SourceFile[] = [];
  let all: string[] | undefined;
  for (const p of patterns) {
    const rel = cleanSourcePath(p, what);
    if (WILDCARD.test(rel)) {
      all ??= await (async () => {
        const list: string[] = [];
        await walkRel(root, '', list);
        return list;
      })();
      const re = globToRegExp(rel);
      for (const r of all.filter((x) => re.test(x))) {
        const host = resolveInRoot(root, r, true);
        try {
          out.push({ rel: r, host, st: await fsp.stat(host) });
        } catch {
          // a dangling symlink matched: Docker skips it too
        }
      }
      continue;
    }
    const host = resolveInRoot(root, rel, true);
    let st: Stats;
    try {
      st = await fsp.lstat(host);
    } catch {
      throw notFound(
        `COPY failed: file not found in ${what}${what === 'build context' ? ' or excluded by .dockerignore' : ''}: stat ${rel || '.'}: file does not exist`,
      );
    }
    out.push({ rel: rel || '.', host, st });
  }
  if (out.length === 0) throw invalidArgument('COPY failed: no source files were specified');
  return out;
}

/**
 * Feeds the sources' names, types, modes, link targets and contents (not times) into the cache
 * checksum `h`. A file's content goes in as its own sha256, as the context index (context.ts) has it.
 */
export async function checksumInto(h: Hash, sources: SourceFile[]): Promise<void> {
  const add = async (rel: string, host: string, st: Stats): Promise<void> => {
    h.update(`${rel}\0${st.mode.toString(8)}\0`);
    if (st.isSymbolicLink()) h.update(`l${await fsp.readlink(host)}\0`);
    else if (st.isFile()) {
      h.update(`f${st.size}\0`);
      const content = createHash('sha256');
      if (st.size <= 1024 * 1024) content.update(await fsp.readFile(host));
      else
        await new Promise<void>((resolve, reject) => {
          createReadStream(host, { highWaterMark: 1024 * 1024 })
            .on('data', (b) => content.update(b))
            .on('end', resolve)
            .on('error', reject);
        });
      h.update(content.digest());
    } else if (st.isDirectory()) {
      h.update('d\0');
      for (const n of (await fsp.readdir(host)).sort()) {
        const p = path.join(host, n);
        await add(`${rel}/${n}`, p, await fsp.lstat(p));
      }
    }
  };
  for (const s of sources) await add(s.rel, s.host, s.st);
}

export interface CopyOwner {
  uid: number;
  gid: number;
  /** --chmod: applied to every file and directory copied. */
  mode?: number;
}

/** Creates `dir` (host path under `root`) and missing parents owned by `owner`. */
export async function mkdirOwned(dir: string, owner: CopyOwner): Promise<void> {
  const missing: string[] = [];
  for (let d = dir; ; d = path.dirname(d)) {
    try {
      const st = await fsp.stat(d);
      if (!st.isDirectory()) throw invalidArgument(`cannot create directory ${d}: a file is in the way`);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      missing.unshift(d);
    }
  }
  for (const d of missing) {
    await fsp.mkdir(d, { mode: 0o755 });
    await fsp.chmod(d, 0o755);
    await fsp.lchown(d, owner.uid, owner.gid);
  }
}

async function removeIfNotDir(p: string): Promise<void> {
  try {
    const st = await fsp.lstat(p);
    if (!st.isDirectory()) await fsp.unlink(p);
    else return;
  } catch {
    // absent
  }
}

/** Copies one file system node (recursively for directories) from `src` to `dst`, Docker's way. */
export async function copyNode(src: string, st: Stats, dst: string, owner: CopyOwner | undefined): Promise<void> {
  const ids = (s: Stats): [number, number] => (owner ? [owner.uid, owner.gid] : [s.uid, s.gid]);
  if (st.isDirectory()) {
    let exists = false;
    try {
      exists = (await fsp.lstat(dst)).isDirectory();
    } catch {
      exists = false;
    }
    if (!exists) {
      await removeIfNotDir(dst);
      await fsp.mkdir(dst);
    }
    for (const n of (await fsp.readdir(src)).sort()) {
      const p = path.join(src, n);
      await copyNode(p, await fsp.lstat(p), path.join(dst, n), owner);
    }
    await fsp.lchown(dst, ...ids(st));
    await fsp.chmod(dst, owner?.mode ?? st.mode & 0o7777);
    await fsp.utimes(dst, st.atime, st.mtime);
    return;
  }
  try {
    const old = await fsp.lstat(dst);
    if (old.isDirectory()) await fsp.rm(dst, { recursive: true });
    else await fsp.unlink(dst);
  } catch {
    // nothing there
  }
  if (st.isSymbolicLink()) {
    await fsp.symlink(await fsp.readlink(src), dst);
    await fsp.lchown(dst, ...ids(st));
    await fsp.lutimes(dst, st.atime, st.mtime);
    return;
  }
  if (st.isFile()) {
    await fsp.copyFile(src, dst);
    await fsp.lchown(dst, ...ids(st));
    await fsp.chmod(dst, owner?.mode ?? st.mode & 0o7777);
    await fsp.utimes(dst, st.atime, st.mtime);
    return;
  }
  // sockets, fifos and devices are not copied by Docker's builder either
}

/** Is the file a tar archive ADD unpacks (plain or gzip)? */
export async function archiveKind(file: string): Promise<'tar' | 'gzip' | undefined> {
  const fh = await fsp.open(file, 'r');
  try {
    const b = Buffer.alloc(512);
    const { bytesRead } = await fh.read(b, 0, 512, 0);
    if (bytesRead >= 2 && b[0] === 0x1f && b[1] === 0x8b) return 'gzip';
    if (bytesRead >= 262 && b.toString('latin1', 257, 262) === 'ustar') return 'tar';
    return undefined;
  } finally {
    await fh.close();
  }
}

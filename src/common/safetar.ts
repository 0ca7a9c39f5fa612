/**
 * Safe extraction of a layer tar into a directory.
 *
 * Nothing is written outside the target: names that climb above the root are refused, entries are
 * never written through a symlink, relative symlinks may not point above the root (Docker's breakout
 * rule), hardlinks must name an earlier regular entry of the same layer, and device nodes are refused.
 * OCI/AUFS whiteouts become overlayfs whiteouts (0/0 char devices, opaque xattr).
 */
import { createWriteStream, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { errnoCode, invalidArgument } from './errors.js';
import { native, S_IFCHR, S_IFIFO } from './native.js';

const WHITEOUT_PREFIX = '.wh.';
const OPAQUE = '.wh..wh..opq';

export interface ExtractResult {
  /** Bytes of regular file content written. */
  size: number;
  entries: number;
}

type Header = Omit<tar.Header, 'pax'> & { pax?: Record<string, string> | null };

function entryError(name: string, reason: string): Error {
  return invalidArgument(`invalid tar entry ${JSON.stringify(name)}: ${reason}`);
}

/** Cleans a tar entry name into a relative path; refuses names that climb above the root. */
export function cleanEntryName(name: string): string {
  const parts: string[] = [];
  for (const p of name.split('/')) {
    if (p === '' || p === '.') continue;
    if (p === '..') {
      if (parts.length === 0) throw entryError(name, 'path escapes the layer root');
      parts.pop();
      continue;
    }
    parts.push(p);
  }
  return parts.join('/');
}

export async function extractLayer(input: Readable, target: string): Promise<ExtractResult> {
  const ex = new Extractor(target);
  const extract = tar.extract();
  // The pipeline reports its errors; tar-stream may emit one more after the pipeline has settled.
  extract.on('error', () => undefined);
  extract.on('entry', (header, source, next) => {
    const stream = source as unknown as Readable;
    // The entry's own errors also fail the whole extraction; don't let one escape unheard
    // while the entry waits on its parent directories.
    stream.on('error', () => undefined);
    ex.entry(header as Header, stream).then(
      () => next(),
      (err: unknown) => {
        stream.resume();
        next(err as Error);
      },
    );
  });
  try {
    await pipeline(input, extract);
  } catch (err) {
    if (err instanceof Error && 'kind' in err) throw err;
    throw invalidArgument(`invalid layer tar: ${(err as Error).message}`);
  }
  await ex.finish();
  return { size: ex.size, entries: ex.entries };
}

class Extractor {
  size = 0;
  entries = 0;
  /** Directories known to be real directories inside the target (relative paths). */
  private readonly dirs = new Set<string>(['']);
  private readonly dirTimes: { p: string; mtime: Date }[] = [];

  constructor(private readonly root: string) {}

  private abs(rel: string): string {
    return rel === '' ? this.root : path.join(this.root, rel);
  }

  /** Makes sure every ancestor of rel is a real directory (never a symlink), creating missing ones. */
  private async ensureParents(rel: string, name: string): Promise<void> {
    const parts = rel.split('/');
    let cur = '';
    for (let i = 0; i < parts.length - 1; i++) {
      cur = cur ? `${cur}/${parts[i]}` : parts[i];
      if (this.dirs.has(cur)) continue;
      const st = await lstatOrNull(this.abs(cur));
      if (st === null) await fsp.mkdir(this.abs(cur), { mode: 0o755 });
      else if (!st.isDirectory()) {
        if (st.isSymbolicLink()) throw entryError(name, `parent ${cur} is a symlink`);
        throw entryError(name, `parent ${cur} is not a directory`);
      }
      this.dirs.add(cur);
    }
  }

  /** Removes whatever is at rel unless both it and the new entry are directories. */
  private async clear(rel: string, keepDir: boolean): Promise<void> {
    const st = await lstatOrNull(this.abs(rel));
    if (st === null) return;
    if (keepDir && st.isDirectory()) return;
    await fsp.rm(this.abs(rel), { recursive: true, force: true });
    for (const d of this.dirs) if (d === rel || d.startsWith(rel + '/')) this.dirs.delete(d);
  }

  async entry(h: Header, stream: Readable): Promise<void> {
    this.entries++;
    const rel = cleanEntryName(h.name);
    if (rel === '') {
      stream.resume();
      return; // the root itself
    }
    const base = path.posix.basename(rel);
    const dir = path.posix.dirname(rel) === '.' ? '' : path.posix.dirname(rel);
    if (base.startsWith(WHITEOUT_PREFIX)) {
      stream.resume();
      await this.ensureParents(rel, h.name);
      if (base === OPAQUE) {
        native.lsetxattr(this.abs(dir), 'trusted.overlay.opaque', Buffer.from('y'));
        return;
      }
      if (base.startsWith('.wh..wh.')) return; // AUFS metadata
      const victim = dir
        ? `${dir}/${base.slice(WHITEOUT_PREFIX.length)}`
        : base.slice(WHITEOUT_PREFIX.length);
      if (cleanEntryName(victim) !== victim) throw entryError(h.name, 'bad whiteout name');
      await this.whiteout(victim);
      return;
    }
    await this.ensureParents(rel, h.name);
    const p = this.abs(rel);
    const type: string = h.type ?? 'file';
    switch (type) {
      case 'directory':
        await this.clear(rel, true);
        if ((await lstatOrNull(p)) === null) await fsp.mkdir(p, { mode: 0o755 });
        this.dirs.add(rel);
        stream.resume();
        break;
      case 'file':
      case 'contiguous-file': {
        await this.clear(rel, false);
        await pipeline(stream, createWriteStream(p, { mode: 0o600, flags: 'wx' }));
        this.size += h.size ?? 0;
        break;
      }
      case 'symlink': {
        stream.resume();
        const link = h.linkname ?? '';
        if (!link.startsWith('/')) {
          const joined = path.posix.normalize(path.posix.join(dir, link));
          if (joined === '..' || joined.startsWith('../'))
            throw entryError(h.name, `symlink target ${link} escapes the layer`);
        }
        await this.clear(rel, false);
        await fsp.symlink(link, p);
        break;
      }
      case 'link': {
        stream.resume();
        const targetRel = cleanEntryName(h.linkname ?? '');
        if (targetRel === '') throw entryError(h.name, 'hardlink without a target');
        await this.ensureParents(targetRel, h.name);
        const st = await lstatOrNull(this.abs(targetRel));
        if (st === null) throw entryError(h.name, `hardlink target ${h.linkname} is not in the layer`);
        if (st.isDirectory()) throw entryError(h.name, 'hardlink to a directory');
        if (st.isSymbolicLink()) throw entryError(h.name, 'hardlink to a symlink');
        await this.clear(rel, false);
        await fsp.link(this.abs(targetRel), p);
        return; // a hardlink shares the target's metadata
      }
      case 'character-device':
        stream.resume();
        if ((h.devmajor ?? 0) === 0 && (h.devminor ?? 0) === 0) {
          await this.whiteout(rel);
          return;
        }
        throw entryError(h.name, 'device nodes are not allowed in layers');
      case 'block-device':
        stream.resume();
        throw entryError(h.name, 'device nodes are not allowed in layers');
      case 'fifo':
        stream.resume();
        await this.clear(rel, false);
        native.mknod(p, S_IFIFO | 0o600, 0, 0);
        break;
      default:
        stream.resume();
        throw entryError(h.name, `unsupported entry type ${type}`);
    }
    await this.applyMetadata(p, h, type === 'symlink');
    if (type === 'directory' && h.mtime) this.dirTimes.push({ p, mtime: h.mtime });
  }

  private async whiteout(rel: string): Promise<void> {
    await this.ensureParents(rel, rel);
    await this.clear(rel, false);
    native.mknod(this.abs(rel), S_IFCHR, 0, 0);
  }

  private async applyMetadata(p: string, h: Header, isSymlink: boolean): Promise<void> {
    await fsp.lchown(p, h.uid ?? 0, h.gid ?? 0);
    if (!isSymlink) await fsp.chmod(p, (h.mode ?? 0o644) & 0o7777);
    for (const [k, v] of Object.entries(h.pax ?? {})) {
      if (!k.startsWith('SCHILY.xattr.')) continue;
      const name = k.slice('SCHILY.xattr.'.length);
      try {
        native.lsetxattr(p, name, Buffer.from(String(v), 'latin1'));
      } catch (err) {
        const code = errnoCode(err);
        if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw err;
      }
    }
    const mtime = h.mtime ?? new Date(0);
    if (isSymlink) await fsp.lutimes(p, mtime, mtime);
    else await fsp.utimes(p, mtime, mtime);
  }

  /** Directory times last: writing their content changed them. */
  async finish(): Promise<void> {
    for (const { p, mtime } of this.dirTimes.reverse()) await fsp.utimes(p, mtime, mtime);
  }
}

async function lstatOrNull(p: string): Promise<import('node:fs').Stats | null> {
  try {
    return await fsp.lstat(p);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return null;
    throw err;
  }
}

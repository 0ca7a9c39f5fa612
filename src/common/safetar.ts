/**
 * Safe extraction of a layer tar into an empty directory, in overlayfs form.
 *
 * Nothing is written outside the target:
 * - names are cleaned (a leading "/" or "./" is dropped, as Docker does) and any `..` that climbs above
 *   the root is refused;
 * - nothing is written through a symlink: every parent of an entry must be a real directory of this
 *   layer, and every node is created exclusively (O_EXCL, mkdir, symlink, link, mknod never follow a
 *   symlink in the last component);
 * - relative symlink targets may not climb above the root when joined with the link's directory
 *   (Docker's breakout rule; absolute targets are resolved inside the container and are fine);
 * - hardlinks must name a non-directory entry already extracted from this same layer;
 * - block and character devices are refused, except the 0/0 character device that is a whiteout.
 *
 * OCI/AUFS whiteouts become overlayfs ones: `.wh.<name>` a 0/0 character device, `.wh..wh..opq` the
 * xattr trusted.overlay.opaque=y on its directory; other `.wh..wh.` AUFS metadata is skipped. As the OCI
 * image spec says, a whiteout hides only lower layers: what this layer itself puts at that name stays.
 *
 * Every path we create is remembered, so parents are checked in memory and only a name we made
 * ourselves is ever replaced (later entries override earlier ones, as in Docker).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { BerthError, errnoCode, invalidArgument } from './errors.js';
import { FileWriter } from './filewriter.js';
import { log } from './log.js';
import { native, S_IFCHR, S_IFIFO } from './native.js';

const WHITEOUT_PREFIX = '.wh.';
const WHITEOUT_META_PREFIX = '.wh..wh.';
const OPAQUE = '.wh..wh..opq';
const OVERLAY_OPAQUE_XATTR = 'trusted.overlay.opaque';
const XATTR_PAX_PREFIX = 'SCHILY.xattr.';
const SMALL_FILE = 64 * 1024;

export interface ExtractResult {
  /** Bytes of regular file content written. */
  size: number;
  entries: number;
}

type Header = Omit<tar.Header, 'pax'> & { pax?: Record<string, string> | null };

/** What a layer holds at a path (for the extractor: what it made; the target starts empty). */
export type NodeKind = 'dir' | 'file' | 'symlink' | 'fifo' | 'whiteout';

export function entryError(name: string, reason: string): BerthError {
  return invalidArgument(`invalid tar entry ${JSON.stringify(name)}: ${reason}`);
}

/** A symlink entry's target, refused when empty or when, relative, it climbs out of the layer from `dir`. */
export function checkSymlinkTarget(name: string, dir: string, linkname: string | undefined): string {
  const link = linkname ?? '';
  if (link === '') throw entryError(name, 'symlink without a target');
  if (!link.startsWith('/')) {
    const joined = path.posix.normalize(path.posix.join(dir, link));
    if (joined === '..' || joined.startsWith('../'))
      throw entryError(name, `symlink target ${JSON.stringify(link)} escapes the layer`);
  }
  return link;
}

/** Cleans a tar entry name into a relative path ('' for the root); refuses names that climb above it. */
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

/** A tar entry's header fields the rules look at (tar-stream's names; common/tarreader.ts's too). */
export interface EntryHeader {
  name: string;
  type?: string | null;
  linkname?: string | null;
  devmajor?: number | null;
  devminor?: number | null;
}

/** A directory an entry needs above it: missing, or a whiteout of this layer to replace. */
export interface ParentDir {
  rel: string;
  wasWhiteout: boolean;
}

/**
 * What one entry does to the layer by the rules above, decided from what the layer holds so far
 * (`kindOf`); an unsafe entry throws. `parents` are made directories first, outermost first. The
 * extractor applies it on disk, the build context's index (engine/build/context.ts) in memory.
 */
export type EntryAction = { parents: ParentDir[] } & (
  | { op: 'skip' }
  /** `.wh..wh..opq`: `dir` hides the lower layers' content. */
  | { op: 'opaque'; dir: string }
  /** `.wh.<name>`: `rel` of the lower layers is hidden. */
  | { op: 'whiteout'; rel: string }
  /** An overlayfs whiteout (a 0/0 character device) at `rel` itself. */
  | { op: 'device-whiteout'; rel: string }
  | { op: 'dir' | 'file' | 'fifo'; rel: string }
  | { op: 'symlink'; rel: string; link: string }
  | { op: 'link'; rel: string; target: string; targetKind: NodeKind }
);

export function entryAction(h: EntryHeader, kindOf: (rel: string) => NodeKind | undefined): EntryAction {
  const name = h.name;
  const rel = cleanEntryName(name);
  if (rel === '') return { op: 'skip', parents: [] }; // the root: its attributes are the container's
  const parts = rel.split('/');
  const base = parts[parts.length - 1];
  const dir = parts.slice(0, -1).join('/');
  // AUFS metadata (.wh..wh.plnk, .wh..wh.aufs, ...) and anything inside it
  if (base !== OPAQUE && parts.some((p) => p.startsWith(WHITEOUT_META_PREFIX)))
    return { op: 'skip', parents: [] };
  if (base !== OPAQUE)
    for (const p of parts.slice(0, -1))
      if (p.startsWith(WHITEOUT_PREFIX)) throw entryError(name, 'a whiteout cannot be a directory');
  const parents = parentDirs(parts, name, kindOf);
  if (base === OPAQUE) return { op: 'opaque', dir, parents };
  if (base.startsWith(WHITEOUT_PREFIX)) {
    const victim = base.slice(WHITEOUT_PREFIX.length);
    if (victim === '' || victim === '.' || victim === '..') throw entryError(name, 'invalid whiteout');
    return { op: 'whiteout', rel: dir ? `${dir}/${victim}` : victim, parents };
  }
  const type = h.type ?? 'file';
  switch (type) {
    case 'directory':
      return { op: 'dir', rel, parents };
    case 'file':
    case 'contiguous-file':
      return { op: 'file', rel, parents };
    case 'symlink':
      return { op: 'symlink', rel, link: checkSymlinkTarget(name, dir, h.linkname ?? undefined), parents };
    case 'link': {
      const target = cleanEntryName(h.linkname ?? '');
      if (target === '') throw entryError(name, 'hardlink without a target');
      if (target === rel) throw entryError(name, 'hardlink to itself');
      // The parents about to be made count as the directories they will be.
      const kind = parents.some((p) => p.rel === target) ? 'dir' : kindOf(target);
      const via = kind === undefined ? symlinkAncestor(target, kindOf) : undefined;
      if (via)
        throw entryError(name, `hardlink target ${JSON.stringify(h.linkname)} is behind symlink ${via}`);
      if (kind === undefined || kind === 'whiteout')
        throw entryError(name, `hardlink target ${JSON.stringify(h.linkname)} is not in the layer`);
      if (kind === 'dir') throw entryError(name, 'hardlink to a directory');
      return { op: 'link', rel, target, targetKind: kind, parents };
    }
    case 'character-device':
      if ((h.devmajor ?? 0) === 0 && (h.devminor ?? 0) === 0) return { op: 'device-whiteout', rel, parents };
      throw entryError(name, 'device nodes are not allowed in layers');
    case 'block-device':
      throw entryError(name, 'device nodes are not allowed in layers');
    case 'fifo':
      return { op: 'fifo', rel, parents };
    default:
      throw entryError(name, `unsupported entry type ${type}`);
  }
}

/** The ancestors of an entry to make directories: every one must be a directory of this layer. */
function parentDirs(
  parts: string[],
  name: string,
  kindOf: (rel: string) => NodeKind | undefined,
): ParentDir[] {
  const out: ParentDir[] = [];
  let cur = '';
  for (let i = 0; i < parts.length - 1; i++) {
    cur = cur ? `${cur}/${parts[i]}` : parts[i];
    // Below a directory made here, nothing exists yet.
    const kind = out.length ? undefined : kindOf(cur);
    if (kind === 'dir') continue;
    if (kind === 'symlink') throw entryError(name, `parent ${cur} is a symlink`);
    if (kind !== undefined && kind !== 'whiteout') throw entryError(name, `parent ${cur} is not a directory`);
    out.push({ rel: cur, wasWhiteout: kind === 'whiteout' });
  }
  return out;
}

function symlinkAncestor(rel: string, kindOf: (rel: string) => NodeKind | undefined): string | undefined {
  const parts = rel.split('/');
  for (let i = 1; i < parts.length; i++) {
    const p = parts.slice(0, i).join('/');
    if (kindOf(p) === 'symlink') return p;
  }
  return undefined;
}

/**
 * Unpacks the (uncompressed) tar `input` into `target`, an existing empty directory.
 * Throws InvalidArgument for a malformed archive or an unsafe entry; the caller removes `target` then.
 */
export async function extractLayer(input: Readable, target: string): Promise<ExtractResult> {
  const ex = new Extractor(target);
  const extract = tar.extract();
  keepBinaryXattrs(extract);
  // The pipeline reports its errors; tar-stream may emit one more after the pipeline has settled.
  extract.on('error', () => undefined);
  // tar-stream may finish while the last entry is still being written (an archive without its end
  // blocks): that entry is awaited, and its error reported, after the pipeline.
  let last: Promise<void> = Promise.resolve();
  extract.on('entry', (header, source, next) => {
    const stream = source as unknown as Readable;
    // An error of the entry's stream also fails the extraction; none may escape unheard meanwhile.
    stream.on('error', () => undefined);
    last = ex.entry(header as Header, stream);
    last.then(
      () => next(),
      (err: unknown) => {
        stream.resume();
        next(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
  try {
    await pipeline(input, extract);
  } catch (err) {
    await last.catch(() => undefined); // nothing may still be writing when the caller cleans up
    throw tarError(err);
  }
  await last;
  ex.finish();
  return { size: ex.size, entries: ex.entries };
}

/** tar-stream's own complaints (plain Errors) mean a malformed archive; system errors stay what they are. */
function tarError(err: unknown): unknown {
  if (err instanceof BerthError || !(err instanceof Error)) return err;
  if (errnoCode(err) !== undefined) return err;
  return invalidArgument(`invalid layer tar: ${err.message}`);
}

/** File system errors an entry itself can cause (a name too long, ...): the archive's fault. */
const ENTRY_ERRNOS = new Set(['ENAMETOOLONG', 'ENOTDIR', 'EEXIST', 'ELOOP', 'EISDIR', 'EMLINK']);

class Extractor {
  size = 0;
  entries = 0;
  private readonly nodes = new Map<string, NodeKind>([['', 'dir']]);
  /** Directory times, set last: writing their content changes them. */
  private readonly dirTimes = new Map<string, Date>();
  private xattrWarned = false;

  constructor(private readonly root: string) {}

  private abs(rel: string): string {
    return rel === '' ? this.root : path.join(this.root, rel);
  }

  async entry(h: Header, stream: Readable): Promise<void> {
    this.entries++;
    try {
      await this.unpack(h, stream);
    } catch (err) {
      const code = errnoCode(err);
      if (code && ENTRY_ERRNOS.has(code)) throw entryError(h.name, (err as Error).message);
      throw err;
    }
  }

  private async unpack(h: Header, stream: Readable): Promise<void> {
    const a = entryAction(h, (rel) => this.nodes.get(rel));
    if (a.op !== 'file') stream.resume();
    this.makeParents(a.parents, h.name);
    switch (a.op) {
      case 'skip':
        return;
      case 'opaque':
        native.lsetxattr(this.abs(a.dir), OVERLAY_OPAQUE_XATTR, Buffer.from('y'));
        return;
      case 'whiteout':
        this.whiteout(a.rel);
        return;
      case 'dir': {
        const p = this.abs(a.rel);
        const was = this.nodes.get(a.rel);
        if (was !== 'dir') {
          this.clear(a.rel);
          fs.mkdirSync(p, 0o755);
          this.nodes.set(a.rel, 'dir');
          // A directory where a whiteout was: the lower one is deleted, so none of it may show through.
          if (was === 'whiteout') native.lsetxattr(p, OVERLAY_OPAQUE_XATTR, Buffer.from('y'));
        }
        this.setAttributes(p, h, 'dir');
        this.dirTimes.set(a.rel, entryMtime(h));
        return;
      }
      case 'file':
        this.clear(a.rel);
        await this.writeFile(this.abs(a.rel), h, stream);
        this.nodes.set(a.rel, 'file');
        this.size += h.size ?? 0;
        return;
      case 'symlink': {
        const p = this.abs(a.rel);
        this.clear(a.rel);
        fs.symlinkSync(a.link, p);
        this.nodes.set(a.rel, 'symlink');
        this.setAttributes(p, h, 'symlink');
        return;
      }
      case 'link':
        // A hardlink shares its target's attributes.
        this.clear(a.rel);
        // link(2) does not follow a symlink target, and the target's parents are directories we made.
        fs.linkSync(this.abs(a.target), this.abs(a.rel));
        this.nodes.set(a.rel, a.targetKind);
        return;
      case 'device-whiteout':
        // An overlayfs-format whiteout names the path itself, so it replaces what this layer put there.
        this.clear(a.rel);
        this.makeWhiteout(a.rel);
        return;
      case 'fifo': {
        const p = this.abs(a.rel);
        this.clear(a.rel);
        native.mknod(p, S_IFIFO | 0o600, 0, 0);
        this.nodes.set(a.rel, 'fifo');
        this.setAttributes(p, h, 'fifo');
        return;
      }
    }
  }

  /**
   * Makes the entry's missing ancestors real directories of this layer. One that was a whiteout
   * becomes an opaque directory (the lower one was deleted, then made anew).
   */
  private makeParents(parents: ParentDir[], name: string): void {
    for (const { rel, wasWhiteout } of parents) {
      if (wasWhiteout) this.clear(rel);
      const p = this.abs(rel);
      try {
        fs.mkdirSync(p, 0o755);
      } catch (err) {
        // Only we write here, so this would be a bug of ours; never trust a name we did not make.
        if (errnoCode(err) !== 'EEXIST' || !fs.lstatSync(p).isDirectory())
          throw entryError(name, `parent ${rel} is not a directory`);
      }
      if (wasWhiteout) native.lsetxattr(p, OVERLAY_OPAQUE_XATTR, Buffer.from('y'));
      this.nodes.set(rel, 'dir');
    }
  }

  /** Removes what this layer put at `rel`, if anything. */
  private clear(rel: string): void {
    const kind = this.nodes.get(rel);
    if (kind === undefined) return;
    if (kind === 'dir') {
      fs.rmSync(this.abs(rel), { recursive: true, force: true });
      const prefix = `${rel}/`;
      for (const k of this.nodes.keys()) if (k.startsWith(prefix)) this.nodes.delete(k);
      for (const k of this.dirTimes.keys()) if (k === rel || k.startsWith(prefix)) this.dirTimes.delete(k);
    } else fs.unlinkSync(this.abs(rel));
    this.nodes.delete(rel);
  }

  /** An OCI whiteout `.wh.<name>`: hides `rel` of the lower layers only. */
  private whiteout(rel: string): void {
    const kind = this.nodes.get(rel);
    if (kind === undefined) this.makeWhiteout(rel);
    // This layer's own directory of that name stays, without the lower one's content.
    else if (kind === 'dir') native.lsetxattr(this.abs(rel), OVERLAY_OPAQUE_XATTR, Buffer.from('y'));
    // Anything else this layer put there hides the lower entry already.
  }

  private makeWhiteout(rel: string): void {
    native.mknod(this.abs(rel), S_IFCHR, 0, 0);
    this.nodes.set(rel, 'whiteout');
  }

  private async writeFile(p: string, h: Header, stream: Readable): Promise<void> {
    const fd = fs.openSync(p, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
    try {
      // Small files are written at once (a thread pool round trip costs more than the copy); large
      // ones through the thread pool, so a busy disk never stalls the event loop for long, with
      // the chunks that arrive during one write gathered into the next.
      if ((h.size ?? 0) <= SMALL_FILE) for await (const chunk of stream) writeAllSync(fd, chunk as Buffer);
      else await pipeline(stream, new FileWriter({ fd }));
      // Through the descriptor: no path lookup, so nothing to race with.
      const { uid, gid, mode, mtime } = attributes(h);
      fs.fchownSync(fd, uid, gid);
      fs.fchmodSync(fd, mode); // after chown, which clears setuid/setgid
      fs.futimesSync(fd, mtime, mtime);
    } finally {
      fs.closeSync(fd);
    }
    this.setXattrs(p, h);
  }

  private setAttributes(p: string, h: Header, kind: 'dir' | 'symlink' | 'fifo'): void {
    const { uid, gid, mode, mtime } = attributes(h);
    fs.lchownSync(p, uid, gid);
    if (kind !== 'symlink') fs.chmodSync(p, mode);
    this.setXattrs(p, h);
    if (kind === 'symlink') fs.lutimesSync(p, mtime, mtime);
    else if (kind === 'fifo') fs.utimesSync(p, mtime, mtime);
  }

  private setXattrs(p: string, h: Header): void {
    if (!h.pax) return;
    for (const [key, value] of Object.entries(h.pax)) {
      if (!key.startsWith(XATTR_PAX_PREFIX)) continue;
      const name = key.slice(XATTR_PAX_PREFIX.length);
      // overlayfs' own metadata (opaque, redirect, origin, ...) is never taken from a layer.
      if (name.startsWith('trusted.overlay.')) continue;
      try {
        native.lsetxattr(p, name, Buffer.from(value, 'latin1'));
      } catch (err) {
        const code = errnoCode(err);
        if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP') {
          // As Docker: not every file system (or file type) takes every namespace.
          if (!name.startsWith('security.') && !this.xattrWarned) {
            this.xattrWarned = true;
            log.warn('layer xattr not set', { entry: h.name, xattr: name, error: code });
          }
          continue;
        }
        throw entryError(h.name, `cannot set xattr ${name}: ${code ?? (err as Error).message}`);
      }
    }
  }

  finish(): void {
    for (const [rel, mtime] of this.dirTimes) fs.utimesSync(this.abs(rel), mtime, mtime);
  }
}

function writeAllSync(fd: number, buf: Buffer): void {
  let off = 0;
  while (off < buf.length) off += fs.writeSync(fd, buf, off, buf.length - off);
}

function entryMtime(h: Header): Date {
  const pax = h.pax?.mtime;
  if (pax !== undefined && /^-?\d+(\.\d+)?$/.test(pax)) return new Date(Number(pax) * 1000);
  return h.mtime ?? new Date(0);
}

/** Ownership, mode and time, PAX values first (they carry ids and times the header fields cannot). */
function attributes(h: Header): { uid: number; gid: number; mode: number; mtime: Date } {
  const id = (pax: string | undefined, field: number | undefined) =>
    pax !== undefined && /^\d+$/.test(pax) ? Number(pax) : (field ?? 0);
  return {
    uid: id(h.pax?.uid, h.uid),
    gid: id(h.pax?.gid, h.gid),
    mode: (h.mode ?? 0o644) & 0o7777,
    mtime: entryMtime(h),
  };
}

/**
 * tar-stream decodes PAX values as UTF-8, which mangles binary xattr values (security.capability is
 * binary). This re-reads the raw records of each PAX header for this extractor only and keeps xattr
 * values as latin1 strings, which map byte for byte back to a Buffer. Should tar-stream drop the hook,
 * values stay UTF-8 decoded (right for text values, lossy for binary ones).
 */
function keepBinaryXattrs(extract: tar.Extract): void {
  type Internals = {
    _decodeLongHeader?: (buf: Buffer) => void;
    _header: { type: string } | null;
    _pax: Record<string, string> | null;
    _paxGlobal: Record<string, string> | null;
  };
  const ex = extract as unknown as Internals;
  const original = ex._decodeLongHeader;
  if (typeof original !== 'function') return;
  ex._decodeLongHeader = function (this: Internals, buf: Buffer) {
    original.call(this, buf);
    const type = this._header?.type;
    const values = type === 'pax-header' ? this._pax : type === 'pax-global-header' ? this._paxGlobal : null;
    if (!values) return;
    for (const [key, value] of rawPaxRecords(buf)) if (key.startsWith(XATTR_PAX_PREFIX)) values[key] = value;
  };
}

/** PAX extended header records ("<len> <key>=<value>\n"), values as latin1. */
function rawPaxRecords(buf: Buffer): [string, string][] {
  const out: [string, string][] = [];
  let off = 0;
  while (off < buf.length) {
    const space = buf.indexOf(0x20, off);
    if (space < 0) break;
    const len = Number(buf.toString('latin1', off, space));
    if (!Number.isInteger(len) || len <= 0 || off + len > buf.length) break;
    const eq = buf.indexOf(0x3d, space + 1);
    if (eq < 0 || eq >= off + len) break;
    out.push([buf.toString('utf8', space + 1, eq), buf.toString('latin1', eq + 1, off + len - 1)]);
    off += len;
  }
  return out;
}

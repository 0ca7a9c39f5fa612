/**
 * The build context: the request body (a tar, plain or compressed, or a bare Dockerfile) read in one
 * pass, chunk by chunk as the socket delivers them (tarreader.ts: no stream per entry, no copies, so
 * the daemon's cost per byte is little more than the sha256 of it). While it streams in, its bytes are spooled (in memory up to a limit, to a file in a private
 * directory beyond it) and its entries are indexed in memory (type, mode, size, link target and a
 * sha256 of each file's content), so a fully cached build never writes the context out as files nor
 * reads it twice: COPY/ADD checksums come from the index. The context is unpacked (from the spool,
 * by the layer extractor) only when a step needs its files. Memory stays bounded whatever the
 * context's size: past the limit the bytes go to the file, and only small files are kept in the
 * index, up to a fixed budget (enough for the Dockerfile).
 *
 * The index applies the layer extractor's rules as entries arrive (src/common/safetar.ts entryAction,
 * the very code the extractor decides with): no name above the root, no entry through a symlink, no
 * relative symlink climbing out, hardlinks only to files already seen, no devices; an unsafe context
 * is refused before any step runs, cached or not.
 */
import { createHash, type Hash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { finished, PassThrough, pipeline, type Readable } from 'node:stream';
import { decompressStream, detectCompression } from '../../common/decompress.js';
import { BerthError, invalidArgument, notFound } from '../../common/errors.js';
import { resolveWithin } from '../../common/rootpath.js';
import { entryAction, extractLayer, type NodeKind } from '../../common/safetar.js';
import { type TarEntryContent, type TarHeader, TarReader } from '../../common/tarreader.js';
import { cleanSourcePath, globToRegExp } from './copy.js';
import { Spool } from './spool.js';

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFIFO = 0o010000;
const S_IFCHR = 0o020000;
/** Files up to this size are kept in memory too (the Dockerfile is read from there)... */
const SMALL_FILE = 64 * 1024;
/** ...as long as all of them together stay under this. */
const MEMORY_BUDGET = 8 * 1024 * 1024;
/** Contexts up to this size stay in memory; bigger ones are spooled to a file. */
const MEMORY_SPOOL = 32 * 1024 * 1024;
const MAX_DOCKERFILE = 10 * 1024 * 1024;

/** A node of the context as the layer extractor would leave it on disk. */
export interface ContextEntry {
  /** st_mode: type bits and permission bits. */
  mode: number;
  size: number;
  /** Symlink target. */
  link?: string;
  /** sha256 (hex) of a regular file's content. */
  digest?: string;
  /** The content itself, for small files while the memory budget lasts. */
  data?: Buffer;
}

/** A COPY/ADD source found in the index. */
export interface ContextSource {
  /** Path relative to the context root as given (for the checksum). */
  rel: string;
  /** Path of the node it resolved to. */
  resolved: string;
  entry: ContextEntry;
}

const isDir = (e: ContextEntry) => (e.mode & 0o170000) === S_IFDIR;
const isLink = (e: ContextEntry) => (e.mode & 0o170000) === S_IFLNK;
const isFile = (e: ContextEntry) => (e.mode & 0o170000) === S_IFREG;

/** What the extractor would have made for an entry of the index. */
function kindOf(e: ContextEntry | undefined): NodeKind | undefined {
  if (!e) return undefined;
  switch (e.mode & 0o170000) {
    case S_IFDIR:
      return 'dir';
    case S_IFLNK:
      return 'symlink';
    case S_IFREG:
      return 'file';
    case S_IFIFO:
      return 'fifo';
    default:
      return 'whiteout';
  }
}

export class BuildContext {
  /** '' is the root (the extractor's target directory, mode 0700). */
  readonly entries = new Map<string, ContextEntry>([['', { mode: S_IFDIR | 0o700, size: 0 }]]);
  private children?: Map<string, string[]>;
  private unpacked?: Promise<string>;
  private budget = MEMORY_BUDGET;

  constructor(
    /** Private directory: the spool and, once unpacked, the files under `root`. */
    readonly dir: string,
    /** Set when the body was a Dockerfile rather than a tar. */
    readonly dockerfileOnly: boolean,
    private readonly spool?: Spool,
  ) {}

  /** The directory the context's files are unpacked in (on first use, from the spool). */
  root(): Promise<string> {
    this.unpacked ??= (async () => {
      const root = path.join(this.dir, 'root');
      await fsp.mkdir(root, { mode: 0o700 });
      if (this.spool) await extractLayer(this.spool.read(), root);
      else
        for (const [rel, e] of this.entries)
          if (rel && e.data) await fsp.writeFile(path.join(root, rel), e.data, { mode: e.mode & 0o777 });
      return root;
    })();
    return this.unpacked;
  }

  /** Closes the spool and removes the private directory. */
  async remove(): Promise<void> {
    await this.spool?.close();
    await fsp.rm(this.dir, { recursive: true, force: true });
  }

  /** A regular file's content (following symlinks inside the context); undefined when absent. */
  async readFile(p: string): Promise<Buffer | undefined> {
    const rel = this.resolve(p, true);
    const e = this.entries.get(rel);
    if (!e || !isFile(e)) return undefined;
    if (e.data) return e.data;
    return fsp.readFile(path.join(await this.root(), rel));
  }

  /** `p` resolved inside the context as resolveInRoot does on disk: symlinks never lead out. */
  resolve(p: string, followLast: boolean): string {
    return resolveWithin(p, followLast, (rel) => {
      const e = this.entries.get(rel);
      return e && isLink(e) ? (e.link ?? '') : undefined;
    });
  }

  private childrenOf(rel: string): string[] {
    if (!this.children) {
      this.children = new Map();
      for (const k of this.entries.keys()) {
        if (k === '') continue;
        const i = k.lastIndexOf('/');
        const parent = i < 0 ? '' : k.slice(0, i);
        let list = this.children.get(parent);
        if (!list) this.children.set(parent, (list = []));
        list.push(i < 0 ? k : k.slice(i + 1));
      }
      for (const list of this.children.values()) list.sort();
    }
    return this.children.get(rel) ?? [];
  }

  private walk(rel: string, out: string[]): void {
    for (const n of this.childrenOf(rel)) {
      const r = rel ? `${rel}/${n}` : n;
      out.push(r);
      if (isDir(this.entries.get(r)!)) this.walk(r, out);
    }
  }

  /** COPY/ADD sources, with copy.ts resolveSources' rules and errors. */
  sources(patterns: string[]): ContextSource[] {
    const out: ContextSource[] = [];
    let all: string[] | undefined;
    for (const p of patterns) {
      const rel = cleanSourcePath(p, 'build context');
      if (/[*?[]/.test(rel)) {
        if (!all) this.walk('', (all = []));
        const re = globToRegExp(rel);
        for (const r of all.filter((x) => re.test(x))) {
          const resolved = this.resolve(r, true);
          const entry = this.entries.get(resolved);
          if (entry && !isLink(entry)) out.push({ rel: r, resolved, entry });
        }
        continue;
      }
      const resolved = this.resolve(rel, true);
      const entry = this.entries.get(resolved);
      if (!entry)
        throw notFound(
          `COPY failed: file not found in build context or excluded by .dockerignore: stat ${rel || '.'}: file does not exist`,
        );
      out.push({ rel: rel || '.', resolved, entry });
    }
    if (out.length === 0) throw invalidArgument('COPY failed: no source files were specified');
    return out;
  }

  /** Feeds a source into the cache checksum exactly as copy.ts checksumSources does from disk. */
  checksum(h: Hash, src: ContextSource): void {
    const add = (rel: string, node: string, e: ContextEntry): void => {
      h.update(`${rel}\0${e.mode.toString(8)}\0`);
      if (isLink(e)) h.update(`l${e.link ?? ''}\0`);
      else if (isFile(e)) {
        h.update(`f${e.size}\0`);
        h.update(Buffer.from(e.digest ?? '', 'hex'));
      } else if (isDir(e)) {
        h.update('d\0');
        for (const n of this.childrenOf(node)) {
          const child = node ? `${node}/${n}` : n;
          add(`${rel}/${n}`, child, this.entries.get(child)!);
        }
      }
    };
    add(src.rel, src.resolved, src.entry);
  }

  isDirectory(src: ContextSource): boolean {
    return isDir(src.entry);
  }

  // --- building the index, entry by entry (the layer extractor's rules) ---

  /**
   * Adds one tar entry by the layer extractor's rules (safetar.ts entryAction); a regular file's
   * content is hashed as it streams by, into the sink returned.
   */
  add(h: TarHeader): TarEntryContent | undefined {
    const a = entryAction(h, (rel) => kindOf(this.entries.get(rel)));
    for (const p of a.parents) this.entries.set(p.rel, { mode: S_IFDIR | 0o755, size: 0 });
    const perm = (h.mode ?? 0o644) & 0o7777;
    switch (a.op) {
      case 'skip':
      case 'opaque':
        return undefined;
      case 'whiteout':
        if (!this.entries.has(a.rel)) this.entries.set(a.rel, { mode: S_IFCHR, size: 0 });
        return undefined;
      case 'dir': {
        const was = this.entries.get(a.rel);
        if (!was || !isDir(was)) this.clear(a.rel);
        this.entries.set(a.rel, { mode: S_IFDIR | perm, size: 0 });
        return undefined;
      }
      case 'file': {
        this.clear(a.rel);
        const size = h.size;
        const keep = size <= SMALL_FILE && size <= this.budget;
        if (keep) this.budget -= size;
        return new FileDigest(keep, (digest, data) =>
          this.entries.set(a.rel, { mode: S_IFREG | perm, size, digest, ...(data ? { data } : {}) }),
        );
      }
      case 'symlink':
        this.clear(a.rel);
        this.entries.set(a.rel, { mode: S_IFLNK | 0o777, size: a.link.length, link: a.link });
        return undefined;
      case 'link': {
        const target = this.entries.get(a.target)!;
        this.clear(a.rel);
        this.entries.set(a.rel, target);
        return undefined;
      }
      case 'device-whiteout':
        this.clear(a.rel);
        this.entries.set(a.rel, { mode: S_IFCHR, size: 0 });
        return undefined;
      case 'fifo':
        this.clear(a.rel);
        this.entries.set(a.rel, { mode: S_IFIFO | perm, size: 0 });
        return undefined;
    }
  }

  private clear(rel: string): void {
    const e = this.entries.get(rel);
    if (!e) return;
    if (isDir(e)) {
      const prefix = `${rel}/`;
      for (const k of this.entries.keys()) if (k.startsWith(prefix)) this.entries.delete(k);
    }
    this.entries.delete(rel);
  }
}

/** A regular file's content on its way into the index: hashed, and kept when small. */
class FileDigest implements TarEntryContent {
  private readonly hash = createHash('sha256');
  private readonly chunks: Buffer[] | undefined;

  constructor(
    keep: boolean,
    private readonly done: (digest: string, data: Buffer | undefined) => void,
  ) {
    if (keep) this.chunks = [];
  }

  data(chunk: Buffer): void {
    this.hash.update(chunk);
    this.chunks?.push(chunk);
  }

  end(): void {
    // A copy: the slices point into network chunks many times their size.
    this.done(this.hash.digest('hex'), this.chunks && Buffer.concat(this.chunks));
  }
}

/**
 * Reads the body: a tar (plain, or gzip/zstd), or else a Dockerfile alone. A tar has "ustar" at
 * offset 257, an empty one is a zero block; anything else is a Dockerfile.
 */
export async function receiveContext(
  body: Readable,
  dir: string,
  memoryLimit = MEMORY_SPOOL,
): Promise<BuildContext> {
  // Errors of the body are taken from finished() wherever it is read; none may go unheard between.
  body.on('error', () => undefined);
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  const { head, compressed } = await readHead(body);
  const reader = new ContextReader(dir, memoryLimit);
  if (compressed) {
    // Rare (a client's own compressed tar): through the decompressor's stream.
    const input = new PassThrough();
    for (const c of head) input.write(c);
    pipeline(body, input, () => undefined);
    const { stream } = await decompressStream(input);
    await reader.consume([], stream);
  } else await reader.consume(head, body);
  return reader.context();
}

/** The first chunks of `body` (at least 4 bytes unless it is shorter), and whether they start a compressed stream. */
function readHead(body: Readable): Promise<{ head: Buffer[]; compressed: boolean }> {
  return new Promise((resolve, reject) => {
    const head: Buffer[] = [];
    let size = 0;
    const done = (err?: Error | null) => {
      body.off('data', onData);
      body.pause();
      stop();
      if (err) reject(err);
      else resolve({ head, compressed: detectCompression(Buffer.concat(head, Math.min(size, 4))) !== 'none' });
    };
    const onData = (c: Buffer) => {
      head.push(c);
      size += c.length;
      if (size >= 4) done();
    };
    body.on('data', onData);
    const stop = finished(body, (err) => done(err));
  });
}

/**
 * One pass over the body: it is told apart (tar or Dockerfile) on its first 512 bytes; a tar's bytes
 * all go to the spool and its entries into the index as they arrive.
 */
class ContextReader {
  private head: Buffer[] = [];
  private headSize = 0;
  private mode: 'head' | 'tar' | 'dockerfile' = 'head';
  private size = 0;
  private spool?: Spool;
  private tar?: TarReader;
  private ctx?: BuildContext;
  private dockerfile: Buffer[] = [];

  constructor(
    private readonly dir: string,
    private readonly memoryLimit: number,
  ) {}

  /** Reads `first` then the rest of `source`, with the spool's back-pressure. */
  async consume(first: Buffer[], source: Readable): Promise<void> {
    try {
      for (const c of first) await this.write(c);
      await new Promise<void>((resolve, reject) => {
        let failed = false;
        const fail = (err: unknown) => {
          if (failed) return;
          failed = true;
          source.off('data', onData);
          stop();
          reject(err);
        };
        const onData = (c: Buffer) => {
          let wait: Promise<void> | undefined;
          try {
            wait = this.write(c);
          } catch (err) {
            fail(err);
            return;
          }
          if (!wait) return;
          source.pause();
          wait.then(() => {
            if (!failed) source.resume();
          }, fail);
        };
        source.on('data', onData);
        const stop = finished(source, (err) => {
          if (err) fail(err);
          else if (!failed) resolve();
        });
        source.resume();
      });
      await this.end();
    } catch (err) {
      // The rest of the body is read and dropped, so the client gets the error as an answer rather
      // than a connection reset.
      source.on('error', () => undefined);
      source.resume();
      await this.spool?.close();
      if (this.mode !== 'tar' || err instanceof BerthError || !(err instanceof Error) || (err as NodeJS.ErrnoException).code)
        throw err;
      throw invalidArgument(`invalid layer tar: ${err.message}`);
    }
  }

  context(): BuildContext {
    return this.ctx!;
  }

  private write(c: Buffer): Promise<void> | undefined {
    if (this.mode === 'head') {
      this.head.push(c);
      this.headSize += c.length;
      if (this.headSize < 512) return undefined;
      return this.decide();
    }
    this.size += c.length;
    if (this.mode === 'dockerfile') {
      if (this.size > MAX_DOCKERFILE) throw new Error('the Dockerfile is larger than 10 MB');
      this.dockerfile.push(c);
      return undefined;
    }
    this.tar!.write(c);
    return this.spool!.write(c);
  }

  /** The first 512 bytes (or all there is) are in: a tar, an empty tar, or a Dockerfile. */
  private decide(): Promise<void> | undefined {
    const first = Buffer.concat(this.head, Math.min(this.headSize, 512));
    const isTar = first.length >= 262 && first.toString('latin1', 257, 262) === 'ustar';
    const emptyTar = first.length === 512 && first.every((b) => b === 0);
    if (isTar || emptyTar) {
      this.spool = new Spool(path.join(this.dir, 'context.tar'), this.memoryLimit);
      this.ctx = new BuildContext(this.dir, false, this.spool);
      const ctx = this.ctx;
      this.tar = new TarReader((h) => ctx.add(h));
      this.mode = 'tar';
    } else this.mode = 'dockerfile';
    return this.writeAll(this.head.splice(0), 0);
  }

  private writeAll(chunks: Buffer[], from: number): Promise<void> | undefined {
    for (let i = from; i < chunks.length; i++) {
      const wait = this.write(chunks[i]);
      if (wait) return wait.then(() => this.writeAll(chunks, i + 1));
    }
    return undefined;
  }

  private async end(): Promise<void> {
    if (this.mode === 'head') {
      if (this.headSize === 0) {
        this.ctx = new BuildContext(this.dir, false);
        return;
      }
      await this.decide();
    }
    if (this.mode === 'dockerfile') {
      const data = Buffer.concat(this.dockerfile);
      this.ctx = new BuildContext(this.dir, true);
      this.ctx.entries.set('Dockerfile', {
        mode: S_IFREG | 0o644,
        size: data.length,
        digest: createHash('sha256').update(data).digest('hex'),
        data,
      });
      return;
    }
    // The docker CLI's `-f -` context ends right after the last entry's data, without its padding or
    // the end-of-archive blocks (Go's tar reader accepts that): they are supplied here, to the spool
    // too, so the extractor reads a whole archive.
    const end = Buffer.alloc(((512 - (this.size % 512)) % 512) + 1024);
    this.tar!.write(end);
    this.tar!.end();
    await this.spool!.write(end);
    await this.spool!.end();
  }
}

/**
 * A push-style tar reader: chunks go in with write(), entries come out as calls, their content as
 * slices of those same chunks. No streams, no copies, nothing asynchronous: the build context is
 * read through it at the pace the client sends, with only a hash update per slice on top.
 *
 * Headers are read the way tar-stream reads them, because the layer extractor (safetar.ts) reads
 * the same bytes with tar-stream later: the same names (ustar prefix, GNU long names, PAX path and
 * linkpath), types, sizes (octal or base-256, PAX size), checksum check and refusal of unknown
 * formats, and the same error messages. A few inputs tar-stream would mis-handle (a long header
 * with a bad size, a size tar-stream cannot decode, a PAX record with a negative length) are
 * refused here instead.
 */

export type TarType =
  | 'file'
  | 'link'
  | 'symlink'
  | 'character-device'
  | 'block-device'
  | 'directory'
  | 'fifo'
  | 'contiguous-file';

export interface TarHeader {
  name: string;
  /** null for a type flag tar-stream does not know (read as a regular file, as the extractor does). */
  type: TarType | null;
  mode: number | null;
  size: number;
  linkname: string | null;
  devmajor: number | null;
  devminor: number | null;
  pax: Record<string, string> | null;
}

/** Where an entry's content goes: its bytes in order, then end(). */
export interface TarEntryContent {
  data(chunk: Buffer): void;
  end(): void;
}

type LongType = 'gnu-long-path' | 'gnu-long-link-path' | 'pax-header' | 'pax-global-header';

const BLOCK = 512;
/** tar-stream's limit for a PAX or GNU long header. */
const MAX_LONG_HEADER = 4 * 1024 * 1024;
const CORRUPT = 'Invalid tar header. Maybe the tar is corrupted or it needs to be gunzipped?';

export class TarReader {
  /** Bytes of the header (or long header) being assembled. */
  private pending: Buffer[] = [];
  private pendingSize = 0;
  /** Size of what is being assembled: a header block, or a long header's content. */
  private need = BLOCK;
  private long: { type: LongType; size: number } | undefined;
  /** Content bytes of the current entry still to come, and where they go (nowhere: skipped). */
  private remaining = 0;
  private content: TarEntryContent | undefined;
  private entrySize = 0;
  /** Padding (or a skipped long header's) bytes still to drop. */
  private skip = 0;
  private gnuLongPath: string | undefined;
  private gnuLongLinkPath: string | undefined;
  private pax: Record<string, string> | undefined;
  private paxGlobal: Record<string, string> | undefined;

  /** `onEntry` returns where the entry's content goes, or nothing to skip it. */
  constructor(private readonly onEntry: (h: TarHeader) => TarEntryContent | undefined) {}

  /** Reads a chunk; throws on a malformed archive (or what onEntry and the content sinks throw). */
  write(chunk: Buffer): void {
    let off = 0;
    const len = chunk.length;
    while (off < len) {
      if (this.remaining > 0) {
        const n = Math.min(this.remaining, len - off);
        this.content?.data(chunk.subarray(off, off + n));
        off += n;
        this.remaining -= n;
        if (this.remaining === 0) {
          this.skip = padding(this.entrySize);
          const content = this.content;
          this.content = undefined;
          content?.end();
        }
        continue;
      }
      if (this.skip > 0) {
        const n = Math.min(this.skip, len - off);
        off += n;
        this.skip -= n;
        continue;
      }
      const n = Math.min(this.need - this.pendingSize, len - off);
      this.pending.push(chunk.subarray(off, off + n));
      this.pendingSize += n;
      off += n;
      if (this.pendingSize < this.need) continue;
      const block = this.pending.length === 1 ? this.pending[0] : Buffer.concat(this.pending, this.need);
      this.pending = [];
      this.pendingSize = 0;
      this.need = BLOCK;
      if (this.long) this.longHeader(this.long, block);
      else this.header(block);
    }
  }

  /** The input ended: throws when it ended inside an entry or a header. */
  end(): void {
    if (this.remaining > 0 || this.skip > 0 || this.pendingSize > 0 || this.long)
      throw new Error('Unexpected end of data');
  }

  private header(block: Buffer): void {
    const h = decodeHeader(block);
    if (!h) return; // a zero block: tar-stream reads on past it, and so does the extractor
    if (h.longType) {
      if (!(h.size >= 0)) throw new Error('Invalid header');
      if (h.size > MAX_LONG_HEADER) throw new Error('Header exceeds max size');
      if (h.size === 0) return;
      this.long = { type: h.longType, size: h.size };
      this.need = h.size;
      return;
    }
    const entry = h.entry;
    if (this.gnuLongPath !== undefined) entry.name = this.gnuLongPath;
    if (this.gnuLongLinkPath !== undefined) entry.linkname = this.gnuLongLinkPath;
    this.gnuLongPath = this.gnuLongLinkPath = undefined;
    if (this.pax) {
      if (this.pax.path) entry.name = this.pax.path;
      if (this.pax.linkpath) entry.linkname = this.pax.linkpath;
      if (this.pax.size) entry.size = parseInt(this.pax.size, 10);
      entry.pax = this.pax;
      this.pax = undefined;
    }
    if (!(entry.size >= 0)) throw new Error('Invalid header');
    const content = this.onEntry(entry);
    // As tar-stream: a directory's size is not skipped (what follows is read as the next header).
    if (entry.size === 0 || entry.type === 'directory') {
      content?.end();
      return;
    }
    this.content = content;
    this.remaining = this.entrySize = entry.size;
  }

  private longHeader(long: { type: LongType; size: number }, buf: Buffer): void {
    this.long = undefined;
    this.skip = padding(long.size);
    switch (long.type) {
      case 'gnu-long-path':
        this.gnuLongPath = decodeString(buf, 0, buf.length);
        return;
      case 'gnu-long-link-path':
        this.gnuLongLinkPath = decodeString(buf, 0, buf.length);
        return;
      case 'pax-global-header':
        this.paxGlobal = decodePax(buf);
        return;
      case 'pax-header':
        // The global records count only where an entry has records of its own (as tar-stream).
        this.pax = this.paxGlobal ? { ...this.paxGlobal, ...decodePax(buf) } : decodePax(buf);
        return;
    }
  }
}

function padding(size: number): number {
  const rest = size % BLOCK;
  return rest && BLOCK - rest;
}

type Decoded = { longType: LongType; size: number } | { longType?: undefined; entry: TarHeader };

function decodeHeader(b: Buffer): Decoded | null {
  let sum = 8 * 32;
  for (let i = 0; i < 148; i++) sum += b[i];
  for (let i = 156; i < BLOCK; i++) sum += b[i];
  if (sum === 8 * 32) return null; // all zero
  if (sum !== decodeNumber(b, 148, 8)) throw new Error(CORRUPT);
  const flag = b[156] === 0 ? 0 : b[156] - 48;
  let name = decodeString(b, 0, 100);
  if (isMagic(b, USTAR_MAGIC)) {
    if (b[345]) name = `${decodeString(b, 345, 155)}/${name}`;
  } else if (!(isMagic(b, GNU_MAGIC) && b[263] === 0x20 && b[264] === 0)) {
    throw new Error('Invalid tar header: unknown format.');
  }
  const size = decodeNumber(b, 124, 12) ?? NaN;
  const longType = LONG_TYPES.get(flag);
  if (longType) return { longType, size };
  return {
    entry: {
      name,
      type: TYPES.get(flag) ?? null,
      mode: decodeNumber(b, 100, 8),
      size,
      linkname: b[157] === 0 ? null : decodeString(b, 157, 100),
      devmajor: decodeNumber(b, 329, 8),
      devminor: decodeNumber(b, 337, 8),
      pax: null,
    },
  };
}

const USTAR_MAGIC = Buffer.from('ustar\0', 'latin1');
const GNU_MAGIC = Buffer.from('ustar ', 'latin1');

function isMagic(b: Buffer, magic: Buffer): boolean {
  for (let i = 0; i < magic.length; i++) if (b[257 + i] !== magic[i]) return false;
  return true;
}

const TYPES = new Map<number, TarType>([
  [0, 'file'],
  [1, 'link'],
  [2, 'symlink'],
  [3, 'character-device'],
  [4, 'block-device'],
  [5, 'directory'],
  [6, 'fifo'],
  [7, 'contiguous-file'],
]);

/** 'x', 'g', 'K', 'L' and the old 'N'. */
const LONG_TYPES = new Map<number, LongType>([
  [72, 'pax-header'],
  [55, 'pax-global-header'],
  [27, 'gnu-long-link-path'],
  [28, 'gnu-long-path'],
  [30, 'gnu-long-path'],
]);

/** A NUL-terminated UTF-8 field. */
function decodeString(b: Buffer, off: number, len: number): string {
  let end = off;
  while (end < off + len && b[end] !== 0) end++;
  return b.toString('utf8', off, end);
}

/** An octal field (leading spaces and NULs skipped, up to a space) or a base-256 one; null when unreadable. */
function decodeNumber(b: Buffer, off: number, len: number): number | null {
  if (b[off] & 0x80) {
    const positive = b[off] === 0x80;
    if (!positive && b[off] !== 0xff) return null;
    let sum = 0;
    for (let i = off + 1; i < off + len; i++) sum = sum * 256 + (positive ? b[i] : 0xff - b[i]);
    return positive ? sum : -sum;
  }
  let i = off;
  const stop = off + len;
  while (i < stop && b[i] === 32) i++;
  let end = i;
  while (end < stop && b[end] !== 32) end++;
  while (i < end && b[i] === 0) i++;
  if (end === i) return 0;
  return parseInt(b.toString('utf8', i, end), 8);
}

/** PAX records, "<len> <key>=<value>\n", decoded as tar-stream does (UTF-8 values). */
function decodePax(buf: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let rest = buf;
  while (rest.length) {
    let i = 0;
    while (i < rest.length && rest[i] !== 32) i++;
    const len = parseInt(rest.toString('utf8', 0, i), 10);
    if (!(len > 0)) return out;
    const record = rest.toString('utf8', i + 1, Math.max(i + 1, len - 1));
    const eq = record.indexOf('=');
    if (eq === -1) return out;
    out[record.slice(0, eq)] = record.slice(eq + 1);
    rest = rest.subarray(len);
  }
  return out;
}

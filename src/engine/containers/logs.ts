/**
 * Container logs as conmon writes them (k8s-file: `<RFC3339Nano> <stdout|stderr> <F|P> <bytes>`),
 * read back with Docker's options: streams, since/until, tail, timestamps, follow.
 */
import { promises as fsp, watch } from 'node:fs';

/**
 * One record. Time and payload stay offsets into the chunk read from the file until asked for:
 * a log of 200,000 lines read whole makes no string and no Buffer view per line.
 */
export class LogEntry {
  constructor(
    readonly stream: 'stdout' | 'stderr',
    private readonly src: Buffer,
    private readonly timeStart: number,
    private readonly timeEnd: number,
    /** Payload bytes (newline kept): src[dataStart, dataEnd), or `joined` for partial records. */
    private readonly dataStart: number,
    private readonly dataEnd: number,
    private readonly joined?: Buffer,
  ) {}

  /** The record's timestamp as written (nanoseconds kept). */
  get time(): string {
    return this.src.toString('latin1', this.timeStart, this.timeEnd);
  }

  get data(): Buffer {
    return this.joined ?? this.src.subarray(this.dataStart, this.dataEnd);
  }

  get length(): number {
    return this.joined ? this.joined.length : this.dataEnd - this.dataStart;
  }

  /** Copies the payload into `out` at `pos`; returns the bytes copied. */
  copyTo(out: Buffer, pos: number): number {
    return this.joined ? this.joined.copy(out, pos) : this.src.copy(out, pos, this.dataStart, this.dataEnd);
  }

  /** Milliseconds since the epoch, parsed only when a filter asks. */
  get ms(): number {
    return Date.parse(this.time);
  }
}

const STDOUT = Buffer.from('stdout');
const STDERR = Buffer.from('stderr');

function streamAt(data: Buffer, from: number, to: number): 'stdout' | 'stderr' | undefined {
  if (to - from !== 6) return undefined;
  if (data.compare(STDOUT, 0, 6, from, to) === 0) return 'stdout';
  if (data.compare(STDERR, 0, 6, from, to) === 0) return 'stderr';
  return undefined;
}

export interface LogOptions {
  stdout: boolean;
  stderr: boolean;
  /** Seconds since the epoch (fractional). */
  since?: number;
  until?: number;
  /** Number of lines from the end; undefined = all. */
  tail?: number;
}

/** Parses one k8s-file record; P(artial) records are joined with what follows by the caller. */
export function parseLine(
  line: string,
): { stream: 'stdout' | 'stderr'; time: string; partial: boolean; text: string } | undefined {
  const a = line.indexOf(' ');
  const b = line.indexOf(' ', a + 1);
  const c = line.indexOf(' ', b + 1);
  if (a < 0 || b < 0) return undefined;
  const stream = line.slice(a + 1, b);
  if (stream !== 'stdout' && stream !== 'stderr') return undefined;
  const tag = c < 0 ? line.slice(b + 1) : line.slice(b + 1, c);
  return { stream, time: line.slice(0, a), partial: tag === 'P', text: c < 0 ? '' : line.slice(c + 1) };
}

/** Docker prints RFC3339Nano in UTC: conmon writes local time with an offset. */
export function toUtcNano(t: string): string {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.?(\d*)([+-]\d\d:\d\d|Z)$/.exec(t);
  if (!m) return t;
  const frac = (m[2] || '0').padEnd(9, '0').slice(0, 9);
  const base = new Date(`${m[1]}${m[3]}`);
  return `${base.toISOString().slice(0, 19)}.${frac}Z`;
}

/** Reads complete records from `offset`; returns entries and the offset after the last full line. */
export async function readEntries(
  file: string,
  offset = 0,
): Promise<{ entries: LogEntry[]; offset: number }> {
  let data: Buffer;
  try {
    const fh = await fsp.open(file, 'r');
    try {
      const { size } = await fh.stat();
      if (size <= offset) return { entries: [], offset };
      data = Buffer.alloc(size - offset);
      const { bytesRead } = await fh.read(data, 0, data.length, offset);
      data = data.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  } catch {
    return { entries: [], offset };
  }
  const r = parseRecords(data);
  return { entries: r.entries, offset: offset + r.consumed };
}

/** Bytes read per step by readEntriesChunked: big enough for few syscalls, small enough to stream. */
const CHUNK = 256 * 1024;

/**
 * Reads the file from `offset` a chunk at a time, handing each chunk's complete records to
 * `onEntries` (awaited: the caller's backpressure). Returns the offset after the last full record.
 */
export async function readEntriesChunked(
  file: string,
  offset: number,
  onEntries: (e: LogEntry[]) => void | Promise<void>,
): Promise<number> {
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(file, 'r');
  } catch {
    return offset;
  }
  try {
    const { size } = await fh.stat();
    let pos = offset;
    let want = CHUNK;
    while (pos < size) {
      const data = Buffer.allocUnsafe(Math.min(want, size - pos));
      const { bytesRead } = await fh.read(data, 0, data.length, pos);
      if (bytesRead === 0) break;
      const r = parseRecords(data.subarray(0, bytesRead));
      if (r.consumed === 0) {
        // one record (or run of partial records) longer than the chunk: read more at once
        if (pos + bytesRead >= size) break;
        want *= 2;
        continue;
      }
      want = CHUNK;
      pos += r.consumed;
      if (r.entries.length) await onEntries(r.entries);
    }
    return pos;
  } finally {
    await fh.close();
  }
}

/** Parses complete records; `consumed` is the length up to the end of the last full record. */
function parseRecords(data: Buffer): { entries: LogEntry[]; consumed: number } {
  const entries: LogEntry[] = [];
  // a run of P(artial) records: the first one's time, then the pieces
  let partial:
    { stream: 'stdout' | 'stderr'; timeStart: number; timeEnd: number; chunks: Buffer[] } | undefined;
  let start = 0;
  let lastComplete = 0;
  for (;;) {
    const nl = data.indexOf(10, start);
    if (nl < 0) break;
    const lineStart = start;
    start = nl + 1;
    const a = data.indexOf(32, lineStart);
    if (a < 0 || a > nl) continue;
    const b = data.indexOf(32, a + 1);
    if (b < 0 || b > nl) continue;
    const stream = streamAt(data, a + 1, b);
    if (!stream) continue;
    const c = data.indexOf(32, b + 1);
    const tagEnd = c < 0 || c > nl ? nl : c;
    const isPartial = tagEnd - b === 2 && data[b + 1] === 80; // 'P'
    if (isPartial) {
      if (!partial || partial.stream !== stream)
        partial = { stream, timeStart: lineStart, timeEnd: a, chunks: [] };
      partial.chunks.push(data.subarray(tagEnd === nl ? nl : c + 1, nl));
      continue;
    }
    // a record without payload is an empty line
    const bodyStart = tagEnd === nl ? -1 : c + 1;
    if (partial && partial.stream === stream) {
      const body = bodyStart < 0 ? NEWLINE : data.subarray(bodyStart, nl + 1);
      const joined = Buffer.concat([...partial.chunks, body]);
      entries.push(new LogEntry(stream, data, partial.timeStart, partial.timeEnd, 0, 0, joined));
    } else if (bodyStart < 0) entries.push(new LogEntry(stream, data, lineStart, a, 0, 0, NEWLINE));
    else entries.push(new LogEntry(stream, data, lineStart, a, bodyStart, nl + 1));
    partial = undefined;
    lastComplete = start;
  }
  return { entries, consumed: lastComplete };
}

const NEWLINE = Buffer.from('\n');

async function inodeOf(file: string): Promise<number | undefined> {
  try {
    return (await fsp.stat(file)).ino;
  } catch {
    return undefined;
  }
}

export function filterEntries(entries: LogEntry[], o: LogOptions): LogEntry[] {
  let out =
    o.stdout && o.stderr ? entries : entries.filter((e) => (e.stream === 'stdout' ? o.stdout : o.stderr));
  if (o.since !== undefined && o.since > 0) out = out.filter((e) => e.ms / 1000 >= o.since!);
  if (o.until !== undefined && o.until > 0) out = out.filter((e) => e.ms / 1000 <= o.until!);
  if (o.tail !== undefined && o.tail >= 0) out = o.tail === 0 ? [] : out.slice(-o.tail);
  return out;
}

/** Calls `onEntries` with new records as the file grows, until `stop` resolves. */
export async function followEntries(
  file: string,
  offset: number,
  onEntries: (e: LogEntry[]) => void,
  stop: Promise<void>,
): Promise<void> {
  let pos = offset;
  let reading = false;
  let again = false;
  let ino = await inodeOf(file);
  const pump = async () => {
    if (reading) {
      again = true;
      return;
    }
    reading = true;
    do {
      again = false;
      const now = await inodeOf(file);
      if (now !== undefined && ino !== undefined && now !== ino) {
        // Rotated: finish the old file (now `.1`), then start the new one from its beginning.
        if ((await inodeOf(`${file}.1`)) === ino) {
          const rest = await readEntries(`${file}.1`, pos);
          if (rest.entries.length) onEntries(rest.entries);
        }
        pos = 0;
      }
      if (now !== undefined) ino = now;
      const r = await readEntries(file, pos);
      pos = r.offset;
      if (r.entries.length) onEntries(r.entries);
    } while (again);
    reading = false;
  };
  let watcher: ReturnType<typeof watch> | undefined;
  try {
    watcher = watch(file, () => void pump());
  } catch {
    // file not there yet: the timer below still polls
  }
  const timer = setInterval(() => void pump(), 250);
  await pump();
  await stop;
  clearInterval(timer);
  watcher?.close();
  while (reading) await new Promise((r) => setTimeout(r, 10));
  await pump();
}

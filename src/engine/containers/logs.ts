/**
 * Container logs as conmon writes them (k8s-file: `<RFC3339Nano> <stdout|stderr> <F|P> <bytes>`),
 * read back with Docker's options: streams, since/until, tail, timestamps, follow.
 */
import { promises as fsp, watch } from 'node:fs';

export interface LogEntry {
  stream: 'stdout' | 'stderr';
  /** The record's timestamp as written (nanoseconds kept). */
  time: string;
  ms: number;
  data: Buffer;
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
  const entries: LogEntry[] = [];
  let partial: { stream: 'stdout' | 'stderr'; time: string; chunks: Buffer[] } | undefined;
  let start = 0;
  let lastComplete = 0;
  for (;;) {
    const nl = data.indexOf(10, start);
    if (nl < 0) break;
    const rec = parseLine(data.toString('utf8', start, nl));
    const lineEnd = nl + 1;
    start = lineEnd;
    if (!rec) continue;
    const body = Buffer.from(rec.text, 'utf8');
    if (rec.partial) {
      if (!partial || partial.stream !== rec.stream)
        partial = { stream: rec.stream, time: rec.time, chunks: [] };
      partial.chunks.push(body);
      continue;
    }
    const joined = partial && partial.stream === rec.stream;
    const time = joined ? partial!.time : rec.time;
    const payload = Buffer.concat([...(joined ? partial!.chunks : []), body, NEWLINE]);
    partial = undefined;
    entries.push({ stream: rec.stream, time, ms: Date.parse(time), data: payload });
    lastComplete = lineEnd;
  }
  return { entries, offset: offset + lastComplete };
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
  let out = entries.filter((e) => (e.stream === 'stdout' ? o.stdout : o.stderr));
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

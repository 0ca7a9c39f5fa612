/**
 * Several containers' output on one terminal, each line behind a `name  | ` prefix, coloured per
 * service as Docker Compose does.
 */
import type { Client } from '../client/client.js';

const COLORS = [36, 33, 32, 35, 34, 96, 93, 92, 95, 94];

export interface LogPrinter {
  width: number;
  colour: boolean;
  prefix: boolean;
  timestamps?: boolean;
}

export function colourFor(index: number): number {
  return COLORS[index % COLORS.length];
}

export function prefixFor(name: string, colourIdx: number, p: LogPrinter): string {
  if (!p.prefix) return '';
  const text = `${name.padEnd(p.width)}  | `;
  return p.colour ? `\x1b[${colourFor(colourIdx)}m${text}\x1b[0m` : text;
}

/** Turns chunks into prefixed lines; the last partial line waits for its newline (or the end). */
export function lineWriter(
  prefix: string,
  out: NodeJS.WritableStream,
): { write(b: Buffer): void; end(): void } {
  let pending = '';
  return {
    write(b) {
      pending += b.toString('utf8');
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        out.write(prefix + pending.slice(0, nl + 1));
        pending = pending.slice(nl + 1);
      }
    },
    end() {
      if (pending) out.write(prefix + pending + '\n');
      pending = '';
    },
  };
}

/** Streams one container's logs with a prefix; resolves when the stream ends. */
export async function streamLogs(
  client: Client,
  id: string,
  prefix: string,
  o: { follow: boolean; tail?: string; timestamps?: boolean; since?: string; tty: boolean },
  signal?: { closed: boolean; close?: () => void },
): Promise<void> {
  const res = await client.logs(id, {
    follow: o.follow ? 1 : 0,
    stdout: 1,
    stderr: 1,
    tail: o.tail ?? 'all',
    timestamps: o.timestamps ? 1 : 0,
    since: o.since,
  });
  if (signal) signal.close = () => res.stream.destroy();
  const out = lineWriter(prefix, process.stdout);
  const err = lineWriter(prefix, process.stderr);
  await new Promise<void>((resolve) => {
    let buf: Buffer = Buffer.alloc(0);
    res.stream.on('data', (chunk: Buffer) => {
      if (o.tty) {
        out.write(chunk);
        return;
      }
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      while (buf.length >= 8) {
        const size = buf.readUInt32BE(4);
        if (buf.length < 8 + size) break;
        (buf[0] === 2 ? err : out).write(buf.subarray(8, 8 + size));
        buf = buf.subarray(8 + size);
      }
    });
    const done = () => {
      out.end();
      err.end();
      resolve();
    };
    res.stream.on('end', done);
    res.stream.on('close', done);
    res.stream.on('error', done);
  });
}

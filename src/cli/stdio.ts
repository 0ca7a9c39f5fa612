/**
 * Client side of Docker's stdio streams: demultiplexing frames, TTY raw mode and resizes.
 */
import type { Readable, Writable } from 'node:stream';

/** Splits the multiplexed stream into stdout and stderr; resolves when the stream ends. */
export function demux(src: Readable, stdout: Writable, stderr: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0);
    src.on('data', (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      while (buf.length >= 8) {
        const size = buf.readUInt32BE(4);
        if (buf.length < 8 + size) break;
        const payload = buf.subarray(8, 8 + size);
        if (buf[0] === 2 || buf[0] === 3) stderr.write(payload);
        else stdout.write(payload);
        buf = buf.subarray(8 + size);
      }
    });
    src.on('end', () => resolve());
    src.on('close', () => resolve());
    src.on('error', reject);
  });
}

/** Copies a raw (TTY) stream to stdout; resolves when it ends. */
export function copyRaw(src: Readable, out: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    src.on('data', (c: Buffer) => out.write(c));
    src.on('end', () => resolve());
    src.on('close', () => resolve());
    src.on('error', reject);
  });
}

export function terminalSize(): { rows: number; cols: number } | undefined {
  const out = process.stdout;
  if (!out.isTTY) return undefined;
  return { rows: out.rows, cols: out.columns };
}

/**
 * Layer and archive decompression by magic bytes: gzip, zstd, or plain.
 */
import { Decompress as ZstdDecompress } from 'fzstd';
import { PassThrough, type Readable, Transform } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { invalidArgument } from './errors.js';

export type Compression = 'gzip' | 'zstd' | 'none';

export function detectCompression(head: Buffer): Compression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  return 'none';
}

/** A zstd decompressor as a Node Transform (fzstd is pure JS). */
export function createZstdDecompress(): Transform {
  let pushOut: ((chunk: Uint8Array) => void) | undefined;
  const dec = new ZstdDecompress((chunk) => pushOut?.(chunk));
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      pushOut = (c) => this.push(Buffer.from(c.buffer, c.byteOffset, c.byteLength));
      try {
        dec.push(chunk);
        cb();
      } catch (err) {
        cb(invalidArgument(`invalid zstd stream: ${(err as Error).message}`));
      }
    },
    flush(cb) {
      pushOut = (c) => this.push(Buffer.from(c.buffer, c.byteOffset, c.byteLength));
      try {
        dec.push(new Uint8Array(0), true);
        cb();
      } catch (err) {
        cb(invalidArgument(`invalid zstd stream: ${(err as Error).message}`));
      }
    },
  });
}

export function createDecompressor(kind: Compression): Transform {
  if (kind === 'gzip') {
    const gz = createGunzip();
    return gz;
  }
  if (kind === 'zstd') return createZstdDecompress();
  return new PassThrough();
}

/**
 * Peeks at the first bytes of `input` and returns a stream of its decompressed bytes.
 * Decompression errors surface as InvalidArgument on the returned stream.
 */
export async function decompressStream(
  input: Readable,
): Promise<{ stream: Readable; compression: Compression }> {
  const head = await peek(input, 4);
  const compression = detectCompression(head);
  const dec = createDecompressor(compression);
  input.on('error', (err) => dec.destroy(err));
  input.pipe(dec);
  if (compression === 'gzip') {
    const out = new PassThrough();
    dec.on('error', (err) => out.destroy(invalidArgument(`invalid gzip stream: ${err.message}`)));
    dec.pipe(out);
    return { stream: out, compression };
  }
  return { stream: dec, compression };
}

/** Reads at least `n` bytes (or until the end) and puts them back. */
export async function peek(input: Readable, n: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  while (size < n) {
    const chunk = input.read() as Buffer | null;
    if (chunk !== null) {
      chunks.push(chunk);
      size += chunk.length;
      continue;
    }
    if (input.readableEnded || input.destroyed) break;
    const more = await new Promise<boolean>((resolve, reject) => {
      const onReadable = () => done(true);
      const onEnd = () => done(false);
      const onError = (e: Error) => {
        cleanup();
        reject(e);
      };
      const cleanup = () => {
        input.off('readable', onReadable);
        input.off('end', onEnd);
        input.off('error', onError);
      };
      const done = (v: boolean) => {
        cleanup();
        resolve(v);
      };
      input.once('readable', onReadable);
      input.once('end', onEnd);
      input.once('error', onError);
    });
    if (!more) break;
  }
  const head = Buffer.concat(chunks);
  if (head.length) input.unshift(head);
  return head;
}

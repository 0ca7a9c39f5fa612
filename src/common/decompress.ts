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
  source: Readable,
): Promise<{ stream: Readable; compression: Compression }> {
  const { head, stream: input } = await peekStream(source, 4);
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

/**
 * Reads at least `n` bytes of `input` (fewer if it ends first) and returns them together with a
 * stream that yields the whole input, those bytes included.
 */
export function peekStream(input: Readable, n: number): Promise<{ head: Buffer; stream: Readable }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const out = new PassThrough();
    // The caller attaches its consumer a microtask after we resolve; an error emitted in between
    // must not go unheard (the stream stays `errored`, so pipeline() still reports it).
    out.on('error', () => undefined);
    const finish = (ended: boolean) => {
      input.off('data', onData);
      input.off('end', onEnd);
      input.off('error', onError);
      input.pause();
      const head = Buffer.concat(chunks);
      out.write(head);
      input.on('error', (e) => out.destroy(e));
      if (ended) out.end();
      else input.pipe(out);
      resolve({ head, stream: out });
    };
    const onData = (c: Buffer) => {
      chunks.push(c);
      size += c.length;
      if (size >= n) finish(false);
    };
    const onEnd = () => finish(true);
    const onError = (e: Error) => reject(e);
    input.on('data', onData);
    input.once('end', onEnd);
    input.once('error', onError);
  });
}

/** The first `n` bytes of a stream that is read for nothing else. */
export async function peek(input: Readable, n: number): Promise<Buffer> {
  const { head, stream } = await peekStream(input, n);
  stream.destroy();
  input.destroy();
  return head.subarray(0, n);
}

/**
 * Layer and archive decompression by magic bytes: gzip, zstd, or plain.
 *
 * Corrupt or truncated compressed data surfaces as InvalidArgument (`invalid gzip stream: ...`);
 * errors of the input itself pass through unchanged.
 */
import { Decompress as ZstdDecompress } from 'fzstd';
import { PassThrough, pipeline, type Readable, Transform, type TransformCallback } from 'node:stream';
import * as zlib from 'node:zlib';
import { BerthError, invalidArgument } from './errors.js';

export type Compression = 'gzip' | 'zstd' | 'none';

const ZSTD_MAGIC = 0xfd2fb528;
/** Bigger than zlib's 16 KiB default: fewer, larger chunks for the tar reader and file writes. */
const GUNZIP_CHUNK = 128 * 1024;

/** Room in a peeked stream for a few network reads, so a slow consumer does not stall its source at once. */
const PEEKED_BUFFER = 1024 * 1024;

export function detectCompression(head: Buffer): Compression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head.readUInt32LE(0) === ZSTD_MAGIC) return 'zstd';
  return 'none';
}

/** Gunzip whose data errors (zlib's Z_* codes) are InvalidArgument. */
class CheckedGunzip extends zlib.Gunzip {
  constructor() {
    super({ chunkSize: GUNZIP_CHUNK });
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    super._destroy(err, (e?: Error | null) => callback(e ? dataError('gzip', e) : e));
  }
}

function dataError(kind: string, err: Error): Error {
  if (err instanceof BerthError) return err;
  const code = (err as { code?: unknown }).code;
  // zlib reports bad data with Z_* codes; anything else (the input's own error) is passed on.
  if (kind === 'gzip' && !(typeof code === 'string' && code.startsWith('Z_'))) return err;
  return invalidArgument(`invalid ${kind} stream: ${err.message}`);
}

/** A zstd decompressor as a Node Transform (fzstd is pure JS and decompresses block by block). */
export function createZstdDecompress(): Transform {
  let out: Transform | undefined;
  const dec = new ZstdDecompress((chunk) => {
    if (chunk.length > 0) out?.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
  });
  const feed = (t: Transform, chunk: Uint8Array, final: boolean, cb: TransformCallback) => {
    out = t;
    try {
      dec.push(chunk, final);
    } catch (err) {
      cb(dataError('zstd', err as Error));
      return;
    }
    cb();
  };
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      feed(this, chunk, false, cb);
    },
    flush(cb) {
      feed(this, new Uint8Array(0), true, cb);
    },
  });
}

export function createDecompressor(kind: Compression): Transform {
  if (kind === 'gzip') return new CheckedGunzip();
  if (kind === 'zstd') return createZstdDecompress();
  return new PassThrough();
}

/**
 * Peeks at the first bytes of `source` and returns a stream of its decompressed bytes. Destroying the
 * returned stream destroys `source` too.
 */
export async function decompressStream(
  source: Readable,
): Promise<{ stream: Readable; compression: Compression }> {
  const { head, stream: input } = await peekStream(source, 4);
  const compression = detectCompression(head);
  if (compression === 'none') return { stream: input, compression };
  const dec = createDecompressor(compression);
  // Errors reach the consumer through `dec`; pipeline() ties the two streams' lifetimes together.
  pipeline(input, dec, () => undefined);
  return { stream: dec, compression };
}

/**
 * Reads at least `n` bytes of `input` (fewer if it ends first) and returns them together with a
 * stream that yields the whole input, those bytes included. Destroying that stream destroys `input`.
 */
export function peekStream(input: Readable, n: number): Promise<{ head: Buffer; stream: Readable }> {
  return new Promise((resolve, reject) => {
    // A stream that failed or was destroyed before we got here emits nothing more: waiting for its
    // events would wait for ever (a download failing while its consumer was still setting up).
    if (input.errored) return reject(input.errored);
    if (input.destroyed) return reject(prematureClose());
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (ended: boolean) => {
      input.off('data', onData);
      input.off('end', onEnd);
      input.off('error', onError);
      input.off('close', onClose);
      input.pause();
      const head = Buffer.concat(chunks);
      const out = new PassThrough({ highWaterMark: PEEKED_BUFFER });
      // The caller attaches its consumer a microtask after we resolve; an error emitted in between
      // must not go unheard (the stream stays `errored`, so pipeline() still reports it).
      out.on('error', () => undefined);
      if (head.length > 0) out.write(head);
      if (ended) out.end();
      else pipeline(input, out, () => undefined);
      resolve({ head, stream: out });
    };
    const onData = (c: Buffer) => {
      chunks.push(c);
      size += c.length;
      if (size >= n) finish(false);
    };
    const onEnd = () => finish(true);
    const onError = (e: Error) => reject(e);
    const onClose = () => reject(input.errored ?? prematureClose());
    input.on('data', onData);
    input.once('end', onEnd);
    input.once('error', onError);
    input.once('close', onClose);
  });
}

function prematureClose(): Error {
  return Object.assign(new Error('the stream closed before it ended'), {
    code: 'ERR_STREAM_PREMATURE_CLOSE',
  });
}

/** The first `n` bytes of a stream that is read for nothing else. */
export async function peek(input: Readable, n: number): Promise<Buffer> {
  const { head, stream } = await peekStream(input, n);
  stream.destroy();
  input.destroy();
  return head.subarray(0, n);
}

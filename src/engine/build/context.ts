/**
 * The build context: the request body (a tar, plain or compressed, or a bare Dockerfile) streamed
 * to a private directory with the layer extractor's safety rules (no entry outside the directory,
 * no writes through symlinks), so memory stays bounded whatever the context's size.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { pipeline, type Readable, Transform } from 'node:stream';
import { decompressStream, peekStream } from '../../common/decompress.js';
import { extractLayer } from '../../common/safetar.js';

export interface BuildContext {
  dir: string;
  /** Set when the body was a Dockerfile rather than a tar. */
  dockerfileOnly: boolean;
}

/** A tar has "ustar" at offset 257; gzip/zstd are unwrapped first. */
export async function receiveContext(body: Readable, dir: string): Promise<BuildContext> {
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  const { stream: plain } = await decompressStream(body);
  const peeked = await peekStream(plain, 512);
  const isTar = peeked.head.length >= 262 && peeked.head.toString('latin1', 257, 262) === 'ustar';
  const emptyTar = peeked.head.length === 512 && peeked.head.every((b) => b === 0);
  if (!isTar && !emptyTar && peeked.head.length > 0) {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of peeked.stream) {
      size += (c as Buffer).length;
      if (size > 10 * 1024 * 1024) throw new Error('the Dockerfile is larger than 10 MB');
      chunks.push(c as Buffer);
    }
    await fsp.writeFile(path.join(dir, 'Dockerfile'), Buffer.concat(chunks));
    return { dir, dockerfileOnly: true };
  }
  if (peeked.head.length === 0) return { dir, dockerfileOnly: false };
  const padded = endBlocks();
  pipeline(peeked.stream, padded, () => undefined);
  await extractLayer(padded, dir);
  return { dir, dockerfileOnly: false };
}

/**
 * The docker CLI's `-f -` context ends right after the last entry's data, without its padding or
 * the end-of-archive blocks (Go's tar reader accepts that); this supplies them.
 */
function endBlocks(): Transform {
  let size = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      size += chunk.length;
      cb(null, chunk);
    },
    flush(cb) {
      cb(null, Buffer.alloc(((512 - (size % 512)) % 512) + 1024));
    },
  });
}

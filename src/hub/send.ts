/**
 * Sending a stored blob's bytes as a response body, the hub's hot path. A read stream would
 * allocate a fresh buffer for every 64 KiB read (a gigabyte served is a gigabyte of garbage, and
 * V8 answers external allocations with full collections) and hand each read to the thread pool.
 * Here each response reads large chunks into buffers that are recycled between responses: one
 * chunk is being written to the socket while the next is read, and a buffer goes back to the pool
 * only once the socket has taken all of its bytes.
 */
import type { FileHandle } from 'node:fs/promises';
import type * as http from 'node:http';
import { log } from '../common/log.js';

const CHUNK = 512 * 1024;
/** Free buffers kept between responses (CHUNK each). */
const POOL_MAX = 16;
/** Chunks of one response in flight: one on the socket, one being read. */
const DEPTH = 2;

const pool: Buffer[] = [];

function take(): Buffer {
  return pool.pop() ?? Buffer.allocUnsafeSlow(CHUNK);
}

function give(b: Buffer): void {
  if (pool.length < POOL_MAX) pool.push(b);
}

/**
 * Resolves true once the socket has taken all of `chunk` (its buffer is free again), false when the
 * response closed first (the buffer may still be referenced and is never reused).
 */
function write(res: http.ServerResponse, chunk: Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    let settled = false;
    const onClose = () => {
      if (settled) return;
      settled = true;
      resolve(false);
    };
    res.once('close', onClose);
    res.write(chunk, (err) => {
      res.off('close', onClose);
      if (settled) return;
      settled = true;
      resolve(!err);
    });
  });
}

/**
 * Writes `length` bytes of `file` from `start` as the body of `res` (its headers, with that
 * Content-Length, already set) and ends it. A file shorter than promised, a read error or a
 * client gone away end the connection, never a short body that looks complete.
 */
export async function sendFileRange(
  res: http.ServerResponse,
  file: FileHandle,
  start: number,
  length: number,
): Promise<void> {
  const inflight: { done: Promise<boolean>; buf: Buffer }[] = [];
  const end = start + length;
  let pos = start;
  try {
    while (pos < end) {
      if (inflight.length >= DEPTH) {
        const w = inflight.shift()!;
        if (!(await w.done)) return;
        give(w.buf);
      }
      if (res.destroyed) return;
      const buf = take();
      let n: number;
      try {
        ({ bytesRead: n } = await file.read(buf, 0, Math.min(CHUNK, end - pos), pos));
      } catch (err) {
        give(buf);
        throw err;
      }
      if (n === 0) throw new Error(`blob file ended ${end - pos} bytes early`);
      pos += n;
      inflight.push({ done: write(res, buf.subarray(0, n)), buf });
    }
    for (const w of inflight.splice(0)) if (await w.done) give(w.buf);
    res.end();
  } catch (err) {
    log.warn('hub: blob send failed', { error: String(err) });
    res.destroy();
  } finally {
    // Buffers of writes still pending when we stopped are left to the garbage collector.
    await file.close().catch(() => undefined);
  }
}

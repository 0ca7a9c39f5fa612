/**
 * A Writable onto a file that gathers chunks into batches of at least `batch` bytes and writes each
 * batch with one writev(2): a big file arriving in network-sized chunks (64 KiB) costs a couple of
 * thread-pool round trips per megabyte instead of sixteen, and each round trip is a context switch
 * or two on a busy machine.
 */
import * as fs from 'node:fs';
import { Writable } from 'node:stream';

export interface FileWriterOptions {
  /** Bytes gathered before a write (default 512 KiB); the last batch may be smaller. */
  batch?: number;
  /** Bytes that may queue while a write is in flight (default 1 MiB). */
  highWaterMark?: number;
  /** Sees every chunk, in order, before it is written; throwing fails the stream. */
  inspect?: (chunk: Buffer) => void;
  /** fsync the file before 'finish' (its bytes are on disk when the stream ends cleanly). */
  sync?: boolean;
}

type Target = { fd: number } | { path: string; flags: string; mode: number };

export class FileWriter extends Writable {
  private fd: number | undefined;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** A descriptor we opened is ours to close; one we were given stays open. */
  private readonly owned: boolean;

  constructor(
    private readonly target: Target,
    private readonly opts: FileWriterOptions = {},
  ) {
    super({ highWaterMark: opts.highWaterMark ?? 1024 * 1024 });
    this.owned = !('fd' in target);
    if ('fd' in target) this.fd = target.fd;
  }

  override _construct(cb: (err?: Error | null) => void): void {
    const t = this.target;
    if ('fd' in t) return cb();
    fs.open(t.path, t.flags, t.mode, (err, fd) => {
      this.fd = fd;
      cb(err);
    });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.writeAll([chunk], cb);
  }

  override _writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    this.writeAll(
      chunks.map((c) => c.chunk),
      cb,
    );
  }

  private writeAll(bufs: Buffer[], cb: (err?: Error | null) => void): void {
    for (const b of bufs) {
      if (this.opts.inspect)
        try {
          this.opts.inspect(b);
        } catch (err) {
          cb(err as Error);
          return;
        }
      this.pending.push(b);
      this.pendingBytes += b.length;
    }
    if (this.pendingBytes < (this.opts.batch ?? 512 * 1024)) return cb();
    this.flush(cb);
  }

  private flush(cb: (err?: Error | null) => void): void {
    const bufs = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    if (!bufs.length) return cb();
    writevFully(this.fd!, bufs, cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.flush((err) => {
      if (err || !this.opts.sync) return cb(err);
      fs.fsync(this.fd!, (e) => cb(e));
    });
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (!this.owned || this.fd === undefined) return cb(err);
    const fd = this.fd;
    this.fd = undefined;
    fs.close(fd, (e) => cb(err ?? e));
  }
}

/** writev(2) until every byte is written (a file may take fewer bytes than asked). */
function writevFully(fd: number, bufs: Buffer[], cb: (err?: Error | null) => void): void {
  fs.writev(fd, bufs, (err, n) => {
    if (err) return cb(err);
    let rest = bufs;
    while (rest.length && n >= rest[0].length) {
      n -= rest[0].length;
      rest = rest.slice(1);
    }
    if (!rest.length) return cb();
    writevFully(fd, [rest[0].subarray(n), ...rest.slice(1)], cb);
  });
}

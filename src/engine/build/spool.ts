/**
 * A spool for a stream read once and maybe replayed later: its chunks are kept in memory up to a
 * limit, and beyond it the whole stream goes to a file (written in batches of about 1 MiB at their
 * offsets, a few in flight), so memory stays bounded whatever the size. A fresh file costs the
 * kernel block allocation on every build; most contexts never need it.
 */
import { createReadStream, promises as fsp } from 'node:fs';
import { Readable } from 'node:stream';

const WRITE_BATCH = 1024 * 1024;
const IN_FLIGHT = 4;

export class Spool {
  private chunks: Buffer[] = [];
  private size = 0;
  private fd?: Promise<fsp.FileHandle>;
  private batch: Buffer[] = [];
  private batchSize = 0;
  private position = 0;
  private readonly inFlight = new Set<Promise<void>>();
  private failed?: Error;

  constructor(
    private readonly file: string,
    private readonly memoryLimit: number,
  ) {}

  /**
   * Takes a chunk (kept, not copied). Returns a promise when the spool wants the writer to wait
   * for it before the next chunk, nothing when it can take the next one at once.
   */
  write(chunk: Buffer): Promise<void> | undefined {
    if (this.failed) return Promise.reject(this.failed);
    if (!this.fd && this.size + chunk.length <= this.memoryLimit) {
      this.chunks.push(chunk);
      this.size += chunk.length;
      return undefined;
    }
    if (!this.fd) {
      this.fd = fsp.open(this.file, 'wx', 0o600);
      this.batch = this.chunks;
      this.batchSize = this.size;
      this.chunks = [];
    }
    this.batch.push(chunk);
    this.batchSize += chunk.length;
    this.size += chunk.length;
    if (this.batchSize < WRITE_BATCH) return undefined;
    this.flushBatch();
    return this.inFlight.size >= IN_FLIGHT ? this.room() : undefined;
  }

  private async room(): Promise<void> {
    while (this.inFlight.size >= IN_FLIGHT) await Promise.race(this.inFlight);
    if (this.failed) throw this.failed;
  }

  /** Waits for every write; the spool then holds the whole stream. */
  async end(): Promise<void> {
    if (this.batchSize) this.flushBatch();
    await Promise.all(this.inFlight);
    if (this.failed) throw this.failed;
  }

  /** Replays what was written. */
  read(): Readable {
    return this.fd ? createReadStream(this.file, { highWaterMark: WRITE_BATCH }) : Readable.from(this.chunks);
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.inFlight);
    const fd = await this.fd?.catch(() => undefined);
    await fd?.close();
    this.chunks = [];
  }

  private flushBatch(): void {
    const bufs = this.batch;
    const at = this.position;
    this.position += this.batchSize;
    this.batch = [];
    this.batchSize = 0;
    const w = writeFully(this.fd!, bufs, at).catch((err: unknown) => {
      this.failed ??= err instanceof Error ? err : new Error(String(err));
    });
    this.inFlight.add(w);
    void w.then(() => this.inFlight.delete(w));
  }
}

async function writeFully(fdp: Promise<fsp.FileHandle>, bufs: Buffer[], position: number): Promise<void> {
  const fd = await fdp;
  const total = bufs.reduce((n, b) => n + b.length, 0);
  const done = (await fd.writev(bufs, position)).bytesWritten;
  if (done === total) return;
  const rest = Buffer.concat(bufs).subarray(done);
  for (let off = 0; off < rest.length; )
    off += (await fd.write(rest, off, rest.length - off, position + done + off)).bytesWritten;
}

import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { syncDir } from '../../common/atomic.js';
import { FileWriter } from '../../common/filewriter.js';
import { type Digest, digestHex, isDigest } from '../../common/digest.js';
import { errnoCode, invalidArgument, notFound } from '../../common/errors.js';
import type { BlobInfo, ContentStore, Expected } from './content.js';

/** Blob bytes gathered into one write. */
const INGEST_BATCH = 1024 * 1024;

export class FileContentStore implements ContentStore {
  private readonly blobsDir: string;
  private readonly ingestDir: string;

  constructor(readonly root: string) {
    this.blobsDir = path.join(root, 'blobs', 'sha256');
    this.ingestDir = path.join(root, 'ingest');
  }

  async init(): Promise<void> {
    await fsp.mkdir(this.blobsDir, { recursive: true });
    // Partial ingests from a crash are never committed, so they can simply go.
    await fsp.rm(this.ingestDir, { recursive: true, force: true });
    await fsp.mkdir(this.ingestDir, { recursive: true });
  }

  path(digest: Digest): string {
    return path.join(this.blobsDir, digestHex(digest));
  }

  async has(digest: Digest): Promise<boolean> {
    try {
      await fsp.access(this.path(digest));
      return true;
    } catch {
      return false;
    }
  }

  async info(digest: Digest): Promise<BlobInfo> {
    try {
      const st = await fsp.stat(this.path(digest));
      return { digest, size: st.size };
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') throw notFound(`content ${digest}: not found`);
      throw err;
    }
  }

  async read(digest: Digest): Promise<Buffer> {
    try {
      return await fsp.readFile(this.path(digest));
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') throw notFound(`content ${digest}: not found`);
      throw err;
    }
  }

  createReadStream(digest: Digest, opts?: { start?: number; end?: number }): Readable {
    return createReadStream(this.path(digest), opts);
  }

  async ingest(source: Readable | Buffer, expected: Expected = {}): Promise<BlobInfo> {
    if (Buffer.isBuffer(source)) return this.ingestBuffer(source, expected);
    if (expected.digest && (await this.has(expected.digest))) {
      // Already stored: still drain the source so the caller's pipeline completes.
      await verifyStream(source, expected);
      return this.info(expected.digest);
    }
    const tmp = path.join(this.ingestDir, randomBytes(12).toString('hex'));
    const hash = createHash('sha256');
    let size = 0;
    const inspect = (chunk: Buffer) => {
      size += chunk.length;
      if (expected.size !== undefined && size > expected.size)
        throw invalidArgument(`size mismatch: expected ${expected.size} bytes, got more`);
      hash.update(chunk);
    };
    try {
      // Synced when the source ends, so the commit only has to rename it.
      const out = new FileWriter(
        { path: tmp, flags: 'wx', mode: 0o644 },
        { inspect, sync: true, batch: INGEST_BATCH, highWaterMark: INGEST_BATCH },
      );
      await pipeline(source, out);
      return await this.commit(tmp, `sha256:${hash.digest('hex')}`, size, expected);
    } finally {
      await fsp.rm(tmp, { force: true });
    }
  }

  private async ingestBuffer(data: Buffer, expected: Expected): Promise<BlobInfo> {
    const digest: Digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
    checkExpected(digest, data.length, expected);
    if (await this.has(digest)) return { digest, size: data.length };
    const tmp = path.join(this.ingestDir, randomBytes(12).toString('hex'));
    try {
      const fh = await fsp.open(tmp, 'wx', 0o644);
      try {
        await fh.writeFile(data);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fsp.rename(tmp, this.path(digest));
      await syncDir(this.blobsDir);
    } finally {
      await fsp.rm(tmp, { force: true });
    }
    return { digest, size: data.length };
  }

  /** `tmp` is complete and on disk (IngestWriter synced it): check it, then file it under its digest. */
  private async commit(tmp: string, digest: Digest, size: number, expected: Expected): Promise<BlobInfo> {
    checkExpected(digest, size, expected);
    // rename over an identical blob committed concurrently is harmless: same bytes.
    await fsp.rename(tmp, this.path(digest));
    await syncDir(this.blobsDir);
    return { digest, size };
  }

  async delete(digest: Digest): Promise<void> {
    try {
      await fsp.unlink(this.path(digest));
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') throw notFound(`content ${digest}: not found`);
      throw err;
    }
  }

  async list(): Promise<BlobInfo[]> {
    const out: BlobInfo[] = [];
    for (const name of await fsp.readdir(this.blobsDir)) {
      const digest = `sha256:${name}`;
      if (!isDigest(digest)) continue;
      const st = await fsp.stat(path.join(this.blobsDir, name));
      out.push({ digest, size: st.size });
    }
    return out;
  }
}

function checkExpected(digest: Digest, size: number, expected: Expected): void {
  if (expected.size !== undefined && size !== expected.size) {
    throw invalidArgument(`size mismatch: expected ${expected.size} bytes, got ${size}`);
  }
  if (expected.digest !== undefined && digest !== expected.digest) {
    throw invalidArgument(`digest mismatch: expected ${expected.digest}, got ${digest}`);
  }
}

async function verifyStream(source: Readable, expected: Expected): Promise<void> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of source) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  checkExpected(`sha256:${hash.digest('hex')}`, size, expected);
}

/**
 * Content: a content-addressable blob store (sha256).
 *
 * Lifecycle of a blob: ingest (bytes stream into ingest/<random>, hashed and counted on the way)
 * -> commit (size and digest checked against what the caller expected, fsync, rename to
 * blobs/sha256/<hex>) -> read -> delete. A blob that exists is complete and verified; a crash
 * leaves at most files under ingest/, removed at start-up.
 */
import type { Readable } from 'node:stream';
import type { Digest } from '../../common/digest.js';

export interface BlobInfo {
  digest: Digest;
  size: number;
}

export interface Expected {
  digest?: Digest;
  size?: number;
}

export interface ContentStore {
  init(): Promise<void>;
  has(digest: Digest): Promise<boolean>;
  /** NotFound when absent. */
  info(digest: Digest): Promise<BlobInfo>;
  /** Path of a committed blob, for readers that want a file (e.g. range reads). */
  path(digest: Digest): string;
  read(digest: Digest): Promise<Buffer>;
  createReadStream(digest: Digest, opts?: { start?: number; end?: number }): Readable;
  /**
   * Streams `source` into the store. Throws InvalidArgument when the bytes do not match
   * `expected` (nothing is kept). Safe to call concurrently for the same blob.
   */
  ingest(source: Readable | Buffer, expected?: Expected): Promise<BlobInfo>;
  delete(digest: Digest): Promise<void>;
  list(): Promise<BlobInfo[]>;
}

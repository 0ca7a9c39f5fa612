/**
 * Images: the local image cache.
 *
 * An image is identified by its config digest (Docker's image ID). Its bytes live in the content
 * store (config, layer blobs, manifest) and its file systems in the snapshotter (one layer per chain
 * id). This room keeps the records that tie them together and the names (tags and digests) that
 * point at images.
 *
 * Lifecycle: add (config + layers already in content and snapshots, from load/import/pull/commit/build)
 * -> tag/untag -> remove (last name gone and not in use: record, snapshots and unshared blobs deleted).
 */
import type { Digest } from '../../common/digest.js';
import type { Descriptor, ImageConfig } from './manifest.js';

export interface ImageRecord {
  id: Digest;
  /** The platform manifest this image came from, when it has one (pulled, loaded OCI). */
  manifestDigest?: Digest;
  /** Layer blobs, bottom first, each with the diff id it unpacks to and its unpacked size. */
  layers: (Descriptor & { diffId: Digest; unpackedSize?: number })[];
  /** Chain id of the top layer; null for an image with no layers. */
  chainId: Digest | null;
  /** Unpacked size of all layers. */
  size: number;
  /** Parent image id (builder/commit), for `images -a` and history. */
  parent?: Digest;
  /** When the record was added (ms since epoch). */
  addedAt: number;
}

export interface Image {
  record: ImageRecord;
  config: ImageConfig;
  /** Full references, e.g. docker.io/library/busybox:latest */
  repoTags: string[];
  /** Full references by digest, e.g. docker.io/library/busybox@sha256:… */
  repoDigests: string[];
}

export interface ImageFilters {
  dangling?: boolean;
  /** Patterns on the familiar reference (`busybox`, `busybox:1*`, `docker.io/library/*`). */
  reference?: string[];
  /** `key` or `key=value`. */
  label?: string[];
  /** Image names or ids: keep images created before / since that one. */
  before?: string;
  since?: string;
}

export interface RemoveResult {
  Untagged?: string;
  Deleted?: string;
}

/** A new image to register. The config blob and layer blobs must already be in the content store. */
export interface NewImage {
  config: Buffer;
  layers: (Descriptor & { diffId: Digest })[];
  manifestDigest?: Digest;
  parent?: Digest;
}

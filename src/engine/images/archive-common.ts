/**
 * What `load`, `save` and `import` share: the rooms they work on and a few small helpers.
 */
import type { Compression } from '../../common/decompress.js';
import type { Digest } from '../../common/digest.js';
import { type BerthError, invalidArgument } from '../../common/errors.js';
import type { ContentStore } from '../content/content.js';
import type { EventBus } from '../events/events.js';
import type { Snapshotter } from '../snapshots/snapshots.js';
import { MediaType } from './manifest.js';
import type { ImageStore } from './store.js';

export interface ArchiveDeps {
  content: ContentStore;
  snapshots: Snapshotter;
  images: ImageStore;
  events?: EventBus;
}

/** Upper bound for any JSON document read from an archive (manifest.json, index.json, configs, …). */
export const MAX_JSON = 4 * 1024 * 1024;

export function badArchive(msg: string): BerthError {
  return invalidArgument(`invalid archive: ${msg}`);
}

/** The media type Docker records for a layer blob stored with this compression. */
export function layerMediaType(kind: Compression): string {
  if (kind === 'gzip') return MediaType.dockerLayerGzip;
  if (kind === 'zstd') return MediaType.ociLayerZstd;
  return MediaType.dockerLayer;
}

/** Reads a small JSON blob from content, refusing oversized ones before reading them. */
export async function readSmallBlob(content: ContentStore, digest: Digest, what: string): Promise<Buffer> {
  let size: number;
  try {
    size = (await content.info(digest)).size;
  } catch {
    throw badArchive(`${what} ${digest} not found`);
  }
  if (size > MAX_JSON) throw badArchive(`${what} ${digest} is too large (${size} bytes)`);
  return content.read(digest);
}

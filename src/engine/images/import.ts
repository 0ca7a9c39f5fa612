/**
 * `docker import`: a root file system tarball (plain, gzip or zstd) becomes a one-layer image.
 * The tarball is stored as it came (its media type says its compression) and unpacked once.
 */
import { type Readable } from 'node:stream';
import { detectCompression, peekStream } from '../../common/decompress.js';
import type { Digest } from '../../common/digest.js';
import { BerthError, invalidArgument } from '../../common/errors.js';
import { parseReference } from '../../common/reference.js';
import { type ArchiveDeps, layerMediaType } from './archive-common.js';
import { applyChanges } from './changes.js';
import { type ContainerConfig, hostPlatform, type ImageConfig, type Platform } from './manifest.js';

export interface ImportOptions {
  /** Dockerfile instructions (`--change`): CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR. */
  changes?: string[];
  /** The history comment (`-m`); Docker's default is `Imported from <source>`. */
  message?: string;
  /** A tag reference for the new image. */
  tag?: string;
  platform?: Platform;
  /** Where the tarball came from, for the default comment; `-` (the request body) when not given. */
  source?: string;
}

export async function importImage(
  deps: ArchiveDeps,
  input: Readable,
  opts: ImportOptions = {},
): Promise<Digest> {
  // Everything the caller said is checked before the tarball is stored. On a bad option the input is
  // still drained, so that a client uploading it (an HTTP request body) gets the error, not a reset.
  let containerConfig: ContainerConfig;
  try {
    if (opts.tag && parseReference(opts.tag).digest)
      throw invalidArgument('refusing to create a tag with a digest reference');
    containerConfig = applyChanges({}, opts.changes ?? []);
  } catch (err) {
    input.resume();
    throw err;
  }
  const platform = opts.platform ?? hostPlatform();

  const { head, stream } = await peekStream(input, 4);
  if (head.length === 0) throw invalidArgument('import: the tarball is empty');
  const blob = await deps.content.ingest(stream);
  let layer;
  try {
    layer = await deps.snapshots.apply(null, deps.content.createReadStream(blob.digest));
  } catch (err) {
    if (err instanceof BerthError) throw invalidArgument(`import: ${err.message}`);
    throw err;
  }
  const created = new Date().toISOString();
  const comment = opts.message || `Imported from ${opts.source ?? '-'}`;
  const config: ImageConfig = {
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    created,
    config: containerConfig,
    rootfs: { type: 'layers', diff_ids: [layer.diffId] },
    // Docker records the message twice: as the image's comment and as its one history entry's.
    comment,
    history: [{ created, comment }],
  };
  const configBuf = Buffer.from(JSON.stringify(config));
  await deps.content.ingest(configBuf);
  const id = await deps.images.add({
    config: configBuf,
    layers: [
      {
        mediaType: layerMediaType(detectCompression(head)),
        digest: blob.digest,
        size: blob.size,
        diffId: layer.diffId,
      },
    ],
  });
  if (opts.tag) await deps.images.setTag(opts.tag, id);
  deps.events?.publish('image', 'import', id);
  return id;
}

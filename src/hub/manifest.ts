/**
 * What the hub checks in a pushed manifest. A registry stores artifacts of any type, so this is
 * deliberately looser than the image store's parser: descriptors must be well formed and the
 * manifest's kind known (image manifest or index, OCI or Docker), but config and layer media types
 * are the pusher's business.
 */
import { type Digest, isDigest } from '../common/digest.js';
import { indexTypes, manifestTypes } from '../engine/images/manifest.js';
import type { Descriptor } from './storage.js';

export class ManifestError extends Error {}

export interface PushedManifest {
  kind: 'manifest' | 'index';
  mediaType: string;
  /** Blobs (manifest: config + layers) or manifests (index) that must already be in the repository. */
  references: Descriptor[];
  subject?: Descriptor;
  artifactType?: string;
  configMediaType?: string;
  annotations?: Record<string, string>;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function descriptor(v: unknown, where: string): Descriptor {
  if (!isObject(v)) throw new ManifestError(`${where}: not a descriptor`);
  const { mediaType, digest, size } = v;
  if (typeof mediaType !== 'string' || !/^[\w.+-]+\/[\w.+-]+$/.test(mediaType))
    throw new ManifestError(`${where}: invalid mediaType`);
  if (typeof digest !== 'string' || !isDigest(digest))
    throw new ManifestError(`${where}: invalid or unsupported digest`);
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0)
    throw new ManifestError(`${where}: invalid size`);
  const d: Descriptor = { mediaType, digest: digest as Digest, size };
  if (typeof v.artifactType === 'string') d.artifactType = v.artifactType;
  if (isObject(v.annotations)) d.annotations = v.annotations as Record<string, string>;
  return d;
}

/** Validates a manifest body; `contentType` is the request's Content-Type. */
export function checkPushedManifest(body: Buffer, contentType: string | undefined): PushedManifest {
  let v: unknown;
  try {
    v = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new ManifestError(`not JSON: ${(err as Error).message}`);
  }
  if (!isObject(v) || v.schemaVersion !== 2) throw new ManifestError('schemaVersion must be 2');
  const declared = typeof v.mediaType === 'string' ? v.mediaType : undefined;
  if (declared && contentType && contentType !== declared && contentType !== 'application/json')
    throw new ManifestError(`mediaType ${declared} does not match Content-Type ${contentType}`);
  const mt = declared ?? contentType;
  const kind =
    (mt && indexTypes.has(mt)) || (!mt && Array.isArray(v.manifests))
      ? 'index'
      : (mt && manifestTypes.has(mt)) || (!mt && isObject(v.config))
        ? 'manifest'
        : undefined;
  if (!kind) throw new ManifestError(`unsupported manifest media type ${JSON.stringify(mt ?? '')}`);
  const out: PushedManifest = {
    kind,
    mediaType:
      mt && mt !== 'application/json'
        ? mt
        : kind === 'index'
          ? 'application/vnd.oci.image.index.v1+json'
          : 'application/vnd.oci.image.manifest.v1+json',
    references: [],
  };
  if (kind === 'index') {
    if (!Array.isArray(v.manifests)) throw new ManifestError('an index needs manifests');
    out.references = v.manifests.map((m, i) => descriptor(m, `manifests[${i}]`));
  } else {
    const config = descriptor(v.config, 'config');
    if (!Array.isArray(v.layers)) throw new ManifestError('a manifest needs layers');
    out.references = [config, ...v.layers.map((l, i) => descriptor(l, `layers[${i}]`))];
    out.configMediaType = config.mediaType;
  }
  if (v.subject !== undefined) out.subject = descriptor(v.subject, 'subject');
  if (v.artifactType !== undefined) {
    if (typeof v.artifactType !== 'string') throw new ManifestError('artifactType must be a string');
    out.artifactType = v.artifactType;
  }
  if (isObject(v.annotations)) out.annotations = v.annotations as Record<string, string>;
  return out;
}

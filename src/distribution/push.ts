/**
 * Pushing an image: for each tag, every layer is checked on the registry (HEAD), mounted from
 * another repository of the same registry that has it, or uploaded (one PUT, or PATCH chunks for
 * big blobs); then the config and the manifest. Layers go as they are stored (a compressed blob
 * is never recompressed), and an image pulled with its manifest keeps that manifest's digest.
 */
import { type Digest, isDigest, shortId } from '../common/digest.js';
import { notFound } from '../common/errors.js';
import { fullName, type ImageReference, parseReference, refString } from '../common/reference.js';
import type { ContentStore } from '../engine/content/content.js';
import type { EventBus } from '../engine/events/events.js';
import type { Image } from '../engine/images/images.js';
import { MediaType, parseManifest } from '../engine/images/manifest.js';
import type { ImageStore } from '../engine/images/store.js';
import type { Credentials } from './auth.js';
import { progressBar } from './progress.js';
import { endpointsFor, type Progress, type RegistryConfig } from './pull.js';
import { RegistryClient } from './registry.js';

export interface PushDeps {
  content: ContentStore;
  images: ImageStore;
  events?: EventBus;
}

const PARALLEL_UPLOADS = 5;

export interface PushPlan {
  ref: ImageReference;
  tags: { tag: string; image: Image }[];
}

/**
 * Checks what a push names before any progress is streamed: `name` with `tag`, or every local
 * tag of the repository when neither names one (Docker's `push --all-tags`).
 */
export function planPush(images: ImageStore, name: string, tag?: string): PushPlan {
  const parsed = parseReference(name);
  if (parsed.digest) throw notFound(`cannot push a digest reference: ${name}`);
  const ref: ImageReference = { domain: parsed.domain, path: parsed.path };
  const wanted = tag || parsed.tag;
  if (wanted) {
    const image = images.tryResolve(refString({ ...ref, tag: wanted }));
    if (!image)
      throw notFound(`An image does not exist locally with the tag: ${name}${tag ? `:${tag}` : ''}`);
    return { ref, tags: [{ tag: wanted, image }] };
  }
  const prefix = `${fullName(ref)}:`;
  const tags: PushPlan['tags'] = [];
  for (const image of images.list({ all: true }))
    for (const t of image.repoTags)
      if (t.startsWith(prefix)) tags.push({ tag: t.slice(prefix.length), image });
  if (!tags.length) throw notFound(`An image does not exist locally with the tag: ${name}`);
  tags.sort((a, b) => a.tag.localeCompare(b.tag));
  return { ref, tags };
}

export async function push(
  deps: PushDeps,
  plan: PushPlan,
  cfg: RegistryConfig,
  credentials: Credentials,
  onProgress: (p: Progress) => void,
): Promise<{ tag: string; digest: Digest; size: number }[]> {
  const { ref } = plan;
  // Pushes go to the registry itself, never to a mirror.
  const eps = endpointsFor(ref, { ...cfg, mirrors: [] });
  const ep = eps[eps.length - 1];
  onProgress({ status: `The push refers to repository [${fullName(ref)}]` });
  const mountSources = new Map<Digest, string[]>();
  for (const { image } of plan.tags)
    for (const l of image.record.layers)
      mountSources.set(l.digest, mountCandidates(deps.images, ref, l.digest));
  const extraPullRepos = [...new Set([...mountSources.values()].flat())].slice(0, 10);
  const client = new RegistryClient(ep, { credentials, actions: ['pull', 'push'], extraPullRepos });
  // One challenge answered up front, so the uploads that follow carry the token from the start.
  await client.ensureAuth();
  const done = new Set<Digest>();
  const results: { tag: string; digest: Digest; size: number }[] = [];
  for (const { tag, image } of plan.tags) {
    const layers = image.record.layers;
    for (const l of layers) onProgress({ status: 'Preparing', progressDetail: {}, id: shortId(l.diffId) });
    layers.forEach((l, i) => {
      if (i >= PARALLEL_UPLOADS) onProgress({ status: 'Waiting', progressDetail: {}, id: shortId(l.diffId) });
    });
    let next = 0;
    const worker = async () => {
      while (next < layers.length) {
        const l = layers[next++];
        const id = shortId(l.diffId);
        if (done.has(l.digest) || (await client.hasBlob(l.digest))) {
          done.add(l.digest);
          onProgress({ status: 'Layer already exists', progressDetail: {}, id });
          continue;
        }
        let last = 0;
        const result = await client.uploadBlob(
          l.digest,
          l.size,
          (start, end) => deps.content.createReadStream(l.digest, { start, end: end - 1 }),
          {
            mountFrom: mountSources.get(l.digest),
            onBytes: (n) => {
              if (n - last < 512 * 1024 && n !== l.size) return;
              last = n;
              onProgress({
                status: 'Pushing',
                progressDetail: { current: n, total: l.size },
                progress: progressBar(n, l.size),
                id,
              });
            },
          },
        );
        done.add(l.digest);
        onProgress({
          status: typeof result === 'object' ? `Mounted from ${result.mountedFrom}` : 'Pushed',
          progressDetail: {},
          id,
        });
      }
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL_UPLOADS, layers.length) }, worker));
    const config = await deps.content.read(image.record.id);
    if (!done.has(image.record.id) && !(await client.hasBlob(image.record.id)))
      await client.putBlob(image.record.id, config);
    done.add(image.record.id);
    const manifest = await manifestFor(deps.content, image, config.length);
    const digest = await client.putManifest(tag, manifest.body, manifest.mediaType);
    await deps.images.setDigestRef(fullName(ref), digest, image.record.id);
    deps.events?.publish('image', 'push', image.record.id, { name: refString({ ...ref, tag }) });
    onProgress({ status: `${tag}: digest: ${digest} size: ${manifest.body.length}` });
    onProgress({ progressDetail: {}, aux: { Tag: tag, Digest: digest, Size: manifest.body.length } });
    results.push({ tag, digest, size: manifest.body.length });
  }
  return results;
}

/** Repositories on the same registry whose local names say they hold this blob. */
function mountCandidates(images: ImageStore, ref: ImageReference, blob: Digest): string[] {
  const out = new Set<string>();
  for (const img of images.list({ all: true })) {
    if (!img.record.layers.some((l) => l.digest === blob)) continue;
    for (const n of [...img.repoDigests, ...img.repoTags]) {
      const r = parseReference(n);
      if (r.domain === ref.domain && r.path !== ref.path) out.add(r.path);
    }
  }
  return [...out].slice(0, 3);
}

/**
 * The manifest to push: the one the image came with when content still has it and it describes
 * exactly this image (so the digest is kept), else a new one over the stored blobs.
 */
async function manifestFor(
  content: ContentStore,
  image: Image,
  configSize: number,
): Promise<{ body: Buffer; mediaType: string }> {
  const rec = image.record;
  if (rec.manifestDigest && isDigest(rec.manifestDigest) && (await content.has(rec.manifestDigest))) {
    const body = await content.read(rec.manifestDigest);
    try {
      const m = parseManifest(body);
      const same =
        m.config.digest === rec.id &&
        m.layers.length === rec.layers.length &&
        m.layers.every((l, i) => l.digest === rec.layers[i].digest);
      if (same) return { body, mediaType: m.mediaType ?? MediaType.ociManifest };
    } catch {
      // not a usable manifest: build one
    }
  }
  const oci = rec.layers.some((l) => l.mediaType.startsWith('application/vnd.oci.'));
  const mediaType = oci ? MediaType.ociManifest : MediaType.dockerManifest;
  const manifest = {
    schemaVersion: 2,
    mediaType,
    config: {
      mediaType: oci ? MediaType.ociConfig : MediaType.dockerConfig,
      size: configSize,
      digest: rec.id,
    },
    layers: rec.layers.map((l) => ({ mediaType: l.mediaType, size: l.size, digest: l.digest })),
  };
  return { body: Buffer.from(JSON.stringify(manifest, null, 3)), mediaType };
}

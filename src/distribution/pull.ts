/**
 * Pulling an image: resolve the reference on the registry (mirrors first for docker.io), choose the
 * platform's manifest, then fetch the config and layers in parallel, each streamed into the content
 * store (verified) and unpacked at the same time.
 */
import { type Digest, shortId } from '../common/digest.js';
import { BerthError, invalidArgument, isKind } from '../common/errors.js';
import { log } from '../common/log.js';
import {
  familiarString,
  fullName,
  type ImageReference,
  parseReference,
  refString,
  withDefaultTag,
} from '../common/reference.js';
import type { ContentStore } from '../engine/content/content.js';
import type { EventBus } from '../engine/events/events.js';
import { ingestEntry } from '../engine/images/layers.js';
import {
  hostPlatform,
  manifestKind,
  parseImageConfig,
  parseIndex,
  parseJson,
  parseManifest,
  type Platform,
  platformString,
  selectManifest,
} from '../engine/images/manifest.js';
import type { ImageStore } from '../engine/images/store.js';
import { chainIdOf, type Snapshotter, type StagedLayer } from '../engine/snapshots/snapshots.js';
import { progressBar } from './progress.js';
import { type Endpoint, RegistryClient } from './registry.js';
import type { Credentials } from './auth.js';
import { isInsecure, isLoopback, type RegistryConfig } from './hosts.js';

export interface PullDeps {
  content: ContentStore;
  snapshots: Snapshotter;
  images: ImageStore;
  events?: EventBus;
}

export type { RegistryConfig } from './hosts.js';

export type Progress = Record<string, unknown>;

const PROGRESS_BYTES = 512 * 1024;
const PROGRESS_MS = 100;
const PARALLEL_LAYERS = 3;

/** Where a reference can be pulled from, in order: mirrors for docker.io, then the registry itself. */
export function endpointsFor(ref: ImageReference, cfg: RegistryConfig): Endpoint[] {
  const out: Endpoint[] = [];
  if (ref.domain === 'docker.io') {
    for (const m of cfg.mirrors) out.push({ base: m.replace(/\/+$/, ''), repo: ref.path });
    out.push({ base: 'https://registry-1.docker.io', repo: ref.path });
    return out;
  }
  if (isLoopback(ref.domain)) out.push({ base: `http://${ref.domain}`, repo: ref.path });
  else if (isInsecure(ref.domain, cfg.insecure))
    out.push({ base: `https://${ref.domain}`, repo: ref.path, httpFallback: true });
  else out.push({ base: `https://${ref.domain}`, repo: ref.path });
  return out;
}

export interface ResolvedPull {
  ref: ImageReference;
  client: RegistryClient;
  /** The digest the reference resolved to (an index's, when the registry has one). */
  topDigest: Digest;
  manifestDigest: Digest;
  /** The platform manifest as the registry sent it (kept byte for byte, so push keeps its digest). */
  manifestBody: Buffer;
  manifest: ReturnType<typeof parseManifest>;
}

/** What a reference names on the registry, before any platform is chosen. */
export interface ResolvedTop {
  ref: ImageReference;
  client: RegistryClient;
  body: Buffer;
  mediaType: string;
  digest: Digest;
}

/**
 * Finds the registry that answers for a reference (mirrors first for docker.io) and fetches the
 * manifest or index it names. Credentials go to the reference's own registry, never to a mirror.
 */
export async function resolveTop(
  refString_: string,
  cfg: RegistryConfig,
  credentials: Credentials = {},
): Promise<ResolvedTop> {
  const ref = withDefaultTag(parseReference(refString_));
  const reference = ref.digest ?? ref.tag!;
  let lastErr: unknown;
  let notFoundErr: unknown;
  const eps = endpointsFor(ref, cfg);
  for (const [i, ep] of eps.entries()) {
    const client = new RegistryClient(ep, { credentials: i === eps.length - 1 ? credentials : undefined });
    try {
      const top = await client.getManifest(reference);
      return { ref, client, ...top };
    } catch (err) {
      lastErr = err;
      if (isKind(err, 'NotFound')) notFoundErr ??= err;
      if (err instanceof BerthError && err.kind === 'InvalidArgument') throw err;
      log.debug('pull endpoint failed', { base: ep.base, error: String(err) });
    }
  }
  const name = familiarString(ref);
  // A registry that answered "not found" says more than one that could not be reached.
  if (notFoundErr) lastErr = notFoundErr;
  if (isKind(lastErr, 'NotFound'))
    throw new BerthError('NotFound', `manifest for ${name} not found: ${(lastErr as Error).message}`);
  if (lastErr instanceof BerthError && (lastErr.kind === 'Unauthorized' || lastErr.kind === 'Forbidden'))
    throw new BerthError('NotFound', lastErr.message);
  throw new BerthError(
    'Unavailable',
    `Error response from registry: ${(lastErr as Error)?.message ?? 'no registry reachable'} (pulling ${name})`,
  );
}

/** Resolves before any progress is streamed, so unknown tags are plain HTTP errors. */
export async function resolvePull(
  refString_: string,
  cfg: RegistryConfig,
  platform: Platform = hostPlatform(),
  credentials: Credentials = {},
): Promise<ResolvedPull> {
  const top = await resolveTop(refString_, cfg, credentials);
  const { ref, client } = top;
  let manifestDigest = top.digest;
  let body = top.body;
  if (manifestKind(parseJson(top.body, 'manifest'), top.mediaType) === 'index') {
    const chosen = selectManifest(parseIndex(top.body), platform);
    if (!chosen) throw notFoundPlatform(ref, platform);
    const m = await client.getManifest(chosen.digest);
    if (manifestKind(parseJson(m.body, 'manifest'), m.mediaType) === 'index')
      throw invalidArgument(`manifest ${chosen.digest} is an index inside an index`);
    manifestDigest = m.digest;
    body = m.body;
  }
  const manifest = parseManifest(body);
  return { ref, client, topDigest: top.digest, manifestDigest, manifestBody: body, manifest };
}

function notFoundPlatform(ref: ImageReference, p: Platform): BerthError {
  return new BerthError(
    'NotFound',
    `no matching manifest for ${platformString(p)} in the manifest list entries (${familiarString(ref)})`,
  );
}

/** Downloads what is missing and registers the image; progress in Docker's JSON-message shape. */
export async function pull(
  deps: PullDeps,
  r: ResolvedPull,
  onProgress: (p: Progress) => void,
): Promise<Digest> {
  const { ref, client, manifest } = r;
  onProgress({
    status: `Pulling from ${ref.path.startsWith('library/') && ref.domain === 'docker.io' ? ref.path : ref.path}`,
    id: ref.tag ?? ref.digest,
  });
  const existing = deps.images.tryResolve(refString(ref));
  const configBuf = (await deps.content.has(manifest.config.digest))
    ? await deps.content.read(manifest.config.digest)
    : await (async () => {
        const stream = client.resumableBlob(manifest.config.digest, manifest.config.size);
        await deps.content.ingest(stream, { digest: manifest.config.digest, size: manifest.config.size });
        return deps.content.read(manifest.config.digest);
      })();
  const config = parseImageConfig(configBuf);
  const diffIds = config.rootfs.diff_ids;
  if (diffIds.length !== manifest.layers.length)
    throw invalidArgument('manifest and image config disagree on the number of layers');
  const chains: Digest[] = [];
  for (const d of diffIds) chains.push(chainIdOf(chains.length ? chains[chains.length - 1] : null, d));
  const staged: (StagedLayer | undefined)[] = [];
  // A layer counts as present when both its snapshot and its blob are: the same files under another
  // blob (say, recompressed by another tool) still need that blob, or the image could not be pushed.
  const hasBlob = await Promise.all(manifest.layers.map((l) => deps.content.has(l.digest)));
  const present = manifest.layers.map((_, i) => deps.snapshots.has(chains[i]) && hasBlob[i]);
  const todo = manifest.layers.map((l, i) => ({ l, i })).filter(({ i }) => !present[i]);
  for (const { l, i } of manifest.layers.map((l, i) => ({ l, i })))
    if (present[i]) onProgress({ status: 'Already exists', progressDetail: {}, id: shortId(l.digest) });
    else onProgress({ status: 'Pulling fs layer', progressDetail: {}, id: shortId(l.digest) });
  // Layer i is filed as soon as it and every layer below it are here, while later ones still
  // download: the commits (a few fsyncs each) overlap the transfer instead of following it.
  const downloaded = manifest.layers.map((_, i) => present[i]);
  let filed = 0;
  const filedHere: Digest[] = [];
  const fileLayer = async (i: number) => {
    const l = manifest.layers[i];
    const id = shortId(l.digest);
    const parent = i === 0 ? null : chains[i - 1];
    if (!deps.snapshots.has(chains[i])) {
      onProgress({
        status: 'Extracting',
        progressDetail: { current: l.size, total: l.size },
        progress: progressBar(l.size, l.size),
        id,
      });
      const s = staged[i];
      if (s && s.diffId === diffIds[i]) await deps.snapshots.commitStaged(s, parent);
      else
        await deps.snapshots.apply(parent, deps.content.createReadStream(l.digest), {
          expectedDiffId: diffIds[i],
        });
      filedHere.push(chains[i]);
      onProgress({ status: 'Pull complete', progressDetail: {}, id });
    } else if (!present[i]) onProgress({ status: 'Pull complete', progressDetail: {}, id });
  };
  let filing: Promise<void> = Promise.resolve();
  const fileReady = () => {
    filing = filing.then(async () => {
      while (filed < chains.length && downloaded[filed]) await fileLayer(filed++);
    });
    filing.catch(() => undefined); // awaited below
  };
  let failed = false;
  let next = 0;
  const worker = async () => {
    while (next < todo.length && !failed) {
      const { l, i } = todo[next++];
      const id = shortId(l.digest);
      onProgress({ status: 'Waiting', progressDetail: {}, id });
      try {
        staged[i] = await fetchLayer(deps, client, l.digest, l.size, !deps.snapshots.has(chains[i]), (n) =>
          onProgress({
            status: 'Downloading',
            progressDetail: { current: n, total: l.size },
            progress: progressBar(n, l.size),
            id,
          }),
        );
      } catch (err) {
        failed = true;
        throw err;
      }
      onProgress({ status: 'Verifying Checksum', progressDetail: {}, id });
      onProgress({ status: 'Download complete', progressDetail: {}, id });
      downloaded[i] = true;
      fileReady();
    }
  };
  try {
    // Every download settles (and no commit is running) before staged layers are discarded.
    const results = await Promise.allSettled(
      Array.from({ length: Math.min(PARALLEL_LAYERS, todo.length) }, worker),
    );
    fileReady();
    const failure = results.find((x): x is PromiseRejectedResult => x.status === 'rejected');
    // The manifest is stored while the last layers are filed.
    const storing = failure ? undefined : deps.content.ingest(r.manifestBody, { digest: r.manifestDigest });
    storing?.catch(() => undefined); // awaited below
    const settled = await filing.then(
      () => undefined,
      (err: unknown) => ({ err }),
    );
    if (failure || settled) {
      // A failed pull leaves no layer behind that only it would have used, as it leaves no image.
      for (const c of filedHere.reverse())
        if (!deps.images.usesChain(c))
          await deps.snapshots
            .remove(c)
            .catch((err: unknown) =>
              log.warn('pull: could not remove a layer of a failed pull', { layer: c, error: String(err) }),
            );
      throw failure ? failure.reason : settled!.err;
    }
    await storing;
  } finally {
    for (const s of staged) if (s) await deps.snapshots.discardStaged(s);
  }
  const id = await deps.images.add({
    config: configBuf,
    layers: manifest.layers.map((l, i) => ({ ...l, diffId: diffIds[i] })),
    manifestDigest: r.manifestDigest,
  });
  if (ref.tag) await deps.images.setTag(refString({ ...ref, digest: undefined }), id);
  await deps.images.setDigestRef(fullName(ref), r.topDigest, id);
  deps.events?.publish('image', 'pull', id, { name: familiarString(ref) });
  onProgress({ status: `Digest: ${r.topDigest}` });
  const upToDate = existing?.record.id === id;
  onProgress({
    status: `Status: ${upToDate ? 'Image is up to date' : 'Downloaded newer image'} for ${familiarString(ref)}`,
  });
  return id;
}

/** Downloads one layer into content (verified), unpacking as it streams unless its snapshot exists. */
async function fetchLayer(
  deps: PullDeps,
  client: RegistryClient,
  digest: Digest,
  size: number,
  unpack: boolean,
  onBytes: (n: number) => void,
): Promise<StagedLayer | undefined> {
  if (await deps.content.has(digest)) return undefined;
  const stream = client.resumableBlob(digest, size);
  let n = 0;
  let last = 0;
  let lastAt = 0;
  stream.on('data', (c: Buffer) => {
    n += c.length;
    // As Docker: every 512 KiB at most ten times a second, and the last byte always.
    if (n === size || (n - last > PROGRESS_BYTES && Date.now() - lastAt >= PROGRESS_MS)) {
      last = n;
      lastAt = Date.now();
      onBytes(n);
    }
  });
  if (!unpack) {
    await deps.content.ingest(stream, { digest, size });
    return undefined;
  }
  const r = await ingestEntry(deps, stream, { digest, size });
  return r.staged;
}

/** `pull --all-tags`: every tag of the repository, one after the other. */
export async function pullAllTags(
  deps: PullDeps,
  name: string,
  cfg: RegistryConfig,
  platform: Platform | undefined,
  credentials: Credentials,
  onProgress: (p: Progress) => void,
): Promise<void> {
  const base = parseReference(name);
  let tags: string[] | undefined;
  let lastErr: unknown;
  const eps = endpointsFor(base, cfg);
  for (const [i, ep] of eps.entries()) {
    const client = new RegistryClient(ep, { credentials: i === eps.length - 1 ? credentials : undefined });
    try {
      tags = await client.listTags();
      break;
    } catch (err) {
      lastErr = err;
    }
  }
  if (!tags)
    throw isKind(lastErr, 'NotFound')
      ? new BerthError(
          'NotFound',
          `repository ${familiarString(base)} not found: ${(lastErr as Error).message}`,
        )
      : lastErr;
  if (!tags.length) throw new BerthError('NotFound', `repository ${familiarString(base)} has no tags`);
  for (const tag of tags.sort()) {
    const r = await resolvePull(refString({ ...base, tag }), cfg, platform, credentials);
    await pull(deps, r, onProgress);
  }
}

/**
 * `docker load`: docker save archives (legacy `<id>/layer.tar` ones and Docker 25+'s OCI-layout based
 * ones) and OCI image layouts as tar, plain or compressed.
 *
 * The archive is read once: metadata (manifest.json, index.json, repositories, oci-layout) into memory,
 * every other file straight into the content store, layer tars unpacked (staged) while they stream.
 * Then: resolve (which images, their configs, layer order; all validation) -> unpack (snapshots, in
 * chain order) -> register -> tag. Nothing is registered or tagged unless every image in the archive
 * resolved and unpacked; blobs already ingested stay for the garbage collector.
 */
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { decompressStream, detectCompression, peek } from '../../common/decompress.js';
import { type Digest, digestHex } from '../../common/digest.js';
import { BerthError, invalidArgument } from '../../common/errors.js';
import {
  familiarString,
  type ImageReference,
  parseReference,
  refString,
  withDefaultTag,
} from '../../common/reference.js';
import { cleanEntryName } from '../../common/safetar.js';
import type { ContentStore } from '../content/content.js';
import { chainIdOf, type StagedLayer } from '../snapshots/snapshots.js';
import { type ArchiveDeps, badArchive, layerMediaType, MAX_JSON, readSmallBlob } from './archive-common.js';
import type { NewImage } from './images.js';
import { ingestEntry } from './layers.js';
import {
  type Descriptor,
  hostPlatform,
  type ImageConfig,
  indexTypes,
  manifestKind,
  parseImageConfig,
  parseIndex,
  parseJson,
  parseManifest,
  type Platform,
  platformString,
  selectManifest,
} from './manifest.js';
import type { ImageStore } from './store.js';

export interface LoadResult {
  /** Familiar tags (`busybox:1.38.0-musl`) and, for images loaded without a name, their ids. */
  loaded: string[];
  /** Docker's output lines in order: `Loaded image: X`, `Loaded image ID: sha256:…` and rename notices. */
  messages: string[];
}

const METADATA_FILES = new Set(['manifest.json', 'index.json', 'repositories', 'oci-layout']);
const BLOB_PATH = /^blobs\/sha256\/([a-f0-9]{64})$/;
/** An OCI `ref.name` that is only a tag (no repository): the image name must come from elsewhere. */
const BARE_TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const ANN_IMAGE_NAME = 'io.containerd.image.name';
const ANN_REF_NAME = 'org.opencontainers.image.ref.name';

interface ArchiveContents {
  /** Small metadata files kept in memory. */
  meta: Map<string, Buffer>;
  /** Every other regular file (and link), ingested into content: path -> digest. */
  blobs: Map<string, Digest>;
  /** Files that looked like layers, unpacked while they streamed in: blob digest -> staged layer. */
  staged: Map<Digest, StagedLayer>;
}

/** One image found in an archive, validated and ready to unpack. */
interface Candidate {
  config: Buffer;
  configDigest: Digest;
  parsed: ImageConfig;
  layers: Descriptor[];
  manifestDigest?: Digest;
  /** Full tag references (docker.io/library/busybox:1.38.0-musl). */
  tags: string[];
}

function safeName(name: string, what: string): string {
  if (name.startsWith('/')) throw badArchive(`unsafe ${what} ${JSON.stringify(name)}`);
  try {
    return cleanEntryName(name);
  } catch {
    throw badArchive(`unsafe ${what} ${JSON.stringify(name)}`);
  }
}

/** Reads the archive once: metadata into memory, everything else straight into the content store. */
async function readArchive(deps: ArchiveDeps, input: Readable): Promise<ArchiveContents> {
  const meta = new Map<string, Buffer>();
  const blobs = new Map<string, Digest>();
  const staged = new Map<Digest, StagedLayer>();
  const links = new Map<string, string>();
  const extract = tar.extract();
  // The pipeline reports its errors; tar-stream may emit one more after the pipeline has settled.
  extract.on('error', () => undefined);
  extract.on('entry', (header, source, next) => {
    const entry = source as unknown as Readable;
    // Its errors fail the whole read through the pipeline below; none may go unheard meanwhile.
    entry.on('error', () => undefined);
    handle().then(
      () => next(),
      (err: unknown) => {
        entry.resume();
        next(err as Error);
      },
    );
    async function handle(): Promise<void> {
      const name = safeName(header.name, 'path');
      if (header.type === 'symlink' || header.type === 'link') {
        // Legacy archives share a layer between images through links; they only alias paths here.
        const target = header.linkname ?? '';
        const dir = header.type === 'symlink' ? name.split('/').slice(0, -1).join('/') : '';
        links.set(name, safeName(dir && !target.startsWith('/') ? `${dir}/${target}` : target, 'link'));
        entry.resume();
        return;
      }
      if (header.type !== 'file' && header.type !== 'contiguous-file') {
        entry.resume();
        return;
      }
      if (METADATA_FILES.has(name)) {
        if (header.size > MAX_JSON) throw badArchive(`${name} is too large (${header.size} bytes)`);
        const chunks: Buffer[] = [];
        for await (const c of entry) chunks.push(c as Buffer);
        meta.set(name, Buffer.concat(chunks));
        return;
      }
      const m = BLOB_PATH.exec(name);
      const expected = m ? { digest: `sha256:${m[1]}` as Digest, size: header.size } : { size: header.size };
      try {
        const r = await ingestEntry(deps, entry, expected);
        blobs.set(name, r.digest);
        if (r.staged) {
          if (staged.has(r.digest)) await deps.snapshots.discardStaged(r.staged);
          else staged.set(r.digest, r.staged);
        }
      } catch (err) {
        if (err instanceof BerthError) throw badArchive(`${name}: ${err.message}`);
        throw err;
      }
    }
  });
  try {
    const { stream } = await decompressStream(input);
    await pipeline(stream, extract);
  } catch (err) {
    await discardAll(deps, staged);
    throw readError(err);
  }
  for (const [from, to] of links) {
    const d = blobs.get(to) ?? blobs.get(links.get(to) ?? '');
    if (d) blobs.set(from, d);
  }
  if (meta.size === 0 && blobs.size === 0) throw badArchive('empty or not a tar archive');
  return { meta, blobs, staged };
}

function readError(err: unknown): BerthError {
  const msg = (err as Error).message ?? String(err);
  if (err instanceof BerthError && msg.startsWith('invalid archive:')) return err;
  if (/unexpected end/i.test(msg)) return badArchive(`archive is truncated (${msg})`);
  return badArchive(msg);
}

async function discardAll(deps: ArchiveDeps, staged: Map<Digest, StagedLayer>): Promise<void> {
  for (const s of staged.values()) await deps.snapshots.discardStaged(s).catch(() => undefined);
  staged.clear();
}

/** A file of the archive by the path an archive's JSON names it with. */
function fileAt(a: ArchiveContents, p: unknown): Digest | undefined {
  return typeof p === 'string' ? a.blobs.get(safeName(p, 'path')) : undefined;
}

async function layerDescriptor(content: ContentStore, digest: Digest): Promise<Descriptor> {
  const info = await content.info(digest);
  const head = await peek(content.createReadStream(digest, { start: 0, end: 3 }), 4);
  return { mediaType: layerMediaType(detectCompression(head)), digest, size: info.size };
}

/** Validates a name an archive gives an image; returns its full tag reference. */
function tagReference(name: string, where: string): string {
  let ref: ImageReference;
  try {
    ref = parseReference(name);
  } catch (err) {
    throw badArchive(`${where}: ${(err as Error).message} (${JSON.stringify(name)})`);
  }
  if (ref.digest) throw badArchive(`${where}: ${JSON.stringify(name)} is not a tag`);
  return refString(withDefaultTag(ref));
}

async function dockerCandidates(deps: ArchiveDeps, a: ArchiveContents): Promise<Candidate[]> {
  const v = parseJson(a.meta.get('manifest.json')!, 'manifest.json');
  if (!Array.isArray(v)) throw badArchive('manifest.json must be a list of images');
  if (v.length === 0) throw badArchive('manifest.json lists no images');
  const out: Candidate[] = [];
  for (const [i, item] of v.entries()) {
    const e = (typeof item === 'object' && item !== null ? item : {}) as Record<string, unknown>;
    if (typeof e.Config !== 'string' || !Array.isArray(e.Layers))
      throw badArchive(`manifest.json entry ${i} needs Config and Layers`);
    if (e.RepoTags != null && !Array.isArray(e.RepoTags))
      throw badArchive(`manifest.json entry ${i}: RepoTags must be a list`);
    const configDigest = fileAt(a, e.Config);
    if (!configDigest) throw badArchive(`config ${JSON.stringify(e.Config)} not found`);
    const config = await readSmallBlob(deps.content, configDigest, 'config');
    const parsed = parseImageConfig(config);
    if (parsed.rootfs.diff_ids.length !== e.Layers.length)
      throw badArchive(
        `image ${i} has ${e.Layers.length} layers but its config lists ${parsed.rootfs.diff_ids.length}`,
      );
    const layers: Descriptor[] = [];
    for (const l of e.Layers) {
      const d = fileAt(a, l);
      if (!d) throw badArchive(`layer ${JSON.stringify(l)} not found`);
      layers.push(await layerDescriptor(deps.content, d));
    }
    const tags = ((e.RepoTags ?? []) as unknown[]).map((t) => {
      if (typeof t !== 'string') throw badArchive(`manifest.json entry ${i}: RepoTags must be strings`);
      return tagReference(t, 'manifest.json');
    });
    out.push({ config, configDigest, parsed, layers, tags });
  }
  return out;
}

async function ociCandidates(
  deps: ArchiveDeps,
  a: ArchiveContents,
  platform: Platform,
): Promise<Candidate[]> {
  const index = parseIndex(a.meta.get('index.json')!);
  if (index.manifests.length === 0) throw badArchive('index.json lists no images');
  const out: Candidate[] = [];
  for (const top of index.manifests) {
    const manifestDesc = await resolveManifest(deps.content, a, top, platform);
    if (!manifestDesc) continue;
    const manifest = parseManifest(await readBlob(deps.content, a, manifestDesc, 'manifest'));
    const config = await readBlob(deps.content, a, manifest.config, 'config');
    const parsed = parseImageConfig(config);
    if (parsed.rootfs.diff_ids.length !== manifest.layers.length)
      throw badArchive(`manifest ${manifestDesc.digest} and its config disagree on the number of layers`);
    for (const l of manifest.layers) {
      if (!inArchive(a, l.digest)) throw badArchive(`layer ${l.digest} not found`);
      const { size } = await deps.content.info(l.digest);
      if (size !== l.size) throw badArchive(`layer ${l.digest} has size ${size}, manifest says ${l.size}`);
    }
    const name = nameFromAnnotations(top.annotations ?? {});
    out.push({
      config,
      configDigest: manifest.config.digest,
      parsed,
      layers: manifest.layers,
      manifestDigest: manifestDesc.digest,
      tags: name ? [name] : [],
    });
  }
  if (out.length === 0) throw badArchive(`no image for platform ${platformString(platform)} in index.json`);
  return out;
}

/**
 * The image name of an OCI index entry: containerd's full name, else `ref.name` when it is a full
 * reference. A bare tag in `ref.name` completes a containerd name that has none, and alone names nothing.
 */
function nameFromAnnotations(ann: Record<string, string>): string | undefined {
  const imageName = ann[ANN_IMAGE_NAME];
  const refName = ann[ANN_REF_NAME];
  const bareTag = refName !== undefined && BARE_TAG.test(refName) ? refName : undefined;
  if (imageName) {
    let ref: ImageReference;
    try {
      ref = parseReference(imageName);
    } catch {
      throw badArchive(`index.json: invalid image name ${JSON.stringify(imageName)}`);
    }
    if (ref.digest && !ref.tag) return undefined;
    return refString({ ...ref, digest: undefined, tag: ref.tag ?? bareTag ?? 'latest' });
  }
  if (!refName || bareTag) return undefined;
  try {
    const ref = parseReference(refName);
    return ref.digest ? undefined : refString(withDefaultTag(ref));
  } catch {
    // ref.name may be any string the OCI grammar allows; one that is no reference names nothing
    return undefined;
  }
}

/** Whether the archive holds the blob under its OCI layout path. */
function inArchive(a: ArchiveContents, digest: Digest): boolean {
  return a.blobs.get(`blobs/sha256/${digestHex(digest)}`) === digest;
}

async function readBlob(
  content: ContentStore,
  a: ArchiveContents,
  d: Descriptor,
  what: string,
): Promise<Buffer> {
  if (!inArchive(a, d.digest)) throw badArchive(`${what} ${d.digest} not found`);
  const data = await readSmallBlob(content, d.digest, what);
  if (data.length !== d.size)
    throw badArchive(`${what} ${d.digest} has size ${data.length}, expected ${d.size}`);
  return data;
}

async function resolveManifest(
  content: ContentStore,
  a: ArchiveContents,
  desc: Descriptor,
  platform: Platform,
  depth = 0,
): Promise<Descriptor | undefined> {
  if (depth > 4) throw badArchive('image indexes nested too deeply');
  const raw = await readBlob(content, a, desc, 'manifest');
  const kind = manifestKind(parseJson(raw, 'manifest'), desc.mediaType);
  if (kind === 'manifest') return desc;
  const idx = parseIndex(raw);
  const chosen = selectManifest(idx, platform);
  if (chosen) return chosen;
  for (const m of idx.manifests)
    if (indexTypes.has(m.mediaType)) {
      const r = await resolveManifest(content, a, m, platform, depth + 1);
      if (r) return r;
    }
  return undefined;
}

/** The same image named twice (two tags in an index, repeated manifest.json entries) is loaded once. */
function mergeCandidates(list: Candidate[]): Candidate[] {
  const byId = new Map<Digest, Candidate>();
  for (const c of list) {
    const seen = byId.get(c.configDigest);
    if (!seen) byId.set(c.configDigest, { ...c, tags: [...new Set(c.tags)] });
    else for (const t of c.tags) if (!seen.tags.includes(t)) seen.tags.push(t);
  }
  return [...byId.values()];
}

/** Makes every layer of a candidate exist in the snapshotter, reusing what streamed in staged. */
async function unpack(
  deps: ArchiveDeps,
  c: Candidate,
  staged: Map<Digest, StagedLayer>,
): Promise<NewImage['layers']> {
  let parent: Digest | null = null;
  const layers: NewImage['layers'] = [];
  for (const [i, l] of c.layers.entries()) {
    const diffId = c.parsed.rootfs.diff_ids[i];
    const chain = chainIdOf(parent, diffId);
    const pre = staged.get(l.digest);
    if (!deps.snapshots.has(chain) && pre?.diffId === diffId) {
      await deps.snapshots.commitStaged(pre, parent);
      staged.delete(l.digest);
    } else if (!deps.snapshots.has(chain)) {
      try {
        await deps.snapshots.apply(parent, deps.content.createReadStream(l.digest), {
          expectedDiffId: diffId,
        });
      } catch (err) {
        if (err instanceof BerthError) throw invalidArgument(`layer ${l.digest}: ${err.message}`);
        throw err;
      }
    }
    layers.push({ ...l, diffId });
    parent = chain;
  }
  return layers;
}

/**
 * A view of `input` whose destruction (a bad archive stops the read) does not destroy `input` but
 * drains it, so that a client uploading the archive (an HTTP request body) gets the error, not a reset.
 */
function drainOnError(input: Readable): Readable {
  const view = new PassThrough();
  input.on('error', (err) => view.destroy(err));
  view.on('close', () => {
    if (input.readableEnded) return;
    input.unpipe(view);
    input.resume();
  });
  return input.pipe(view);
}

/** The image a full tag reference points at now, if any. */
function tagOwner(images: ImageStore, fullTag: string): Digest | undefined {
  return images.list({ all: true }).find((img) => img.repoTags.includes(fullTag))?.record.id;
}

export async function loadImages(
  deps: ArchiveDeps,
  input: Readable,
  opts: { platform?: Platform } = {},
): Promise<LoadResult> {
  const a = await readArchive(deps, drainOnError(input));
  let candidates: Candidate[];
  const ready: NewImage[] = [];
  try {
    if (a.meta.has('manifest.json')) candidates = await dockerCandidates(deps, a);
    else if (a.meta.has('index.json'))
      candidates = await ociCandidates(deps, a, opts.platform ?? hostPlatform());
    else throw badArchive('manifest.json not found');
    candidates = mergeCandidates(candidates);
    for (const c of candidates)
      ready.push({
        config: c.config,
        layers: await unpack(deps, c, a.staged),
        manifestDigest: c.manifestDigest,
      });
  } finally {
    await discardAll(deps, a.staged);
  }
  const ids: Digest[] = [];
  for (const img of ready) ids.push(await deps.images.add(img));
  const loaded: string[] = [];
  const messages: string[] = [];
  for (const [i, c] of candidates.entries()) {
    const id = ids[i];
    for (const t of c.tags) {
      const name = familiarString(parseReference(t));
      const previous = tagOwner(deps.images, t);
      if (previous && previous !== id)
        messages.push(
          `The image ${name} already exists, renaming the old one with ID ${previous} to empty string`,
        );
      await deps.images.setTag(t, id);
      loaded.push(name);
      messages.push(`Loaded image: ${name}`);
    }
    if (c.tags.length === 0) {
      loaded.push(id);
      messages.push(`Loaded image ID: ${id}`);
    }
    deps.events?.publish('image', 'load', id);
  }
  return { loaded, messages };
}

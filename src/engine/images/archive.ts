/**
 * Image archives: `load` (docker save archives, legacy and OCI-layout based, and OCI layouts as tar),
 * `save` (Docker 25+'s combined format, readable by old and new docker load and by skopeo) and
 * `import` (a root file system tarball becomes a one-layer image).
 */
import { type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import {
  createDecompressor,
  decompressStream,
  detectCompression,
  peek,
  peekStream,
} from '../../common/decompress.js';
import { type Digest, digestHex, sha256Digest } from '../../common/digest.js';
import { BerthError, invalidArgument } from '../../common/errors.js';
import { familiarString, parseReference, withDefaultTag } from '../../common/reference.js';
import { cleanEntryName } from '../../common/safetar.js';
import type { ContentStore } from '../content/content.js';
import type { EventBus } from '../events/events.js';
import { chainIdOf, type Snapshotter, type StagedLayer } from '../snapshots/snapshots.js';
import { applyChanges } from './changes.js';
import { ingestEntry } from './layers.js';
import type { Image, NewImage } from './images.js';
import {
  type Descriptor,
  hostPlatform,
  type ImageConfig,
  type ImageManifest,
  indexTypes,
  manifestKind,
  MediaType,
  parseImageConfig,
  parseIndex,
  parseJson,
  parseManifest,
  type Platform,
  platformString,
  selectManifest,
} from './manifest.js';
import type { ImageStore } from './store.js';

export interface ArchiveDeps {
  content: ContentStore;
  snapshots: Snapshotter;
  images: ImageStore;
  events?: EventBus;
}

const MAX_JSON = 4 * 1024 * 1024;
const METADATA_FILES = new Set(['manifest.json', 'index.json', 'repositories', 'oci-layout']);

function badArchive(msg: string): BerthError {
  return invalidArgument(`invalid archive: ${msg}`);
}

interface ArchiveContents {
  /** Small metadata files kept in memory. */
  meta: Map<string, Buffer>;
  /** Every other regular file, ingested into content: path -> digest. */
  blobs: Map<string, Digest>;
  /** Files that looked like layers, unpacked while they streamed in: blob digest -> staged layer. */
  staged: Map<Digest, StagedLayer>;
}

/** Reads the archive once: metadata into memory, everything else straight into the content store. */
async function readArchive(deps: ArchiveDeps, input: Readable): Promise<ArchiveContents> {
  const { stream } = await decompressStream(input);
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
      let name: string;
      try {
        name = cleanEntryName(header.name);
      } catch {
        throw badArchive(`unsafe path ${JSON.stringify(header.name)}`);
      }
      if (header.type === 'symlink' || header.type === 'link') {
        const base = header.type === 'symlink' ? name.split('/').slice(0, -1).join('/') : '';
        try {
          links.set(name, cleanEntryName(base ? `${base}/${header.linkname}` : header.linkname));
        } catch {
          throw badArchive(`unsafe link ${JSON.stringify(header.name)}`);
        }
        entry.resume();
        return;
      }
      if (header.type !== 'file' && header.type !== 'contiguous-file') {
        entry.resume();
        return;
      }
      if (METADATA_FILES.has(name)) {
        if (header.size > MAX_JSON) throw badArchive(`${name} is too large`);
        const chunks: Buffer[] = [];
        for await (const c of entry) chunks.push(c as Buffer);
        meta.set(name, Buffer.concat(chunks));
        return;
      }
      const m = /^blobs\/sha256\/([a-f0-9]{64})$/.exec(name);
      const expected = m ? { digest: `sha256:${m[1]}` as Digest, size: header.size } : { size: header.size };
      try {
        const r = await ingestEntry(deps, entry, expected);
        blobs.set(name, r.digest);
        if (r.staged) {
          const previous = staged.get(r.digest);
          if (previous) await deps.snapshots.discardStaged(r.staged);
          else staged.set(r.digest, r.staged);
        }
      } catch (err) {
        if (err instanceof BerthError) throw badArchive(`${name}: ${err.message}`);
        throw err;
      }
    }
  });
  try {
    await pipeline(stream, extract);
  } catch (err) {
    await discardAll(deps, staged);
    if (err instanceof BerthError) throw err;
    const msg = (err as Error).message;
    throw badArchive(/unexpected end/i.test(msg) ? `archive is truncated (${msg})` : msg);
  }
  for (const [from, to] of links) {
    const d = blobs.get(to);
    if (d) blobs.set(from, d);
  }
  if (meta.size === 0 && blobs.size === 0) throw badArchive('empty or not a tar archive');
  return { meta, blobs, staged };
}

async function discardAll(deps: ArchiveDeps, staged: Map<Digest, StagedLayer>): Promise<void> {
  for (const s of staged.values()) await deps.snapshots.discardStaged(s);
  staged.clear();
}

/** One image found in an archive, ready to be unpacked and registered. */
interface Candidate {
  config: Buffer;
  configDigest: Digest;
  parsed: ImageConfig;
  layers: Descriptor[];
  manifestDigest?: Digest;
  tags: string[];
}

async function layerDescriptor(content: ContentStore, digest: Digest): Promise<Descriptor> {
  const info = await content.info(digest);
  const head = await peek(content.createReadStream(digest, { start: 0, end: 3 }), 4);
  const kind = detectCompression(head);
  const mediaType =
    kind === 'gzip'
      ? MediaType.dockerLayerGzip
      : kind === 'zstd'
        ? MediaType.ociLayerZstd
        : MediaType.dockerLayer;
  return { mediaType, digest, size: info.size };
}

async function dockerCandidates(deps: ArchiveDeps, a: ArchiveContents): Promise<Candidate[]> {
  const v = parseJson(a.meta.get('manifest.json')!, 'manifest.json');
  if (!Array.isArray(v) || v.length === 0) throw badArchive('manifest.json lists no images');
  const out: Candidate[] = [];
  for (const [i, item] of v.entries()) {
    const e = item as { Config?: unknown; RepoTags?: unknown; Layers?: unknown };
    if (typeof e.Config !== 'string' || !Array.isArray(e.Layers))
      throw badArchive(`manifest.json entry ${i} needs Config and Layers`);
    const configDigest = a.blobs.get(cleanEntryName(e.Config));
    if (!configDigest) throw badArchive(`config ${JSON.stringify(e.Config)} not found`);
    const config = await deps.content.read(configDigest);
    const parsed = parseImageConfig(config);
    if (parsed.rootfs.diff_ids.length !== e.Layers.length)
      throw badArchive(
        `image ${i} has ${e.Layers.length} layers but its config lists ${parsed.rootfs.diff_ids.length}`,
      );
    const layers: Descriptor[] = [];
    for (const l of e.Layers) {
      const d = typeof l === 'string' ? a.blobs.get(cleanEntryName(l)) : undefined;
      if (!d) throw badArchive(`layer ${JSON.stringify(l)} not found`);
      layers.push(await layerDescriptor(deps.content, d));
    }
    const tags = Array.isArray(e.RepoTags)
      ? e.RepoTags.filter((t): t is string => typeof t === 'string')
      : [];
    for (const t of tags) parseReference(t);
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
  const out: Candidate[] = [];
  for (const top of index.manifests) {
    const ann = top.annotations ?? {};
    const manifestDesc = await resolveManifest(deps.content, top, platform);
    if (!manifestDesc) continue;
    const raw = await readBlob(deps.content, manifestDesc);
    const manifest: ImageManifest = parseManifest(raw);
    const config = await readBlob(deps.content, manifest.config);
    const parsed = parseImageConfig(config);
    if (parsed.rootfs.diff_ids.length !== manifest.layers.length)
      throw badArchive(`manifest ${manifestDesc.digest} and its config disagree on the number of layers`);
    for (const l of manifest.layers) {
      const info = await deps.content.info(l.digest).catch(() => undefined);
      if (!info) throw badArchive(`layer ${l.digest} not found`);
      if (info.size !== l.size)
        throw badArchive(`layer ${l.digest} has size ${info.size}, manifest says ${l.size}`);
    }
    out.push({
      config,
      configDigest: manifest.config.digest,
      parsed,
      layers: manifest.layers,
      manifestDigest: manifestDesc.digest,
      tags: tagsFromAnnotations(ann),
    });
  }
  if (out.length === 0) throw badArchive(`no image for platform ${platformString(platform)} in index.json`);
  return out;
}

function tagsFromAnnotations(ann: Record<string, string>): string[] {
  const full = ann['io.containerd.image.name'];
  if (full) return [full];
  const refName = ann['org.opencontainers.image.ref.name'];
  // A bare tag ("latest") names no repository: the image loads untagged.
  if (refName && /[/:]/.test(refName)) {
    try {
      parseReference(refName);
      return [refName];
    } catch {
      return [];
    }
  }
  return [];
}

async function readBlob(content: ContentStore, d: Descriptor): Promise<Buffer> {
  let data: Buffer;
  try {
    data = await content.read(d.digest);
  } catch {
    throw badArchive(`blob ${d.digest} not found`);
  }
  if (data.length !== d.size)
    throw badArchive(`blob ${d.digest} has size ${data.length}, expected ${d.size}`);
  if (data.length > MAX_JSON) throw badArchive(`blob ${d.digest} is too large for JSON`);
  return data;
}

async function resolveManifest(
  content: ContentStore,
  desc: Descriptor,
  platform: Platform,
  depth = 0,
): Promise<Descriptor | undefined> {
  if (depth > 4) throw badArchive('image indexes nested too deeply');
  const raw = await readBlob(content, desc);
  const kind = manifestKind(parseJson(raw, 'manifest'), desc.mediaType);
  if (kind === 'manifest') return desc;
  const idx = parseIndex(raw);
  const chosen = selectManifest(idx, platform);
  if (chosen) return chosen;
  for (const m of idx.manifests)
    if (indexTypes.has(m.mediaType)) {
      const r = await resolveManifest(content, m, platform, depth + 1);
      if (r) return r;
    }
  return undefined;
}

/** Unpacks a candidate's layers and registers it; tags are set by the caller. */
async function register(
  deps: ArchiveDeps,
  c: Candidate,
  staged = new Map<Digest, StagedLayer>(),
): Promise<Digest> {
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
  return deps.images.add({ config: c.config, layers, manifestDigest: c.manifestDigest });
}

export async function loadImages(
  deps: ArchiveDeps,
  input: Readable,
  opts: { platform?: Platform } = {},
): Promise<{ loaded: string[] }> {
  const a = await readArchive(deps, input);
  let candidates: Candidate[];
  const ids: Digest[] = [];
  try {
    if (a.meta.has('manifest.json')) candidates = await dockerCandidates(deps, a);
    else if (a.meta.has('index.json'))
      candidates = await ociCandidates(deps, a, opts.platform ?? hostPlatform());
    else throw badArchive('manifest.json not found');
    for (const c of candidates) ids.push(await register(deps, c, a.staged));
  } finally {
    await discardAll(deps, a.staged);
  }
  const loaded: string[] = [];
  for (const [i, c] of candidates.entries()) {
    const id = ids[i];
    deps.events?.publish('image', 'load', id);
    if (c.tags.length === 0) loaded.push(id);
    for (const t of c.tags) {
      await deps.images.setTag(t, id);
      loaded.push(familiarString(withDefaultTag(parseReference(t))));
    }
  }
  return { loaded };
}

export async function importImage(
  deps: ArchiveDeps,
  input: Readable,
  opts: { changes?: string[]; message?: string; tag?: string; platform?: Platform } = {},
): Promise<Digest> {
  if (opts.tag) parseReference(opts.tag);
  const { head, stream } = await peekStream(input, 4);
  if (head.length === 0) throw invalidArgument('import: the tarball is empty');
  const kind = detectCompression(head);
  const blob = await deps.content.ingest(stream);
  let layer;
  try {
    layer = await deps.snapshots.apply(null, deps.content.createReadStream(blob.digest));
  } catch (err) {
    if (err instanceof BerthError) throw invalidArgument(`import: ${err.message}`);
    throw err;
  }
  const platform = opts.platform ?? hostPlatform();
  const created = new Date().toISOString();
  const config: ImageConfig = {
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    created,
    config: applyChanges({}, opts.changes ?? []),
    rootfs: { type: 'layers', diff_ids: [layer.diffId] },
    history: [{ created, created_by: '', comment: opts.message || 'Imported from -' }],
    ...(opts.message ? { comment: opts.message } : {}),
  };
  const configBuf = Buffer.from(JSON.stringify(config));
  await deps.content.ingest(configBuf);
  const mediaType =
    kind === 'gzip'
      ? MediaType.dockerLayerGzip
      : kind === 'zstd'
        ? MediaType.ociLayerZstd
        : MediaType.dockerLayer;
  const id = await deps.images.add({
    config: configBuf,
    layers: [{ mediaType, digest: blob.digest, size: blob.size, diffId: layer.diffId }],
  });
  if (opts.tag) await deps.images.setTag(opts.tag, id);
  deps.events?.publish('image', 'import', id);
  return id;
}

/** Resolves every name first (NotFound before any byte), then streams the archive. */
export async function saveImages(deps: ArchiveDeps, names: string[]): Promise<Readable> {
  const chosen = new Map<Digest, { img: Image; tags: string[] }>();
  for (const n of names) {
    const img = deps.images.resolve(n);
    const entry = chosen.get(img.record.id) ?? { img, tags: [] };
    let ref;
    try {
      ref = parseReference(n);
    } catch {
      ref = undefined;
    }
    if (
      ref &&
      !ref.digest &&
      deps.images.tryResolve(n)?.record.id === img.record.id &&
      !isIdLike(n, img.record.id)
    )
      entry.tags.push(familiarString(withDefaultTag(ref)));
    chosen.set(img.record.id, entry);
  }
  const pack = tar.pack();
  void writeSave(deps, pack, [...chosen.values()]).catch((err: unknown) => pack.destroy(err as Error));
  for (const { img } of chosen.values()) deps.events?.publish('image', 'save', img.record.id);
  return pack as unknown as Readable;
}

function isIdLike(n: string, id: Digest): boolean {
  const hex = n.startsWith('sha256:') ? n.slice(7) : n;
  return /^[a-f0-9]+$/.test(hex) && id.slice(7).startsWith(hex);
}

const EPOCH = new Date(0);

function addFile(pack: tar.Pack, name: string, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) =>
    pack.entry({ name, size: data.length, mode: 0o644, mtime: EPOCH }, data, (err) =>
      err ? reject(err) : resolve(),
    ),
  );
}

async function uncompressedSize(deps: ArchiveDeps, digest: Digest): Promise<number> {
  const { stream } = await decompressStream(deps.content.createReadStream(digest));
  let n = 0;
  for await (const c of stream) n += (c as Buffer).length;
  return n;
}

async function addLayer(
  deps: ArchiveDeps,
  pack: tar.Pack,
  layer: Image['record']['layers'][number],
): Promise<number> {
  const { head, stream: src } = await peekStream(deps.content.createReadStream(layer.digest), 4);
  const kind = detectCompression(head);
  const size =
    kind === 'none'
      ? (await deps.content.info(layer.digest)).size
      : await uncompressedSize(deps, layer.digest);
  const sink = pack.entry({
    name: `blobs/sha256/${digestHex(layer.diffId)}`,
    size,
    mode: 0o644,
    mtime: EPOCH,
  });
  const done = new Promise<void>((resolve, reject) => {
    sink.on('finish', () => resolve());
    sink.on('close', () => resolve());
    sink.on('error', reject);
  });
  await pipeline(src, createDecompressor(kind), sink as unknown as NodeJS.WritableStream);
  await done;
  return size;
}

async function writeSave(
  deps: ArchiveDeps,
  pack: tar.Pack,
  images: { img: Image; tags: string[] }[],
): Promise<void> {
  const written = new Set<string>();
  const manifestJson: { Config: string; RepoTags: string[] | null; Layers: string[] }[] = [];
  const repositories: Record<string, Record<string, string>> = {};
  const indexManifests: Descriptor[] = [];
  await addFile(pack, 'oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}'));
  for (const { img, tags } of images) {
    const id = img.record.id;
    const configPath = `blobs/sha256/${digestHex(id)}`;
    if (!written.has(configPath)) await addFile(pack, configPath, await deps.content.read(id));
    written.add(configPath);
    const layerPaths: string[] = [];
    const ociLayers: Descriptor[] = [];
    for (const l of img.record.layers) {
      const p = `blobs/sha256/${digestHex(l.diffId)}`;
      let size: number;
      if (!written.has(p)) size = await addLayer(deps, pack, l);
      else
        size = ociLayers.find((x) => x.digest === l.diffId)?.size ?? (await uncompressedSize(deps, l.digest));
      written.add(p);
      layerPaths.push(p);
      ociLayers.push({ mediaType: MediaType.ociLayer, digest: l.diffId, size });
    }
    const configSize = (await deps.content.info(id)).size;
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.ociManifest,
        config: { mediaType: MediaType.ociConfig, digest: id, size: configSize },
        layers: ociLayers,
      }),
    );
    const manifestDigest = sha256Digest(manifest);
    const mp = `blobs/sha256/${digestHex(manifestDigest)}`;
    if (!written.has(mp)) await addFile(pack, mp, manifest);
    written.add(mp);
    manifestJson.push({ Config: configPath, RepoTags: tags.length ? tags : null, Layers: layerPaths });
    const descBase = { mediaType: MediaType.ociManifest, digest: manifestDigest, size: manifest.length };
    if (tags.length === 0) indexManifests.push({ ...descBase });
    for (const t of tags) {
      const ref = parseReference(t);
      const full = `${ref.domain}/${ref.path}:${ref.tag}`;
      indexManifests.push({
        ...descBase,
        annotations: {
          'io.containerd.image.name': full,
          'org.opencontainers.image.ref.name': ref.tag ?? 'latest',
        },
      });
      const i = t.lastIndexOf(':');
      (repositories[t.slice(0, i)] ??= {})[t.slice(i + 1)] = digestHex(id);
    }
  }
  await addFile(
    pack,
    'index.json',
    Buffer.from(
      JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: indexManifests }),
    ),
  );
  await addFile(pack, 'manifest.json', Buffer.from(JSON.stringify(manifestJson)));
  if (Object.keys(repositories).length)
    await addFile(pack, 'repositories', Buffer.from(JSON.stringify(repositories)));
  pack.finalize();
}

/**
 * `docker save`: Docker 25+'s combined archive, which old and new `docker load` and skopeo all read:
 *
 *   blobs/sha256/<hex>   config, uncompressed layer tars (named by diff id), one OCI manifest per image
 *   manifest.json        [{Config, RepoTags, Layers}] for docker load
 *   repositories         {"busybox": {"1.38.0-musl": "<top layer hex>"}} for very old readers
 *   index.json, oci-layout   the OCI image layout view of the same blobs
 *
 * Everything is planned (names resolved, layer sizes known, layers checked against their diff ids)
 * before the first byte, so a bad name or damaged content fails the request instead of the stream.
 * Entries are written in name order with a zero mtime: the same images give the same bytes.
 */
import { createHash } from 'node:crypto';
import { type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { type Compression, createDecompressor, detectCompression, peek } from '../../common/decompress.js';
import { type Digest, digestHex, sha256Digest } from '../../common/digest.js';
import { internal } from '../../common/errors.js';
import { familiarName, fullName, parseReference, refString, familiarString } from '../../common/reference.js';
import type { ArchiveDeps } from './archive-common.js';
import type { Image } from './images.js';
import { type Descriptor, MediaType } from './manifest.js';
import type { ImageStore } from './store.js';

interface Chosen {
  img: Image;
  /** Full tag references to record, in the order they were asked for. */
  tags: string[];
}

interface PlannedFile {
  size: number;
  data?: Buffer;
  /** A layer blob, written decompressed. */
  layer?: { digest: Digest; compression: Compression };
}

const EPOCH = new Date(0);
const OCI_LAYOUT = '{"imageLayoutVersion":"1.0.0"}';

/**
 * Which images the names select, as Docker does: a tag selects that tag, a bare repository name
 * every tag of it, an id or digest reference the image without naming it.
 */
function selectImages(images: ImageStore, names: string[]): Chosen[] {
  const chosen = new Map<Digest, Chosen>();
  const add = (img: Image, tag?: string) => {
    const c = chosen.get(img.record.id) ?? { img, tags: [] };
    if (tag && !c.tags.includes(tag)) c.tags.push(tag);
    chosen.set(img.record.id, c);
  };
  for (const n of names) {
    if (n.startsWith('sha256:') || /^[a-f0-9]{64}$/.test(n)) {
      add(images.resolve(n));
      continue;
    }
    const ref = parseReference(n);
    if (ref.digest) add(images.resolve(n));
    else if (ref.tag) add(images.resolve(n), refString(ref));
    else {
      const repo = fullName(ref);
      const matches: [string, Image][] = [];
      for (const img of images.list({ all: true }))
        for (const t of img.repoTags) if (fullName(parseReference(t)) === repo) matches.push([t, img]);
      if (matches.length === 0) add(images.resolve(n));
      for (const [t, img] of matches.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) add(img, t);
    }
  }
  return [...chosen.values()];
}

/** Size of a layer's uncompressed tar, checked against the diff id it must hash to. */
async function uncompressedLayer(
  deps: ArchiveDeps,
  layer: { digest: Digest; diffId: Digest },
): Promise<PlannedFile> {
  const head = await peek(deps.content.createReadStream(layer.digest, { start: 0, end: 3 }), 4);
  const compression = detectCompression(head);
  if (compression === 'none') {
    if (layer.digest !== layer.diffId)
      throw internal(`layer ${layer.digest} is stored uncompressed but its diff id is ${layer.diffId}`);
    return {
      size: (await deps.content.info(layer.digest)).size,
      layer: { digest: layer.digest, compression },
    };
  }
  const hash = createHash('sha256');
  let size = 0;
  await pipeline(
    deps.content.createReadStream(layer.digest),
    createDecompressor(compression),
    async (src) => {
      for await (const c of src as AsyncIterable<Buffer>) {
        hash.update(c);
        size += c.length;
      }
    },
  );
  const diffId: Digest = `sha256:${hash.digest('hex')}`;
  if (diffId !== layer.diffId)
    throw internal(`layer ${layer.digest} unpacks to ${diffId}, its image says ${layer.diffId}`);
  return { size, layer: { digest: layer.digest, compression } };
}

function jsonFile(value: unknown, newline: boolean): PlannedFile {
  const data = Buffer.from(JSON.stringify(value) + (newline ? '\n' : ''));
  return { size: data.length, data };
}

async function planArchive(deps: ArchiveDeps, images: Chosen[]): Promise<Map<string, PlannedFile>> {
  const files = new Map<string, PlannedFile>();
  const blobPath = (d: Digest) => `blobs/sha256/${digestHex(d)}`;
  const manifestJson: { Config: string; RepoTags: string[] | null; Layers: string[] }[] = [];
  const repositories: Record<string, Record<string, string>> = {};
  const indexManifests: Descriptor[] = [];
  for (const { img, tags } of images) {
    const { id, layers } = img.record;
    const config = await deps.content.read(id);
    files.set(blobPath(id), { size: config.length, data: config });
    const ociLayers: Descriptor[] = [];
    for (const l of layers) {
      const p = blobPath(l.diffId);
      let planned = files.get(p);
      if (!planned) files.set(p, (planned = await uncompressedLayer(deps, l)));
      ociLayers.push({ mediaType: MediaType.ociLayer, digest: l.diffId, size: planned.size });
    }
    const manifest = jsonFile(
      {
        schemaVersion: 2,
        mediaType: MediaType.ociManifest,
        config: { mediaType: MediaType.ociConfig, digest: id, size: config.length },
        layers: ociLayers,
      },
      false,
    );
    const manifestDigest = sha256Digest(manifest.data!);
    files.set(blobPath(manifestDigest), manifest);
    const { architecture, os, variant } = img.config;
    const desc: Descriptor = {
      mediaType: MediaType.ociManifest,
      digest: manifestDigest,
      size: manifest.size,
      platform: { architecture, os, ...(variant ? { variant } : {}) },
    };
    // An unnamed image still gets an entry, so OCI readers can reach it.
    if (tags.length === 0) indexManifests.push(desc);
    for (const t of tags) {
      const ref = parseReference(t);
      indexManifests.push({
        ...desc,
        annotations: {
          'io.containerd.image.name': refString(ref),
          'org.opencontainers.image.ref.name': ref.tag!,
        },
      });
      if (layers.length > 0)
        (repositories[familiarName(ref)] ??= {})[ref.tag!] = digestHex(layers[layers.length - 1].diffId);
    }
    manifestJson.push({
      Config: blobPath(id),
      RepoTags: tags.length ? tags.map((t) => familiarString(parseReference(t))) : null,
      Layers: layers.map((l) => blobPath(l.diffId)),
    });
  }
  files.set(
    'index.json',
    jsonFile({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: indexManifests }, false),
  );
  files.set('manifest.json', jsonFile(manifestJson, true));
  files.set('oci-layout', { size: OCI_LAYOUT.length, data: Buffer.from(OCI_LAYOUT) });
  if (Object.keys(repositories).length) files.set('repositories', jsonFile(repositories, true));
  return files;
}

function writeEntry(
  pack: tar.Pack,
  header: Partial<tar.Header> & { name: string },
  data?: Buffer,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error | null) => (err ? reject(err) : resolve());
    if (data) pack.entry(header, data, done);
    else pack.entry(header, done);
  });
}

async function writeLayer(deps: ArchiveDeps, pack: tar.Pack, name: string, f: PlannedFile): Promise<void> {
  const { digest, compression } = f.layer!;
  let sink!: NodeJS.WritableStream;
  const finished = new Promise<void>((resolve, reject) => {
    sink = pack.entry({ name, size: f.size, mode: 0o644, mtime: EPOCH }, (err) =>
      err ? reject(err) : resolve(),
    ) as unknown as NodeJS.WritableStream;
  });
  await Promise.all([
    pipeline(deps.content.createReadStream(digest), createDecompressor(compression), sink),
    finished,
  ]);
}

async function writeArchive(
  deps: ArchiveDeps,
  pack: tar.Pack,
  files: Map<string, PlannedFile>,
): Promise<void> {
  for (const dir of ['blobs/', 'blobs/sha256/'])
    await writeEntry(pack, { name: dir, type: 'directory', mode: 0o755, mtime: EPOCH });
  for (const name of [...files.keys()].sort()) {
    const f = files.get(name)!;
    if (f.layer) await writeLayer(deps, pack, name, f);
    else await writeEntry(pack, { name, size: f.size, mode: 0o644, mtime: EPOCH }, f.data);
  }
  pack.finalize();
}

/**
 * Resolves every name and plans the archive (NotFound `No such image: X` before any byte), then
 * returns the tar stream.
 */
export async function saveImages(deps: ArchiveDeps, names: string[]): Promise<Readable> {
  const images = selectImages(deps.images, names);
  const files = await planArchive(deps, images);
  const pack = tar.pack();
  writeArchive(deps, pack, files).catch((err: unknown) => pack.destroy(err as Error));
  for (const { img } of images) deps.events?.publish('image', 'save', img.record.id);
  return pack as unknown as Readable;
}

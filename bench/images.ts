/**
 * Synthetic images for the benchmark, written as `docker save` archives and cached by their
 * parameters under .cache/bench (so a second run does not rebuild them).
 */
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, renameSync } from 'node:fs';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';

/** A deterministic xorshift byte generator: incompressible-looking, same bytes every run. */
function fill(buf: Buffer, seed: number): void {
  let x = seed >>> 0 || 1;
  for (let i = 0; i + 4 <= buf.length; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    buf.writeUInt32LE(x >>> 0, i);
  }
}

function layerTar(files: { name: string; data: Buffer }[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => chunks.push(c as Buffer));
  const done = new Promise<Buffer>((resolve, reject) => {
    pack.on('end', () => resolve(Buffer.concat(chunks)));
    pack.on('error', reject);
  });
  pack.entry({ name: 'data/', type: 'directory', mode: 0o755, mtime: new Date(0) });
  for (const f of files) pack.entry({ name: f.name, mode: 0o644, mtime: new Date(0) }, f.data);
  pack.finalize();
  return done;
}

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

interface ArchiveImage {
  tag: string;
  config: Buffer;
  layers: Buffer[];
}

async function writeArchive(file: string, images: ArchiveImage[]): Promise<void> {
  mkdirSync(path.dirname(file), { recursive: true });
  const pack = tar.pack();
  const tmp = `${file}.tmp`;
  const out = pipeline(pack, createWriteStream(tmp));
  const written = new Set<string>();
  const manifest = [];
  for (const img of images) {
    const layerPaths = [];
    for (const l of img.layers) {
      const p = `blobs/sha256/${sha(l)}`;
      if (!written.has(p)) pack.entry({ name: p, mode: 0o644, mtime: new Date(0) }, l);
      written.add(p);
      layerPaths.push(p);
    }
    const cp = `blobs/sha256/${sha(img.config)}`;
    if (!written.has(cp)) pack.entry({ name: cp, mode: 0o644, mtime: new Date(0) }, img.config);
    written.add(cp);
    manifest.push({ Config: cp, RepoTags: [img.tag], Layers: layerPaths });
  }
  pack.entry({ name: 'manifest.json', mode: 0o644, mtime: new Date(0) }, JSON.stringify(manifest));
  pack.finalize();
  await out;
  renameSync(tmp, file);
}

function configFor(layers: Buffer[], label: string): Buffer {
  return Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      created: '2026-01-01T00:00:00Z',
      config: { Cmd: ['/bin/sh'], Labels: { 'bench.id': label } },
      rootfs: { type: 'layers', diff_ids: layers.map((l) => `sha256:${sha(l)}`) },
      history: layers.map((_, i) => ({ created: '2026-01-01T00:00:00Z', created_by: `bench layer ${i}` })),
    }),
  );
}

/** ~`totalMb` MB in `layers` layers, each a few files of pseudo-random bytes. */
export async function bigImageArchive(cacheDir: string, totalMb = 200, layers = 5): Promise<string> {
  const file = path.join(cacheDir, `big-${totalMb}mb-${layers}l.tar`);
  if (existsSync(file)) return file;
  const perLayer = Math.floor((totalMb * 1e6) / layers);
  const tars: Buffer[] = [];
  for (let i = 0; i < layers; i++) {
    const files = [];
    const perFile = Math.floor(perLayer / 8);
    for (let f = 0; f < 8; f++) {
      const data = Buffer.alloc(perFile);
      fill(data, i * 100 + f + 1);
      files.push({ name: `data/l${i}-f${f}.bin`, data });
    }
    tars.push(await layerTar(files));
  }
  await writeArchive(file, [{ tag: 'bench/big:latest', config: configFor(tars, 'big'), layers: tars }]);
  return file;
}

/** `count` small distinct images sharing one layer. */
export async function manyImagesArchive(cacheDir: string, count = 100): Promise<string> {
  const file = path.join(cacheDir, `many-${count}.tar`);
  if (existsSync(file)) return file;
  const data = Buffer.alloc(64 * 1024);
  fill(data, 42);
  const layer = await layerTar([{ name: 'data/shared.bin', data }]);
  const images: ArchiveImage[] = [];
  for (let i = 0; i < count; i++)
    images.push({ tag: `bench/many${i}:latest`, config: configFor([layer], `many-${i}`), layers: [layer] });
  await writeArchive(file, images);
  return file;
}

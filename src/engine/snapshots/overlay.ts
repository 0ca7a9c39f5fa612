import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { type Readable, Transform } from 'node:stream';
import { syncDir } from '../../common/atomic.js';
import { decompressStream } from '../../common/decompress.js';
import { type Digest, digestHex, isDigest } from '../../common/digest.js';
import { conflict, errnoCode, invalidArgument, notFound } from '../../common/errors.js';
import { log } from '../../common/log.js';
import { MNT_DETACH, native } from '../../common/native.js';
import { extractLayer } from '../../common/safetar.js';
import {
  type ApplyOptions,
  chainIdOf,
  type LayerInfo,
  type MountSpec,
  type Snapshotter,
  type StagedLayer,
} from './snapshots.js';

/** overlayfs mount data must fit one page; above this we switch to the short links in l/. */
const MAX_MOUNT_DATA = 3800;

export class OverlaySnapshotter implements Snapshotter {
  private readonly layersDir: string;
  private readonly activeDir: string;
  private readonly tmpDir: string;
  private readonly linksDir: string;
  private readonly index = new Map<Digest, LayerInfo>();

  constructor(readonly root: string) {
    this.layersDir = path.join(root, 'layers');
    this.activeDir = path.join(root, 'active');
    this.tmpDir = path.join(root, 'tmp');
    this.linksDir = path.join(root, 'l');
  }

  async init(): Promise<void> {
    // Half-made layers from a crash live only in tmp/: drop them.
    await fsp.rm(this.tmpDir, { recursive: true, force: true });
    for (const d of [this.layersDir, this.activeDir, this.tmpDir, this.linksDir])
      await fsp.mkdir(d, { recursive: true, mode: 0o700 });
    for (const name of await fsp.readdir(this.layersDir)) {
      try {
        const meta = JSON.parse(
          await fsp.readFile(path.join(this.layersDir, name, 'meta.json'), 'utf8'),
        ) as LayerInfo;
        if (!isDigest(meta.chainId) || digestHex(meta.chainId) !== name) throw new Error('bad meta');
        this.index.set(meta.chainId, meta);
      } catch (err) {
        log.warn('removing unreadable layer', { name, error: String(err) });
        await fsp.rm(path.join(this.layersDir, name), { recursive: true, force: true });
      }
    }
  }

  has(chainId: Digest): boolean {
    return this.index.has(chainId);
  }

  get(chainId: Digest): LayerInfo | undefined {
    return this.index.get(chainId);
  }

  list(): LayerInfo[] {
    return [...this.index.values()];
  }

  private fsDir(chainId: Digest): string {
    return path.join(this.layersDir, digestHex(chainId), 'fs');
  }

  private linkName(chainId: Digest): string {
    return path.join(this.linksDir, digestHex(chainId).slice(0, 16));
  }

  async apply(parent: Digest | null, layer: Readable, opts: ApplyOptions = {}): Promise<LayerInfo> {
    if (parent !== null && !this.index.has(parent)) throw notFound(`parent layer ${parent} does not exist`);
    const known = opts.expectedDiffId ? chainIdOf(parent, opts.expectedDiffId) : undefined;
    if (known && this.index.has(known)) {
      // Already unpacked: verify the bytes anyway, write nothing.
      const { hashing, hash } = await this.hashedStream(layer, opts);
      try {
        for await (const _ of hashing) void _;
      } catch (err) {
        throw invalidArgument(`invalid layer: ${(err as Error).message}`);
      }
      checkDiffId(opts.expectedDiffId!, `sha256:${hash.digest('hex')}`);
      return this.index.get(known)!;
    }
    const staged = await this.stage(layer, opts);
    try {
      if (opts.expectedDiffId) checkDiffId(opts.expectedDiffId, staged.diffId);
      return await this.commitStaged(staged, parent);
    } finally {
      await this.discardStaged(staged);
    }
  }

  /** The layer's uncompressed bytes, hashed on the way through. */
  private async hashedStream(
    layer: Readable,
    opts: ApplyOptions,
  ): Promise<{ hashing: Transform; hash: ReturnType<typeof createHash> }> {
    const counted = opts.onProgress ? layer.pipe(progressCounter(opts.onProgress)) : layer;
    if (opts.onProgress) layer.on('error', (e) => counted.destroy(e));
    const hash = createHash('sha256');
    const hashing = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        cb(null, chunk);
      },
    });
    // Errors reach the consumer through `hashing`, which may attach a tick later.
    hashing.on('error', () => undefined);
    try {
      const { stream } = await decompressStream(counted);
      stream.on('error', (e) => hashing.destroy(e));
      stream.pipe(hashing);
    } catch (err) {
      throw invalidArgument(`invalid layer: ${(err as Error).message}`);
    }
    return { hashing, hash };
  }

  async stage(layer: Readable, opts: ApplyOptions = {}): Promise<StagedLayer> {
    const id = randomBytes(12).toString('hex');
    const work = path.join(this.tmpDir, id);
    await fsp.mkdir(path.join(work, 'fs'), { recursive: true, mode: 0o755 });
    try {
      const { hashing, hash } = await this.hashedStream(layer, opts);
      const { size } = await extractLayer(hashing, path.join(work, 'fs'));
      return { id, diffId: `sha256:${hash.digest('hex')}`, size };
    } catch (err) {
      await fsp.rm(work, { recursive: true, force: true });
      throw err;
    }
  }

  async discardStaged(staged: StagedLayer): Promise<void> {
    await fsp.rm(path.join(this.tmpDir, staged.id), { recursive: true, force: true });
  }

  async commitStaged(staged: StagedLayer, parent: Digest | null): Promise<LayerInfo> {
    if (parent !== null && !this.index.has(parent)) throw notFound(`parent layer ${parent} does not exist`);
    const chainId = chainIdOf(parent, staged.diffId);
    const existing = this.index.get(chainId);
    if (existing) {
      await this.discardStaged(staged);
      return existing;
    }
    const work = path.join(this.tmpDir, staged.id);
    const info: LayerInfo = { chainId, parent, diffId: staged.diffId, size: staged.size };
    await fsp.writeFile(path.join(work, 'meta.json'), JSON.stringify(info));
    await syncDir(work);
    try {
      await fsp.rename(work, path.join(this.layersDir, digestHex(chainId)));
    } catch (err) {
      // A concurrent commit of the same chain won the rename.
      if (!['ENOTEMPTY', 'EEXIST'].includes(errnoCode(err) ?? '')) throw err;
      await this.discardStaged(staged);
    }
    await syncDir(this.layersDir);
    await fsp.symlink(`../layers/${digestHex(chainId)}/fs`, this.linkName(chainId)).catch((err) => {
      if (errnoCode(err) !== 'EEXIST') throw err;
    });
    this.index.set(chainId, info);
    return info;
  }

  lowerDirs(chainId: Digest): string[] {
    const dirs: string[] = [];
    let cur: Digest | null = chainId;
    while (cur) {
      const info = this.index.get(cur);
      if (!info) throw notFound(`layer ${cur} does not exist`);
      dirs.push(this.fsDir(cur));
      cur = info.parent;
    }
    return dirs;
  }

  async prepare(key: string, parent: Digest | null): Promise<MountSpec> {
    checkKey(key);
    const dir = path.join(this.activeDir, key);
    await fsp.mkdir(path.join(dir, 'upper'), { recursive: true, mode: 0o755 });
    await fsp.mkdir(path.join(dir, 'work'), { recursive: true, mode: 0o700 });
    let lowerDirs: string[];
    if (parent) lowerDirs = this.lowerDirs(parent);
    else {
      // overlayfs needs a lower layer: an empty one for images FROM scratch.
      await fsp.mkdir(path.join(dir, 'empty'), { recursive: true, mode: 0o755 });
      lowerDirs = [path.join(dir, 'empty')];
    }
    await fsp.writeFile(path.join(dir, 'parent'), parent ?? '');
    return { lowerDirs, upperDir: path.join(dir, 'upper'), workDir: path.join(dir, 'work') };
  }

  private async specOf(key: string): Promise<MountSpec> {
    checkKey(key);
    const dir = path.join(this.activeDir, key);
    let parent: string;
    try {
      parent = await fsp.readFile(path.join(dir, 'parent'), 'utf8');
    } catch {
      throw notFound(`snapshot ${key} does not exist`);
    }
    const lowerDirs = parent && isDigest(parent) ? this.lowerDirs(parent) : [path.join(dir, 'empty')];
    return { lowerDirs, upperDir: path.join(dir, 'upper'), workDir: path.join(dir, 'work') };
  }

  async mount(key: string, target: string): Promise<void> {
    const spec = await this.specOf(key);
    let lower = spec.lowerDirs.join(':');
    const data = () => `lowerdir=${lower},upperdir=${spec.upperDir},workdir=${spec.workDir}`;
    if (data().length > MAX_MOUNT_DATA) {
      const chain = (await fsp.readFile(path.join(this.activeDir, key, 'parent'), 'utf8')) as Digest;
      const links: string[] = [];
      let cur: Digest | null = chain;
      while (cur) {
        links.push(this.linkName(cur));
        cur = this.index.get(cur)?.parent ?? null;
      }
      lower = links.join(':');
      if (data().length > MAX_MOUNT_DATA) throw invalidArgument(`too many layers to mount (${links.length})`);
    }
    await fsp.mkdir(target, { recursive: true });
    native.mount('overlay', target, 'overlay', 0, data());
  }

  async unmount(target: string): Promise<void> {
    try {
      native.umount2(target, MNT_DETACH);
    } catch (err) {
      if (!['EINVAL', 'ENOENT'].includes(errnoCode(err) ?? '')) throw err;
    }
  }

  async removeActive(key: string): Promise<void> {
    checkKey(key);
    await fsp.rm(path.join(this.activeDir, key), { recursive: true, force: true });
  }

  async remove(chainId: Digest): Promise<void> {
    if (!this.index.has(chainId)) throw notFound(`layer ${chainId} does not exist`);
    for (const l of this.index.values())
      if (l.parent === chainId) throw conflict(`layer ${chainId} has a child layer ${l.chainId}`);
    this.index.delete(chainId);
    await fsp.rm(this.linkName(chainId), { force: true });
    // Move out first so a crash never leaves a half-deleted layer under layers/.
    const trash = path.join(this.tmpDir, `rm-${randomBytes(6).toString('hex')}`);
    await fsp.rename(path.join(this.layersDir, digestHex(chainId)), trash);
    await fsp.rm(trash, { recursive: true, force: true });
  }
}

function checkKey(key: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(key))
    throw invalidArgument(`invalid snapshot key ${JSON.stringify(key)}`);
}

function checkDiffId(expected: Digest, actual: Digest): void {
  if (expected !== actual)
    throw invalidArgument(`layer diff id mismatch: expected ${expected}, got ${actual}`);
}

function progressCounter(onProgress: (n: number) => void): Transform {
  let n = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      n += chunk.length;
      onProgress(n);
      cb(null, chunk);
    },
  });
}

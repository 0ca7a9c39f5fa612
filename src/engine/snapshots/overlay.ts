/**
 * The overlayfs snapshotter.
 *
 * Layout under root:
 *   layers/<chain hex>/fs         a layer's files, in overlayfs form (whiteouts, opaque xattrs)
 *   layers/<chain hex>/meta.json  its LayerInfo
 *   l/<16 hex>                    short links to layers/<hex>/fs, for mounts whose options would pass a page
 *   active/<key>/{upper,work}     writable layers (one per container), with `parent` naming their chain
 *   tmp/                          layers being unpacked and things being deleted; emptied by init()
 *
 * A layer is unpacked into tmp/<id>/fs and renamed into layers/ only once complete and verified, so
 * layers/ never holds half a layer; a crash leaves its debris in tmp/ only.
 */
import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { pipeline, type Readable, Transform, Writable } from 'node:stream';
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
  type StageOptions,
  type StagedLayer,
} from './snapshots.js';

/** overlayfs takes its mount options in one page, NUL included. */
const MAX_MOUNT_DATA = 4095;
const LINK_LEN = 16;
const STAGED_ID = /^[0-9a-f]{24}$/;
const KEY = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

export class OverlaySnapshotter implements Snapshotter {
  private readonly layersDir: string;
  private readonly activeDir: string;
  private readonly tmpDir: string;
  private readonly linksDir: string;
  private readonly index = new Map<Digest, LayerInfo>();
  /** Prepared writable layers: key -> the chain below them (null: scratch). */
  private readonly active = new Map<string, Digest | null>();

  constructor(readonly root: string) {
    this.layersDir = path.join(root, 'layers');
    this.activeDir = path.join(root, 'active');
    this.tmpDir = path.join(root, 'tmp');
    this.linksDir = path.join(root, 'l');
  }

  async init(): Promise<void> {
    // Half-made layers and half-deleted ones from a crash live only in tmp/: drop them.
    await fsp.rm(this.tmpDir, { recursive: true, force: true });
    for (const d of [this.layersDir, this.activeDir, this.tmpDir, this.linksDir])
      await fsp.mkdir(d, { recursive: true, mode: 0o700 });
    this.index.clear();
    for (const name of await fsp.readdir(this.layersDir)) {
      const info = await this.readMeta(name);
      if (info) this.index.set(info.chainId, info);
      else {
        log.warn('removing unreadable layer', { layer: name });
        await this.trash(path.join(this.layersDir, name));
      }
    }
    for (const info of this.index.values())
      if (info.parent && !this.index.has(info.parent))
        log.warn('layer without its parent', { layer: info.chainId, parent: info.parent });
    await this.repairLinks();
    this.active.clear();
    for (const key of await fsp.readdir(this.activeDir)) {
      const dir = path.join(this.activeDir, key);
      const parent = KEY.test(key) ? await readParent(dir) : undefined;
      if (parent === undefined) {
        log.warn('removing unreadable writable layer', { key });
        await this.trash(dir);
      } else this.active.set(key, parent);
    }
  }

  private async readMeta(name: string): Promise<LayerInfo | undefined> {
    try {
      const meta = JSON.parse(
        await fsp.readFile(path.join(this.layersDir, name, 'meta.json'), 'utf8'),
      ) as Partial<LayerInfo>;
      const { chainId, parent, diffId, size } = meta;
      if (typeof chainId !== 'string' || !isDigest(chainId) || digestHex(chainId) !== name) return undefined;
      if (typeof diffId !== 'string' || !isDigest(diffId) || typeof size !== 'number') return undefined;
      if (parent !== null && (typeof parent !== 'string' || !isDigest(parent))) return undefined;
      if (chainIdOf(parent, diffId) !== chainId) return undefined;
      return { chainId, parent, diffId, size };
    } catch {
      return undefined;
    }
  }

  /** Short links for every layer, and none for layers that are gone. */
  private async repairLinks(): Promise<void> {
    const wanted = new Map([...this.index.keys()].map((c) => [path.basename(this.linkPath(c)), c]));
    for (const name of await fsp.readdir(this.linksDir)) {
      const chain = wanted.get(name);
      if (chain && (await fsp.readlink(path.join(this.linksDir, name)).catch(() => '')) === linkTarget(chain))
        wanted.delete(name);
      else await fsp.rm(path.join(this.linksDir, name), { force: true });
    }
    for (const chain of wanted.values()) await this.makeLink(chain);
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

  private linkPath(chainId: Digest): string {
    return path.join(this.linksDir, digestHex(chainId).slice(0, LINK_LEN));
  }

  private async makeLink(chainId: Digest): Promise<void> {
    await fsp.symlink(linkTarget(chainId), this.linkPath(chainId)).catch((err) => {
      if (errnoCode(err) !== 'EEXIST') throw err;
    });
  }

  private requireParent(parent: Digest | null): void {
    if (parent !== null && !this.index.has(parent)) throw notFound(`parent layer ${parent} does not exist`);
  }

  async apply(parent: Digest | null, layer: Readable, opts: ApplyOptions = {}): Promise<LayerInfo> {
    this.requireParent(parent);
    const expected = opts.expectedDiffId;
    if (expected !== undefined && !isDigest(expected))
      throw invalidArgument(`invalid layer diff id ${JSON.stringify(expected)}`);
    const existing = expected ? this.index.get(chainIdOf(parent, expected)) : undefined;
    if (existing) {
      // Already unpacked: the bytes are still checked, but go nowhere.
      checkDiffId(expected!, await this.hashOnly(layer, opts));
      return existing;
    }
    const staged = await this.stage(layer, opts);
    try {
      if (expected) checkDiffId(expected, staged.diffId);
      return await this.commitStaged(staged, parent);
    } finally {
      await this.discardStaged(staged);
    }
  }

  /**
   * The layer's uncompressed bytes, hashed on their way through. Destroying the returned stream
   * (when its consumer fails) destroys `layer` too.
   */
  private async uncompressed(
    layer: Readable,
    opts: ApplyOptions & StageOptions,
  ): Promise<{ stream: Readable; diffId: () => Promise<Digest> }> {
    let input = layer;
    if (opts.onProgress) {
      const counter = progressCounter(opts.onProgress);
      pipeline(layer, counter, () => undefined);
      input = counter;
    }
    const { stream, compression } = await decompressStream(input);
    const known = opts.inputDigest;
    // Plain tar bytes are the input bytes: their digest is the one the caller computes already.
    if (compression === 'none' && known) return { stream, diffId: () => known };
    const hash = createHash('sha256');
    const hashing = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        cb(null, chunk);
      },
    });
    // Errors reach the consumer through `hashing`.
    pipeline(stream, hashing, () => undefined);
    return { stream: hashing, diffId: async () => `sha256:${hash.digest('hex')}` };
  }

  private async hashOnly(layer: Readable, opts: ApplyOptions): Promise<Digest> {
    const { stream, diffId } = await this.uncompressed(layer, opts);
    const discard = new Writable({ write: (_chunk, _enc, cb) => cb() });
    await new Promise<void>((resolve, reject) =>
      pipeline(stream, discard, (err) => (err ? reject(err) : resolve())),
    );
    return diffId();
  }

  async stage(layer: Readable, opts: ApplyOptions & StageOptions = {}): Promise<StagedLayer> {
    const id = randomBytes(12).toString('hex');
    const work = path.join(this.tmpDir, id);
    try {
      await fsp.mkdir(path.join(work, 'fs'), { recursive: true, mode: 0o755 });
      const { stream, diffId } = await this.uncompressed(layer, opts);
      const { size } = await extractLayer(stream, path.join(work, 'fs'));
      return { id, diffId: await diffId(), size };
    } catch (err) {
      layer.destroy();
      await fsp.rm(work, { recursive: true, force: true });
      throw err;
    }
  }

  async discardStaged(staged: StagedLayer): Promise<void> {
    if (!STAGED_ID.test(staged.id)) throw invalidArgument(`invalid staged layer id ${staged.id}`);
    await fsp.rm(path.join(this.tmpDir, staged.id), { recursive: true, force: true });
  }

  async commitStaged(staged: StagedLayer, parent: Digest | null): Promise<LayerInfo> {
    if (!STAGED_ID.test(staged.id)) throw invalidArgument(`invalid staged layer id ${staged.id}`);
    this.requireParent(parent);
    const chainId = chainIdOf(parent, staged.diffId);
    const existing = this.index.get(chainId);
    if (existing) {
      await this.discardStaged(staged);
      return existing;
    }
    const work = path.join(this.tmpDir, staged.id);
    const info: LayerInfo = { chainId, parent, diffId: staged.diffId, size: staged.size };
    const fh = await fsp.open(path.join(work, 'meta.json'), 'wx', 0o644);
    try {
      await fh.writeFile(JSON.stringify(info));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await syncDir(work);
    try {
      await fsp.rename(work, path.join(this.layersDir, digestHex(chainId)));
    } catch (err) {
      // A concurrent commit of the same chain won: its copy is as good as ours.
      if (!['ENOTEMPTY', 'EEXIST'].includes(errnoCode(err) ?? '')) throw err;
      await this.discardStaged(staged);
    }
    await syncDir(this.layersDir);
    await this.makeLink(chainId);
    this.index.set(chainId, info);
    return info;
  }

  lowerDirs(chainId: Digest): string[] {
    return this.chain(chainId).map((c) => this.fsDir(c));
  }

  /** The chain from `chainId` down to its base layer. */
  private chain(chainId: Digest): Digest[] {
    const chain: Digest[] = [];
    let cur: Digest | null = chainId;
    while (cur) {
      const info = this.index.get(cur);
      if (!info) throw notFound(`layer ${cur} does not exist`);
      chain.push(cur);
      if (chain.length > this.index.size) throw invalidArgument(`layer ${chainId} has a cyclic chain`);
      cur = info.parent;
    }
    return chain;
  }

  private spec(key: string, parent: Digest | null): MountSpec {
    const dir = path.join(this.activeDir, key);
    // overlayfs needs a lower layer: an empty one for images FROM scratch.
    const lowerDirs = parent ? this.lowerDirs(parent) : [path.join(dir, 'empty')];
    return { lowerDirs, upperDir: path.join(dir, 'upper'), workDir: path.join(dir, 'work') };
  }

  async prepare(key: string, parent: Digest | null): Promise<MountSpec> {
    checkKey(key);
    this.requireParent(parent);
    if (this.active.has(key)) {
      if (this.active.get(key) !== parent) throw conflict(`snapshot ${key} already exists`);
      return this.spec(key, parent);
    }
    // Made aside and renamed into place: active/ only ever holds complete ones.
    const work = path.join(this.tmpDir, `active-${randomBytes(6).toString('hex')}`);
    try {
      await fsp.mkdir(path.join(work, 'upper'), { recursive: true, mode: 0o755 });
      await fsp.mkdir(path.join(work, 'work'), { mode: 0o700 });
      if (!parent) await fsp.mkdir(path.join(work, 'empty'), { mode: 0o755 });
      await fsp.writeFile(path.join(work, 'parent'), parent ?? '');
      await fsp.rename(work, path.join(this.activeDir, key));
    } catch (err) {
      await fsp.rm(work, { recursive: true, force: true });
      if (['ENOTEMPTY', 'EEXIST'].includes(errnoCode(err) ?? ''))
        throw conflict(`snapshot ${key} already exists`);
      throw err;
    }
    this.active.set(key, parent);
    return this.spec(key, parent);
  }

  async mount(key: string, target: string): Promise<void> {
    checkKey(key);
    const parent = this.active.get(key);
    if (parent === undefined) throw notFound(`snapshot ${key} does not exist`);
    const spec = this.spec(key, parent);
    const data = (lowers: string[]) =>
      `lowerdir=${lowers.map(escapeOption).join(':')},upperdir=${escapeOption(spec.upperDir)},` +
      `workdir=${escapeOption(spec.workDir)}`;
    let options = data(spec.lowerDirs);
    if (Buffer.byteLength(options) > MAX_MOUNT_DATA && parent) {
      options = data(this.chain(parent).map((c) => this.linkPath(c)));
      if (Buffer.byteLength(options) > MAX_MOUNT_DATA)
        throw invalidArgument(`too many layers to mount (${spec.lowerDirs.length})`);
    }
    await fsp.mkdir(target, { recursive: true });
    native.mount('overlay', target, 'overlay', 0, options);
  }

  async unmount(target: string): Promise<void> {
    try {
      native.umount2(target, MNT_DETACH);
    } catch (err) {
      // EINVAL: not a mount point (never mounted, or unmounted already).
      if (!['EINVAL', 'ENOENT'].includes(errnoCode(err) ?? '')) throw err;
    }
  }

  async removeActive(key: string): Promise<void> {
    checkKey(key);
    this.active.delete(key);
    await this.trash(path.join(this.activeDir, key));
  }

  async remove(chainId: Digest): Promise<void> {
    if (!this.index.has(chainId)) throw notFound(`layer ${chainId} does not exist`);
    for (const l of this.index.values())
      if (l.parent === chainId) throw conflict(`layer ${chainId} has a child layer ${l.chainId}`);
    const info = this.index.get(chainId)!;
    this.index.delete(chainId);
    try {
      await this.trash(path.join(this.layersDir, digestHex(chainId)));
    } catch (err) {
      this.index.set(chainId, info);
      throw err;
    }
    await fsp.rm(this.linkPath(chainId), { force: true });
  }

  /** Moves `p` into tmp/ and deletes it there, so a crash never leaves it half-deleted in place. */
  private async trash(p: string): Promise<void> {
    const aside = path.join(this.tmpDir, `rm-${randomBytes(6).toString('hex')}`);
    try {
      await fsp.rename(p, aside);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return;
      throw err;
    }
    await fsp.rm(aside, { recursive: true, force: true });
  }
}

function linkTarget(chainId: Digest): string {
  return `../layers/${digestHex(chainId)}/fs`;
}

async function readParent(dir: string): Promise<Digest | null | undefined> {
  try {
    const s = await fsp.readFile(path.join(dir, 'parent'), 'utf8');
    if (s === '') return null;
    return isDigest(s) ? s : undefined;
  } catch {
    return undefined;
  }
}

/** overlayfs splits its options at ',' and lowerdir at ':'; a backslash escapes either. */
function escapeOption(p: string): string {
  return p.replace(/[\\,:]/g, '\\$&');
}

function checkKey(key: string): void {
  if (!KEY.test(key)) throw invalidArgument(`invalid snapshot key ${JSON.stringify(key)}`);
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

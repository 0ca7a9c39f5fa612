import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { readJsonIfExists, removeTempFiles, writeJsonAtomic } from '../../common/atomic.js';
import { type Digest, digestHex, isDigest, sha256Digest, shortId } from '../../common/digest.js';
import { conflict, errnoCode, invalidArgument, notFound } from '../../common/errors.js';
import { log } from '../../common/log.js';
import {
  familiarName,
  familiarString,
  fullName,
  looksLikeImageId,
  parseReference,
  refString,
  withDefaultTag,
} from '../../common/reference.js';
import type { ContentStore } from '../content/content.js';
import type { EventBus } from '../events/events.js';
import { chainIdOf, type Snapshotter } from '../snapshots/snapshots.js';
import type { Image, ImageFilters, ImageRecord, NewImage, RemoveResult } from './images.js';
import { type ImageConfig, parseImageConfig } from './manifest.js';

interface Repositories {
  /** full reference with tag -> image id */
  tags: Record<string, Digest>;
  /** full name@digest -> image id */
  digests: Record<string, Digest>;
}

/** Which containers use an image; supplied by the containers room. */
export type ImageUsage = (imageId: Digest) => { running: string[]; stopped: string[] };

interface Entry {
  record: ImageRecord;
  config: ImageConfig;
}

export class ImageStore {
  private readonly recordsDir: string;
  private readonly reposFile: string;
  private readonly images = new Map<Digest, Entry>();
  private tags = new Map<string, Digest>();
  private digests = new Map<string, Digest>();
  private writeChain: Promise<void> = Promise.resolve();
  usage: ImageUsage = () => ({ running: [], stopped: [] });

  constructor(
    root: string,
    private readonly content: ContentStore,
    private readonly snapshots: Snapshotter,
    private readonly events?: EventBus,
  ) {
    this.recordsDir = path.join(root, 'records');
    this.reposFile = path.join(root, 'repositories.json');
  }

  async init(): Promise<void> {
    await fsp.mkdir(this.recordsDir, { recursive: true });
    await removeTempFiles(this.recordsDir);
    await removeTempFiles(path.dirname(this.reposFile));
    for (const name of await fsp.readdir(this.recordsDir)) {
      if (!name.endsWith('.json')) continue;
      try {
        const record = JSON.parse(
          await fsp.readFile(path.join(this.recordsDir, name), 'utf8'),
        ) as ImageRecord;
        const config = parseImageConfig(await this.content.read(record.id));
        if (record.chainId && !this.snapshots.has(record.chainId)) throw new Error('layers missing');
        this.images.set(record.id, { record, config });
      } catch (err) {
        log.warn('dropping unreadable image record', { name, error: String(err) });
        await fsp.rm(path.join(this.recordsDir, name), { force: true });
      }
    }
    const repos = (await readJsonIfExists<Repositories>(this.reposFile)) ?? { tags: {}, digests: {} };
    for (const [ref, id] of Object.entries(repos.tags)) if (this.images.has(id)) this.tags.set(ref, id);
    for (const [ref, id] of Object.entries(repos.digests)) if (this.images.has(id)) this.digests.set(ref, id);
  }

  get count(): number {
    return this.images.size;
  }

  /** Registers an image whose config and layers are stored. Returns its id. Idempotent. */
  async add(img: NewImage): Promise<Digest> {
    const config = parseImageConfig(img.config);
    const id = sha256Digest(img.config);
    const diffIds = config.rootfs.diff_ids;
    if (diffIds.length !== img.layers.length)
      throw invalidArgument(
        `image config lists ${diffIds.length} layers but ${img.layers.length} layer blobs were given`,
      );
    let chain: Digest | null = null;
    let size = 0;
    const layers: ImageRecord['layers'] = img.layers.map((l) => ({ ...l }));
    for (let i = 0; i < diffIds.length; i++) {
      if (img.layers[i].diffId !== diffIds[i])
        throw invalidArgument(
          `layer ${i} diff id ${img.layers[i].diffId} does not match config ${diffIds[i]}`,
        );
      chain = chainIdOf(chain, diffIds[i]);
      const info = this.snapshots.get(chain);
      if (!info) throw invalidArgument(`layer ${chain} is not unpacked`);
      layers[i].unpackedSize = info.size;
      size += info.size;
    }
    if (!(await this.content.has(id))) await this.content.ingest(img.config);
    const existing = this.images.get(id);
    const record: ImageRecord = {
      id,
      manifestDigest: img.manifestDigest ?? existing?.record.manifestDigest,
      layers,
      chainId: chain,
      size,
      parent: img.parent ?? existing?.record.parent,
      addedAt: existing?.record.addedAt ?? Date.now(),
    };
    await this.serialize(() => writeJsonAtomic(path.join(this.recordsDir, `${digestHex(id)}.json`), record));
    this.images.set(id, { record, config });
    return id;
  }

  /** Whether an image's layer stack includes the snapshot `chainId`. */
  usesChain(chainId: Digest): boolean {
    for (const e of this.images.values()) {
      let c: Digest | null = null;
      for (const l of e.record.layers) if ((c = chainIdOf(c, l.diffId)) === chainId) return true;
    }
    return false;
  }

  /** Resolves a name, tag, digest reference, full id or unique id prefix. NotFound: `No such image: X`. */
  resolve(nameOrId: string): Image {
    const id = this.resolveId(nameOrId);
    if (!id) throw notFound(`No such image: ${nameOrId}`);
    return this.view(id);
  }

  tryResolve(nameOrId: string): Image | undefined {
    const id = this.resolveId(nameOrId);
    return id ? this.view(id) : undefined;
  }

  private resolveId(s: string): Digest | undefined {
    return this.resolveFullId(s) ?? this.resolveByName(s) ?? this.resolveIdPrefix(s);
  }

  private resolveFullId(s: string): Digest | undefined {
    const full = s.startsWith('sha256:') ? s : `sha256:${s}`;
    return isDigest(full) && this.images.has(full) ? full : undefined;
  }

  private resolveByName(s: string): Digest | undefined {
    let ref;
    try {
      ref = parseReference(s);
    } catch {
      return undefined;
    }
    if (ref.digest) {
      const byDigest = this.digests.get(`${fullName(ref)}@${ref.digest}`);
      if (byDigest) return byDigest;
      // A reference by digest also matches an image whose manifest has that digest.
      for (const e of this.images.values()) if (e.record.manifestDigest === ref.digest) return e.record.id;
      if (!ref.tag) return undefined;
    }
    return this.tags.get(refString(withDefaultTag({ ...ref, digest: undefined })));
  }

  private resolveIdPrefix(s: string): Digest | undefined {
    if (!looksLikeImageId(s)) return undefined;
    const hex = s.startsWith('sha256:') ? s.slice(7) : s;
    const matches = [...this.images.keys()].filter((id) => id.slice(7).startsWith(hex));
    return matches.length === 1 ? matches[0] : undefined;
  }

  private view(id: Digest, names = this.namesById()): Image {
    const e = this.images.get(id);
    if (!e) throw notFound(`No such image: ${id}`);
    const n = names.get(id);
    return { record: e.record, config: e.config, repoTags: n?.tags ?? [], repoDigests: n?.digests ?? [] };
  }

  /** Every image's names in one pass (listing must not rescan the tags per image). */
  private namesById(): Map<Digest, { tags: string[]; digests: string[] }> {
    const out = new Map<Digest, { tags: string[]; digests: string[] }>();
    const entry = (id: Digest) => {
      let e = out.get(id);
      if (!e) out.set(id, (e = { tags: [], digests: [] }));
      return e;
    };
    for (const [k, id] of this.tags) entry(id).tags.push(k);
    for (const [k, id] of this.digests) entry(id).digests.push(k);
    return out;
  }

  /** Points `target` (a tag reference) at the image `source` names. */
  async tag(source: string, target: string): Promise<void> {
    const img = this.resolve(source);
    await this.setTag(target, img.record.id);
  }

  async setTag(target: string, id: Digest): Promise<void> {
    const ref = parseReference(target);
    if (ref.digest) throw invalidArgument('refusing to create a tag with a digest reference');
    const key = refString(withDefaultTag(ref));
    const previous = this.tags.get(key);
    // Unchanged (a cached rebuild tags the image it had): no write, no event.
    if (previous === id) return;
    this.tags.set(key, id);
    await this.saveRepositories();
    this.events?.publish('image', 'tag', id, { name: familiarString(withDefaultTag(ref)) });
  }

  async setDigestRef(name: string, digest: Digest, id: Digest): Promise<void> {
    const ref = parseReference(name);
    this.digests.set(`${fullName(ref)}@${digest}`, id);
    await this.saveRepositories();
  }

  /** Docker's `rmi`: untag, and delete when the last name is gone. */
  async remove(nameOrId: string, opts: { force?: boolean; noPrune?: boolean } = {}): Promise<RemoveResult[]> {
    const id = this.resolveId(nameOrId);
    if (!id) throw notFound(`No such image: ${nameOrId}`);
    const img = this.view(id);
    const byId = this.resolveByName(nameOrId) === undefined;
    const usage = this.usage(id);
    const results: RemoveResult[] = [];

    if (!byId) {
      const ref = parseReference(nameOrId);
      const names = img.repoTags.length + img.repoDigests.length;
      const key = ref.digest ? `${fullName(ref)}@${ref.digest}` : refString(withDefaultTag(ref));
      const isLast = names <= 1;
      if (isLast && !opts.force && (usage.running.length || usage.stopped.length)) {
        const c = usage.running[0] ?? usage.stopped[0];
        throw conflict(
          `conflict: unable to remove repository reference "${nameOrId}" (must force) - container ${shortId(c)} is using its referenced image ${shortId(id)}`,
        );
      }
      if (this.tags.delete(key) || this.digests.delete(key)) {
        results.push({ Untagged: familiarOf(key) });
        this.events?.publish('image', 'untag', id, { name: familiarOf(key) });
      }
      // When the last tag goes, the digest references of the same repository go with it.
      if (!ref.digest && this.namesOf(id).length > 0 && [...this.tags.values()].every((v) => v !== id)) {
        for (const [k, v] of [...this.digests])
          if (v === id && k.startsWith(`${fullName(ref)}@`)) {
            this.digests.delete(k);
            results.push({ Untagged: familiarOf(k) });
          }
      }
      await this.saveRepositories();
      if (this.namesOf(id).length > 0) return results;
      if (usage.running.length || usage.stopped.length) return results; // forced: keep the image, now dangling
      results.push(...(await this.deleteImage(id, !opts.noPrune)));
      return results;
    }

    if (usage.running.length)
      throw conflict(
        `conflict: unable to delete ${shortId(id)} (cannot be forced) - image is being used by running container ${shortId(usage.running[0])}`,
      );
    if (!opts.force) {
      if (usage.stopped.length)
        throw conflict(
          `conflict: unable to delete ${shortId(id)} (must be forced) - image is being used by stopped container ${shortId(usage.stopped[0])}`,
        );
      const repos = new Set(img.repoTags.concat(img.repoDigests).map((r) => fullName(parseReference(r))));
      if (repos.size > 1)
        throw conflict(
          `conflict: unable to delete ${shortId(id)} (must be forced) - image is referenced in multiple repositories`,
        );
    }
    if (this.children(id).length && !opts.force)
      throw conflict(
        `conflict: unable to delete ${shortId(id)} (cannot be forced) - image has dependent child images`,
      );
    for (const k of this.namesOf(id)) {
      this.tags.delete(k);
      this.digests.delete(k);
      results.push({ Untagged: familiarOf(k) });
      this.events?.publish('image', 'untag', id, { name: familiarOf(k) });
    }
    await this.saveRepositories();
    if (usage.stopped.length) return results;
    results.push(...(await this.deleteImage(id, !opts.noPrune)));
    return results;
  }

  private namesOf(id: Digest): string[] {
    const out: string[] = [];
    for (const [k, v] of this.tags) if (v === id) out.push(k);
    for (const [k, v] of this.digests) if (v === id) out.push(k);
    return out;
  }

  private children(id: Digest): Digest[] {
    return [...this.images.values()].filter((e) => e.record.parent === id).map((e) => e.record.id);
  }

  /** Deletes an image with no names: its record, then layers and blobs no other image uses. */
  private async deleteImage(id: Digest, pruneParents: boolean): Promise<RemoveResult[]> {
    const entry = this.images.get(id);
    if (!entry) return [];
    this.images.delete(id);
    await this.serialize(() => fsp.rm(path.join(this.recordsDir, `${digestHex(id)}.json`), { force: true }));
    const results: RemoveResult[] = [{ Deleted: id }];
    this.events?.publish('image', 'delete', id);
    results.push(...(await this.collect(entry.record)));
    const parent = entry.record.parent;
    if (pruneParents && parent && this.images.has(parent) && this.namesOf(parent).length === 0) {
      const u = this.usage(parent);
      if (!u.running.length && !u.stopped.length && this.children(parent).length === 0)
        results.push(...(await this.deleteImage(parent, true)));
    }
    return results;
  }

  /** Removes the snapshots and blobs of a deleted image that nothing else references. */
  private async collect(record: ImageRecord): Promise<RemoveResult[]> {
    const usedChains = new Set<string>();
    const usedBlobs = new Set<string>();
    for (const e of this.images.values()) {
      let c: Digest | null = null;
      for (const l of e.record.layers) {
        c = chainIdOf(c, l.diffId);
        usedChains.add(c);
        usedBlobs.add(l.digest);
      }
      usedBlobs.add(e.record.id);
      if (e.record.manifestDigest) usedBlobs.add(e.record.manifestDigest);
    }
    const results: RemoveResult[] = [];
    const chains: Digest[] = [];
    let c: Digest | null = null;
    for (const l of record.layers) {
      c = chainIdOf(c, l.diffId);
      chains.push(c);
    }
    for (const chain of chains.reverse()) {
      if (usedChains.has(chain) || !this.snapshots.has(chain)) continue;
      try {
        await this.snapshots.remove(chain);
        results.push({ Deleted: chain });
      } catch (err) {
        log.warn('layer kept', { chain, error: String(err) });
        break;
      }
    }
    const blobs = [record.id, record.manifestDigest, ...record.layers.map((l) => l.digest)];
    for (const b of blobs) {
      if (!b || usedBlobs.has(b)) continue;
      try {
        await this.content.delete(b);
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT' && !(err instanceof Error && err.message.includes('not found')))
          log.warn('blob kept', { blob: b, error: String(err) });
      }
    }
    return results;
  }

  list(opts: { all?: boolean; filters?: ImageFilters } = {}): Image[] {
    const f = opts.filters ?? {};
    const parents = new Set([...this.images.values()].map((e) => e.record.parent).filter(Boolean));
    const before = f.before ? this.resolve(f.before).record.addedAt : undefined;
    const since = f.since ? this.resolve(f.since).record.addedAt : undefined;
    const out: Image[] = [];
    const names = this.namesById();
    for (const id of this.images.keys()) {
      const img = this.view(id, names);
      const dangling = img.repoTags.length === 0 && img.repoDigests.length === 0;
      if (!opts.all && dangling && parents.has(id)) continue; // intermediate build layer
      if (f.dangling !== undefined && f.dangling !== (img.repoTags.length === 0)) continue;
      if (f.label && !f.label.every((l) => labelMatches(img.config.config?.Labels ?? {}, l))) continue;
      if (before !== undefined && !(img.record.addedAt < before)) continue;
      if (since !== undefined && !(img.record.addedAt > since)) continue;
      if (f.reference) {
        const tags = img.repoTags.filter((t) => f.reference!.some((p) => referenceMatches(t, p)));
        if (tags.length === 0) continue;
        out.push({ ...img, repoTags: tags });
        continue;
      }
      out.push(img);
    }
    return out.sort((a, b) => createdMs(b) - createdMs(a));
  }

  /** Removes dangling images (or, with all, every image no container uses). */
  async prune(opts: { all?: boolean; filters?: ImageFilters } = {}): Promise<{
    deleted: RemoveResult[];
    reclaimed: number;
  }> {
    const deleted: RemoveResult[] = [];
    let reclaimed = 0;
    const candidates = this.list({ all: true, filters: { ...opts.filters, dangling: undefined } }).filter(
      (img) => (opts.all ? true : img.repoTags.length === 0),
    );
    for (const img of candidates) {
      const id = img.record.id;
      if (!this.images.has(id)) continue;
      const u = this.usage(id);
      if (u.running.length || u.stopped.length || this.children(id).length) continue;
      for (const k of this.namesOf(id)) {
        this.tags.delete(k);
        this.digests.delete(k);
        deleted.push({ Untagged: familiarOf(k) });
      }
      await this.saveRepositories();
      reclaimed += img.record.size;
      deleted.push(...(await this.deleteImage(id, true)));
    }
    return { deleted, reclaimed };
  }

  private async saveRepositories(): Promise<void> {
    const repos: Repositories = {
      tags: Object.fromEntries(this.tags),
      digests: Object.fromEntries(this.digests),
    };
    await this.serialize(() => writeJsonAtomic(this.reposFile, repos));
  }

  /** Runs state writes one at a time, in order. */
  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.writeChain.then(fn);
    this.writeChain = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }
}

function familiarOf(key: string): string {
  return familiarString(parseReference(key));
}

export function createdMs(img: Image): number {
  const t = img.config.created ? Date.parse(img.config.created) : NaN;
  return Number.isNaN(t) ? 0 : t;
}

function labelMatches(labels: Record<string, string>, filter: string): boolean {
  const eq = filter.indexOf('=');
  if (eq < 0) return filter in labels;
  return labels[filter.slice(0, eq)] === filter.slice(eq + 1);
}

/** Docker's reference filter: a glob on the familiar name[:tag]. */
function referenceMatches(fullRef: string, pattern: string): boolean {
  const ref = parseReference(fullRef);
  const re = globToRegExp(pattern);
  const name = familiarName(ref);
  const candidates = [name, familiarString(ref), fullRef, fullName(ref)];
  if (!pattern.includes(':')) return re.test(name) || re.test(fullName(ref));
  return candidates.some((c) => re.test(c));
}

function globToRegExp(glob: string): RegExp {
  let re = '';
  for (const ch of glob) {
    if (ch === '*') re += '[^/]*';
    else if (ch === '?') re += '[^/]';
    else re += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/**
 * The hub's storage driver interface and its filesystem implementation.
 *
 * Lifecycle: upload (start → append… → commit: verified, fsynced, renamed into blobs/) → link the
 * blob into a repository (a repository only serves blobs linked into it, so a private repository's
 * layers cannot be read through another name) → manifests are blobs too, linked by digest
 * (revisions) and by tag; a manifest with a `subject` is also listed under its subject's referrers →
 * unlink / delete → `gc` removes blobs no manifest references. Every commit is a rename.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { readJsonIfExists, syncDir, writeFileAtomic, writeJsonAtomic } from '../common/atomic.js';
import { type Digest, digestHex, isDigest } from '../common/digest.js';
import { errnoCode } from '../common/errors.js';

export interface HubStorage {
  init(): Promise<void>;
  blobSize(digest: Digest): Promise<number | undefined>;
  readBlob(digest: Digest, range?: { start: number; end: number }): Readable;
  /** Starts an upload session for a repository; returns its id. */
  startUpload(repo: string): Promise<string>;
  /** The repository an upload session belongs to. */
  uploadRepo(id: string): Promise<string | undefined>;
  /** Appends to an upload; returns its new size. `offset` must equal the current size. */
  appendUpload(id: string, data: Readable, offset?: number): Promise<number>;
  uploadSize(id: string): Promise<number | undefined>;
  /** Verifies and commits an upload as a blob; false when the digest does not match. */
  commitUpload(id: string, digest: Digest): Promise<boolean>;
  cancelUpload(id: string): Promise<void>;
  linkManifest(repo: string, digest: Digest, mediaType: string, tag?: string): Promise<void>;
  resolveTag(repo: string, tag: string): Promise<Digest | undefined>;
  hasManifest(repo: string, digest: Digest): Promise<boolean>;
  manifestType(repo: string, digest: Digest): Promise<string | undefined>;
  tags(repo: string): Promise<string[]>;
  repositories(): Promise<string[]>;
  deleteManifest(repo: string, digest: Digest): Promise<boolean>;
  deleteTag(repo: string, tag: string): Promise<boolean>;
  /** Makes a stored blob readable through `repo`. */
  linkBlob(repo: string, digest: Digest): Promise<void>;
  /** Whether `repo` may serve the blob (linked and present). */
  hasBlobIn(repo: string, digest: Digest): Promise<boolean>;
  /** The blob opened for reading, with its size, when `repo` may serve it; the caller closes it. */
  openBlobIn(repo: string, digest: Digest): Promise<{ file: FileHandle; size: number } | undefined>;
  unlinkBlob(repo: string, digest: Digest): Promise<boolean>;
  addReferrer(repo: string, subject: Digest, descriptor: Descriptor): Promise<void>;
  referrers(repo: string, subject: Digest): Promise<Descriptor[]>;
  removeReferrer(repo: string, subject: Digest, digest: Digest): Promise<void>;
  repoMeta(repo: string): Promise<RepoMeta>;
  setRepoMeta(repo: string, meta: RepoMeta): Promise<void>;
}

export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

/** What the hub knows about a repository beyond its content. */
export interface RepoMeta {
  private?: boolean;
  description?: string;
  stars?: number;
}

export class FsHubStorage implements HubStorage {
  constructor(readonly root: string) {}

  private blobPath(d: Digest): string {
    return path.join(this.root, 'blobs', 'sha256', digestHex(d).slice(0, 2), digestHex(d));
  }
  private uploadPath(id: string): string {
    if (!/^[0-9a-f-]{36}$/.test(id))
      throw Object.assign(new Error('upload unknown'), { code: 'BLOB_UPLOAD_UNKNOWN' });
    return path.join(this.root, 'uploads', id);
  }
  private repoDir(repo: string): string {
    return path.join(this.root, 'repositories', ...repo.split('/'));
  }

  async init(): Promise<void> {
    for (const d of ['blobs/sha256', 'uploads', 'repositories'])
      await fsp.mkdir(path.join(this.root, d), { recursive: true });
    // Hubs written before repositories had blob links: link what their manifests reference.
    for (const repo of await this.repositories()) {
      const layers = path.join(this.repoDir(repo), '_layers');
      if (existsSync(layers)) continue;
      for (const rev of await this.revisions(repo))
        for (const d of [rev, ...(await this.referencedBlobs(rev))])
          if ((await this.blobSize(d)) !== undefined) await this.linkBlob(repo, d);
      await fsp.mkdir(layers, { recursive: true });
    }
  }

  /** The manifest digests linked into a repository. */
  async revisions(repo: string): Promise<Digest[]> {
    try {
      return (await fsp.readdir(path.join(this.repoDir(repo), '_manifests', 'revisions')))
        .map((h) => `sha256:${h}`)
        .filter(isDigest);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return [];
      throw err;
    }
  }

  /** The blobs a stored manifest names: config and layers, or an index's manifests; subject excluded. */
  async referencedBlobs(manifest: Digest): Promise<Digest[]> {
    let parsed: unknown;
    try {
      parsed = JSON.parse(await fsp.readFile(this.blobPath(manifest), 'utf8'));
    } catch {
      return [];
    }
    const out: Digest[] = [];
    const take = (v: unknown) => {
      const d = (v as { digest?: unknown } | null)?.digest;
      if (typeof d === 'string' && isDigest(d)) out.push(d);
    };
    const m = parsed as { config?: unknown; layers?: unknown; manifests?: unknown; blobs?: unknown };
    take(m.config);
    for (const list of [m.layers, m.manifests, m.blobs]) if (Array.isArray(list)) list.forEach(take);
    return out;
  }

  async blobSize(digest: Digest): Promise<number | undefined> {
    try {
      return (await fsp.stat(this.blobPath(digest))).size;
    } catch {
      return undefined;
    }
  }

  readBlob(digest: Digest, range?: { start: number; end: number }): Readable {
    return createReadStream(this.blobPath(digest), range);
  }

  async startUpload(repo: string): Promise<string> {
    const id = randomUUID();
    await fsp.writeFile(`${this.uploadPath(id)}.repo`, repo);
    await fsp.writeFile(this.uploadPath(id), '');
    return id;
  }

  async uploadRepo(id: string): Promise<string | undefined> {
    if (!/^[0-9a-f-]{36}$/.test(id)) return undefined;
    try {
      return await fsp.readFile(`${this.uploadPath(id)}.repo`, 'utf8');
    } catch {
      return undefined;
    }
  }

  async uploadSize(id: string): Promise<number | undefined> {
    try {
      return (await fsp.stat(this.uploadPath(id))).size;
    } catch {
      return undefined;
    }
  }

  async appendUpload(id: string, data: Readable, offset?: number): Promise<number> {
    const size = await this.uploadSize(id);
    if (size === undefined) throw Object.assign(new Error('upload unknown'), { code: 'BLOB_UPLOAD_UNKNOWN' });
    if (offset !== undefined && offset !== size)
      throw Object.assign(new Error('range not satisfiable'), { code: 'RANGE' });
    await pipeline(data, createWriteStream(this.uploadPath(id), { flags: 'a' }));
    return (await this.uploadSize(id))!;
  }

  async commitUpload(id: string, digest: Digest): Promise<boolean> {
    const p = this.uploadPath(id);
    const hash = createHash('sha256');
    for await (const c of createReadStream(p)) hash.update(c as Buffer);
    await fsp.rm(`${p}.repo`, { force: true });
    if (`sha256:${hash.digest('hex')}` !== digest) {
      await fsp.rm(p, { force: true });
      return false;
    }
    const fh = await fsp.open(p, 'r+');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    const dest = this.blobPath(digest);
    await fsp.mkdir(path.dirname(dest), { recursive: true });
    await fsp.rename(p, dest);
    await syncDir(path.dirname(dest));
    return true;
  }

  async cancelUpload(id: string): Promise<void> {
    await fsp.rm(this.uploadPath(id), { force: true });
    await fsp.rm(`${this.uploadPath(id)}.repo`, { force: true });
  }

  async linkManifest(repo: string, digest: Digest, mediaType: string, tag?: string): Promise<void> {
    const dir = this.repoDir(repo);
    await fsp.mkdir(path.join(dir, '_manifests', 'revisions'), { recursive: true });
    await fsp.mkdir(path.join(dir, '_manifests', 'tags'), { recursive: true });
    await writeFileAtomic(path.join(dir, '_manifests', 'revisions', digestHex(digest)), mediaType);
    if (tag) await writeFileAtomic(path.join(dir, '_manifests', 'tags', tag), digest);
  }

  async resolveTag(repo: string, tag: string): Promise<Digest | undefined> {
    try {
      const d = (await fsp.readFile(path.join(this.repoDir(repo), '_manifests', 'tags', tag), 'utf8')).trim();
      return isDigest(d) ? d : undefined;
    } catch {
      return undefined;
    }
  }

  async manifestType(repo: string, digest: Digest): Promise<string | undefined> {
    try {
      return await fsp.readFile(
        path.join(this.repoDir(repo), '_manifests', 'revisions', digestHex(digest)),
        'utf8',
      );
    } catch {
      return undefined;
    }
  }

  async hasManifest(repo: string, digest: Digest): Promise<boolean> {
    return (await this.manifestType(repo, digest)) !== undefined;
  }

  async tags(repo: string): Promise<string[]> {
    try {
      return (await fsp.readdir(path.join(this.repoDir(repo), '_manifests', 'tags')))
        .filter((t) => !t.startsWith('.tmp-'))
        .sort();
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return [];
      throw err;
    }
  }

  async repositories(): Promise<string[]> {
    const out: string[] = [];
    const walk = async (dir: string, prefix: string[]) => {
      let names: string[];
      try {
        names = await fsp.readdir(dir);
      } catch {
        return;
      }
      if (names.includes('_manifests')) out.push(prefix.join('/'));
      for (const n of names)
        if (!n.startsWith('_') && !n.startsWith('.')) await walk(path.join(dir, n), [...prefix, n]);
    };
    await walk(path.join(this.root, 'repositories'), []);
    return out.sort();
  }

  async deleteManifest(repo: string, digest: Digest): Promise<boolean> {
    if (!(await this.hasManifest(repo, digest))) return false;
    await fsp.rm(path.join(this.repoDir(repo), '_manifests', 'revisions', digestHex(digest)), {
      force: true,
    });
    for (const t of await this.tags(repo))
      if ((await this.resolveTag(repo, t)) === digest) await this.deleteTag(repo, t);
    return true;
  }

  async deleteTag(repo: string, tag: string): Promise<boolean> {
    try {
      await fsp.unlink(path.join(this.repoDir(repo), '_manifests', 'tags', tag));
      return true;
    } catch {
      return false;
    }
  }

  private blobLink(repo: string, digest: Digest): string {
    return path.join(this.repoDir(repo), '_layers', digestHex(digest));
  }

  async linkBlob(repo: string, digest: Digest): Promise<void> {
    const link = this.blobLink(repo, digest);
    if (existsSync(link)) return;
    await fsp.mkdir(path.dirname(link), { recursive: true });
    await writeFileAtomic(link, digest);
  }

  async hasBlobIn(repo: string, digest: Digest): Promise<boolean> {
    return (await isLinked(this.blobLink(repo, digest))) && (await this.blobSize(digest)) !== undefined;
  }

  async openBlobIn(repo: string, digest: Digest): Promise<{ file: FileHandle; size: number } | undefined> {
    if (!(await isLinked(this.blobLink(repo, digest)))) return undefined;
    let file: FileHandle;
    try {
      file = await fsp.open(this.blobPath(digest), 'r');
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return undefined;
      throw err;
    }
    try {
      // The size of what was opened: a blob deleted meanwhile is still whole through this handle.
      return { file, size: (await file.stat()).size };
    } catch (err) {
      await file.close();
      throw err;
    }
  }

  async unlinkBlob(repo: string, digest: Digest): Promise<boolean> {
    try {
      await fsp.unlink(this.blobLink(repo, digest));
      return true;
    } catch {
      return false;
    }
  }

  private referrerDir(repo: string, subject: Digest): string {
    return path.join(this.repoDir(repo), '_referrers', digestHex(subject));
  }

  async addReferrer(repo: string, subject: Digest, descriptor: Descriptor): Promise<void> {
    const dir = this.referrerDir(repo, subject);
    await fsp.mkdir(dir, { recursive: true });
    await writeJsonAtomic(path.join(dir, digestHex(descriptor.digest)), descriptor);
  }

  async referrers(repo: string, subject: Digest): Promise<Descriptor[]> {
    let names: string[];
    try {
      names = (await fsp.readdir(this.referrerDir(repo, subject))).filter((n) => !n.startsWith('.')).sort();
    } catch {
      return [];
    }
    const out: Descriptor[] = [];
    for (const n of names) {
      const d = await readJsonIfExists<Descriptor>(path.join(this.referrerDir(repo, subject), n));
      if (d && (await this.hasManifest(repo, d.digest))) out.push(d);
    }
    return out;
  }

  async removeReferrer(repo: string, subject: Digest, digest: Digest): Promise<void> {
    await fsp.rm(path.join(this.referrerDir(repo, subject), digestHex(digest)), { force: true });
  }

  async repoMeta(repo: string): Promise<RepoMeta> {
    return (await readJsonIfExists<RepoMeta>(path.join(this.repoDir(repo), '_meta.json'))) ?? {};
  }

  async setRepoMeta(repo: string, meta: RepoMeta): Promise<void> {
    await fsp.mkdir(this.repoDir(repo), { recursive: true });
    await writeJsonAtomic(path.join(this.repoDir(repo), '_meta.json'), meta);
  }
}

async function isLinked(link: string): Promise<boolean> {
  try {
    await fsp.access(link);
    return true;
  } catch {
    return false;
  }
}

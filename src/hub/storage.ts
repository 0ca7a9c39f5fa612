/**
 * The hub's storage driver interface and its filesystem implementation.
 *
 * Blobs are content-addressed and verified on commit; manifests are blobs too, linked into a
 * repository by digest (revisions) and by tag. Every commit is a rename.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { writeFileAtomic } from '../common/atomic.js';
import { type Digest, digestHex, isDigest } from '../common/digest.js';
import { errnoCode } from '../common/errors.js';

export interface HubStorage {
  init(): Promise<void>;
  blobSize(digest: Digest): Promise<number | undefined>;
  readBlob(digest: Digest, range?: { start: number; end: number }): Readable;
  /** Starts an upload session; returns its id. */
  startUpload(): Promise<string>;
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
}

export class FsHubStorage implements HubStorage {
  constructor(readonly root: string) {}

  private blobPath(d: Digest): string {
    return path.join(this.root, 'blobs', 'sha256', digestHex(d).slice(0, 2), digestHex(d));
  }
  private uploadPath(id: string): string {
    if (!/^[0-9a-f-]{36}$/.test(id)) throw new Error('bad upload id');
    return path.join(this.root, 'uploads', id);
  }
  private repoDir(repo: string): string {
    return path.join(this.root, 'repositories', ...repo.split('/'));
  }

  async init(): Promise<void> {
    for (const d of ['blobs/sha256', 'uploads', 'repositories'])
      await fsp.mkdir(path.join(this.root, d), { recursive: true });
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

  async startUpload(): Promise<string> {
    const id = randomUUID();
    await fsp.writeFile(this.uploadPath(id), '');
    return id;
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
    if (`sha256:${hash.digest('hex')}` !== digest) {
      await fsp.rm(p, { force: true });
      return false;
    }
    const dest = this.blobPath(digest);
    await fsp.mkdir(path.dirname(dest), { recursive: true });
    await fsp.rename(p, dest);
    return true;
  }

  async cancelUpload(id: string): Promise<void> {
    await fsp.rm(this.uploadPath(id), { force: true });
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
      for (const n of names) if (n !== '_manifests') await walk(path.join(dir, n), [...prefix, n]);
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
}

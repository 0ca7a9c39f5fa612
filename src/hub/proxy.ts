/**
 * The pull-through cache (hub config `proxy: <upstream URL>`, as the reference registry's proxy
 * mode for docker.io): a manifest or blob the hub does not have is fetched from the upstream,
 * verified by digest and stored, then served as if it had been pushed. Tags are fetched on a
 * miss only; a cached tag is not revalidated against the upstream.
 */
import { Readable } from 'node:stream';
import { type Digest, isDigest } from '../common/digest.js';
import { log } from '../common/log.js';
import { RegistryClient } from '../distribution/registry.js';
import { checkPushedManifest } from './manifest.js';
import type { HubStorage } from './storage.js';

export class PullThrough {
  constructor(readonly upstream: string) {}

  private client(repo: string): RegistryClient {
    return new RegistryClient({ base: this.upstream.replace(/\/+$/, ''), repo });
  }

  /** Fetches and stores a manifest by tag or digest; a miss upstream leaves the miss. */
  async fetchManifest(storage: HubStorage, repo: string, ref: string): Promise<void> {
    let m: Awaited<ReturnType<RegistryClient['getManifest']>>;
    try {
      m = await this.client(repo).getManifest(ref);
    } catch (err) {
      log.info('pull-through: manifest miss upstream', { repo, ref, error: String(err) });
      return;
    }
    const checked = checkPushedManifest(m.body, m.mediaType || undefined);
    const id = await storage.startUpload(repo);
    await storage.appendUpload(id, Readable.from([m.body]));
    if (!(await storage.commitUpload(id, m.digest))) return;
    await storage.linkBlob(repo, m.digest);
    await storage.linkManifest(repo, m.digest, checked.mediaType, isDigest(ref) ? undefined : ref);
  }

  /** Streams a blob from the upstream into the store (verified on commit). */
  async fetchBlob(storage: HubStorage, repo: string, digest: Digest): Promise<void> {
    if ((await storage.blobSize(digest)) !== undefined) {
      await storage.linkBlob(repo, digest);
      return;
    }
    let stream: Readable;
    try {
      ({ stream } = await this.client(repo).getBlob(digest));
    } catch (err) {
      log.info('pull-through: blob miss upstream', { repo, digest, error: String(err) });
      return;
    }
    const id = await storage.startUpload(repo);
    try {
      await storage.appendUpload(id, stream);
    } catch (err) {
      await storage.cancelUpload(id);
      throw err;
    }
    if (await storage.commitUpload(id, digest)) await storage.linkBlob(repo, digest);
    else log.error('pull-through: upstream sent a blob that does not match its digest', { repo, digest });
  }
}

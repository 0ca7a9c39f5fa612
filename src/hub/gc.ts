/**
 * `berth hub gc`: mark and sweep over a hub root. Marked: every manifest linked into a repository
 * and every blob those manifests name. Swept: other blobs older than `minAge` (younger ones may
 * belong to a push in progress), upload sessions older than `minAge`, and repository links to
 * blobs that are gone.
 *
 * Safe against a crash and against pushes while it runs: candidates are first renamed into
 * `gc-trash/` (a blob is either in place or in the trash, never half there), the marks are taken
 * again, and a candidate that a manifest pushed meanwhile names is renamed back before the trash
 * is emptied. A run that died leaves its trash behind; the next run puts it back first. One run
 * at a time (`gc.lock`).
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { type Digest, digestHex, isDigest } from '../common/digest.js';
import { errnoCode, failedPrecondition } from '../common/errors.js';
import { FsHubStorage } from './storage.js';

export interface GcOptions {
  /** Keep unreferenced blobs and uploads younger than this (ms). */
  minAgeMs?: number;
  /** Also unlink manifests no tag reaches (directly, through an index, or as a referrer). */
  deleteUntagged?: boolean;
  dryRun?: boolean;
}

export interface GcResult {
  blobsRemoved: Digest[];
  bytesFreed: number;
  manifestsRemoved: number;
  uploadsRemoved: number;
}

async function listDir(dir: string): Promise<string[]> {
  try {
    return await fsp.readdir(dir);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [];
    throw err;
  }
}

async function lock(root: string): Promise<() => Promise<void>> {
  const file = path.join(root, 'gc.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await fsp.writeFile(file, String(process.pid), { flag: 'wx' });
      return () => fsp.rm(file, { force: true });
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') throw err;
      const pid = Number(await fsp.readFile(file, 'utf8').catch(() => '0'));
      let alive = false;
      try {
        if (pid > 0) process.kill(pid, 0);
        alive = pid > 0;
      } catch {
        alive = false;
      }
      if (alive) throw failedPrecondition(`another gc is running (pid ${pid})`);
      await fsp.rm(file, { force: true });
    }
  }
  throw failedPrecondition('could not take the gc lock');
}

async function mark(storage: FsHubStorage): Promise<Set<string>> {
  const marked = new Set<string>();
  for (const repo of await storage.repositories())
    for (const rev of await storage.revisions(repo)) {
      marked.add(digestHex(rev));
      for (const d of await storage.referencedBlobs(rev)) marked.add(digestHex(d));
    }
  return marked;
}

async function untagged(storage: FsHubStorage, repo: string): Promise<Digest[]> {
  const revisions = await storage.revisions(repo);
  const keep = new Set<string>();
  for (const t of await storage.tags(repo)) {
    const d = await storage.resolveTag(repo, t);
    if (d) keep.add(d);
  }
  // Children of kept indexes and referrers of kept manifests are kept too, to a fixpoint.
  for (let changed = true; changed;) {
    changed = false;
    for (const rev of revisions) {
      if (keep.has(rev)) {
        for (const child of await storage.referencedBlobs(rev))
          if (revisions.includes(child) && !keep.has(child)) {
            keep.add(child);
            changed = true;
          }
        for (const r of await storage.referrers(repo, rev))
          if (!keep.has(r.digest)) {
            keep.add(r.digest);
            changed = true;
          }
      }
    }
  }
  return revisions.filter((r) => !keep.has(r));
}

export async function collectGarbage(root: string, o: GcOptions = {}): Promise<GcResult> {
  const minAge = o.minAgeMs ?? 10 * 60_000;
  const storage = new FsHubStorage(root);
  await storage.init();
  const unlock = await lock(root);
  const result: GcResult = { blobsRemoved: [], bytesFreed: 0, manifestsRemoved: 0, uploadsRemoved: 0 };
  const trash = path.join(root, 'gc-trash');
  const blobPath = (hex: string) => path.join(root, 'blobs', 'sha256', hex.slice(0, 2), hex);
  try {
    // A previous run that died: put its trash back, it is judged again below.
    await fsp.mkdir(trash, { recursive: true });
    for (const hex of await listDir(trash)) {
      await fsp.mkdir(path.dirname(blobPath(hex)), { recursive: true });
      await fsp.rename(path.join(trash, hex), blobPath(hex));
    }
    if (o.deleteUntagged)
      for (const repo of await storage.repositories())
        for (const d of await untagged(storage, repo)) {
          if (!o.dryRun) await storage.deleteManifest(repo, d);
          result.manifestsRemoved++;
        }
    const marked = await mark(storage);
    const now = Date.now();
    const candidates: { hex: string; size: number }[] = [];
    for (const prefix of await listDir(path.join(root, 'blobs', 'sha256')))
      for (const hex of await listDir(path.join(root, 'blobs', 'sha256', prefix))) {
        if (!isDigest(`sha256:${hex}`) || marked.has(hex)) continue;
        const st = await fsp.stat(blobPath(hex)).catch(() => undefined);
        if (st && now - st.mtimeMs >= minAge) candidates.push({ hex, size: st.size });
      }
    if (!o.dryRun) {
      for (const c of candidates) await fsp.rename(blobPath(c.hex), path.join(trash, c.hex));
      const again = await mark(storage);
      for (const c of candidates)
        if (again.has(c.hex)) await fsp.rename(path.join(trash, c.hex), blobPath(c.hex));
      for (const c of candidates)
        if (!again.has(c.hex)) await fsp.rm(path.join(trash, c.hex), { force: true });
      candidates.splice(0, candidates.length, ...candidates.filter((c) => !again.has(c.hex)));
    }
    for (const c of candidates) {
      result.blobsRemoved.push(`sha256:${c.hex}`);
      result.bytesFreed += c.size;
    }
    if (!o.dryRun) {
      for (const repo of await storage.repositories()) {
        const layers = path.join(root, 'repositories', ...repo.split('/'), '_layers');
        for (const hex of await listDir(layers))
          if (isDigest(`sha256:${hex}`) && (await storage.blobSize(`sha256:${hex}`)) === undefined)
            await fsp.rm(path.join(layers, hex), { force: true });
      }
      for (const name of await listDir(path.join(root, 'uploads'))) {
        const p = path.join(root, 'uploads', name);
        const st = await fsp.stat(p).catch(() => undefined);
        if (st && now - st.mtimeMs >= minAge) {
          await fsp.rm(p, { force: true });
          if (!name.endsWith('.repo')) result.uploadsRemoved++;
        }
      }
    }
    return result;
  } finally {
    await unlock();
  }
}

import assert from 'node:assert/strict';
import { mkdtempSync, promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { sha256Digest } from '../../src/common/digest.js';
import { BerthError } from '../../src/common/errors.js';
import { FileContentStore } from '../../src/engine/content/store.js';

async function withStore(fn: (s: FileContentStore, root: string) => Promise<void>): Promise<void> {
  const root = mkdtempSync(path.join(os.tmpdir(), 'berth-content-'));
  const s = new FileContentStore(root);
  await s.init();
  try {
    await fn(s, root);
  } finally {
    await fsp.rm(root, { recursive: true, force: true });
  }
}

test('ingest verifies digest and size, stores atomically, reads back', () =>
  withStore(async (s) => {
    const data = Buffer.from('hello berth');
    const digest = sha256Digest(data);
    const info = await s.ingest(Readable.from([data.subarray(0, 3), data.subarray(3)]), {
      digest,
      size: data.length,
    });
    assert.deepEqual(info, { digest, size: data.length });
    assert.equal(await s.has(digest), true);
    assert.deepEqual(await s.read(digest), data);
    assert.deepEqual(
      (await s.list()).map((b) => b.digest),
      [digest],
    );
  }));

test('a digest mismatch keeps nothing', () =>
  withStore(async (s, root) => {
    const wrong = sha256Digest('other');
    await assert.rejects(s.ingest(Readable.from([Buffer.from('data')]), { digest: wrong }), (e: unknown) => {
      assert.ok(e instanceof BerthError && e.kind === 'InvalidArgument');
      assert.match((e as Error).message, /digest mismatch/);
      return true;
    });
    assert.equal(await s.has(wrong), false);
    assert.deepEqual(await s.list(), []);
    assert.deepEqual(await fsp.readdir(path.join(root, 'ingest')), []);
  }));

test('a size mismatch (too long or too short) keeps nothing', () =>
  withStore(async (s, root) => {
    await assert.rejects(s.ingest(Readable.from([Buffer.from('12345')]), { size: 3 }), /size mismatch/);
    await assert.rejects(s.ingest(Buffer.from('12'), { size: 3 }), /size mismatch/);
    assert.deepEqual(await s.list(), []);
    assert.deepEqual(await fsp.readdir(path.join(root, 'ingest')), []);
  }));

test('concurrent ingests of the same blob are safe', () =>
  withStore(async (s) => {
    const data = Buffer.alloc(1 << 20, 7);
    const digest = sha256Digest(data);
    const results = await Promise.all(
      Array.from({ length: 8 }, () => s.ingest(Readable.from([data]), { digest, size: data.length })),
    );
    for (const r of results) assert.equal(r.digest, digest);
    assert.deepEqual(await s.read(digest), data);
  }));

test('partial ingests left by a crash are removed at start-up', () =>
  withStore(async (s, root) => {
    await fsp.writeFile(path.join(root, 'ingest', 'leftover'), 'half');
    const again = new FileContentStore(root);
    await again.init();
    assert.deepEqual(await fsp.readdir(path.join(root, 'ingest')), []);
    void s;
  }));

test('missing blobs are NotFound', () =>
  withStore(async (s) => {
    const d = sha256Digest('nope');
    await assert.rejects(s.read(d), (e: unknown) => e instanceof BerthError && e.kind === 'NotFound');
    await assert.rejects(s.info(d), (e: unknown) => e instanceof BerthError && e.kind === 'NotFound');
  }));

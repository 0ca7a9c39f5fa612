import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, test } from 'node:test';
import { busyboxSeed, pushSeed } from '../../src/hub/seed.js';
import { berth, startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { errorCode, pushImage, startTestHub, type TestHub } from './hubtest.js';

let upstream: TestHub;
let cache: TestHub;

before(async () => {
  upstream = await startTestHub();
  cache = await startTestHub({ fileConfig: { proxy: upstream.url } });
});
after(async () => {
  await cache.stop();
  await upstream.stop();
});

const accept = { Accept: 'application/vnd.oci.image.manifest.v1+json' };

test('pull-through: a miss is fetched from the upstream, verified, stored and then served locally', async () => {
  const img = await pushImage(upstream, 'library/thing', 'v1');
  assert.equal(await cache.storage.hasManifest('library/thing', img.digest as `sha256:${string}`), false);
  const m = await cache.req('GET', '/v2/library/thing/manifests/v1', undefined, accept);
  assert.equal(m.status, 200);
  assert.equal(m.headers['docker-content-digest'], img.digest);
  assert.equal(m.text, img.body);
  const layer = await cache.req('GET', `/v2/library/thing/blobs/${img.layer}`);
  assert.equal(layer.status, 200);
  assert.equal(`sha256:${createHash('sha256').update(layer.body).digest('hex')}`, img.layer);
  assert.ok(await cache.storage.hasBlobIn('library/thing', img.layer as `sha256:${string}`));

  // Stored: gone upstream, still served by the cache.
  assert.equal((await upstream.req('DELETE', `/v2/library/thing/manifests/${img.digest}`)).status, 202);
  assert.equal((await upstream.req('DELETE', `/v2/library/thing/blobs/${img.layer}`)).status, 202);
  assert.equal((await cache.req('GET', '/v2/library/thing/manifests/v1', undefined, accept)).status, 200);
  assert.equal((await cache.req('GET', `/v2/library/thing/blobs/${img.layer}`)).status, 200);

  // A miss upstream stays a miss.
  const none = await cache.req('GET', '/v2/library/thing/manifests/v9', undefined, accept);
  assert.equal(none.status, 404);
  assert.equal(errorCode(none), 'MANIFEST_UNKNOWN');
  const noBlob = await cache.req('GET', `/v2/library/thing/blobs/sha256:${'0'.repeat(64)}`);
  assert.equal(noBlob.status, 404);
});

test('berthd pulls busybox through a pull-through hub whose upstream is another hub', async () => {
  await pushSeed(upstream.addr, await busyboxSeed());
  let d: TestDaemon | undefined;
  try {
    d = await startDaemon([], { 'registry-mirrors': [cache.url] });
    const p = await berth(d, ['pull', 'busybox']);
    assert.equal(p.code, 0, p.stderr);
    const r = await berth(d, ['run', '--rm', '--network', 'none', 'busybox', 'echo', 'via the cache']);
    assert.equal(r.stdout, 'via the cache\n');
    assert.deepEqual(JSON.parse((await cache.req('GET', '/v2/library/busybox/tags/list')).text).tags, [
      'latest',
    ]);
  } finally {
    await d?.stop();
  }
});

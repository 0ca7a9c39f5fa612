import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { BERTH, run } from '../helpers/daemon.js';
import { pushBlob, pushImage, startTestHub } from './hubtest.js';

const blobFile = (root: string, d: string) => path.join(root, 'blobs', 'sha256', d.slice(7, 9), d.slice(7));

test('hub gc removes only unreferenced blobs; what is kept still pulls; a died run is undone', async () => {
  const hub = await startTestHub();
  try {
    const keep = await pushImage(hub, 'gc/app', 'keep');
    const drop = await pushImage(hub, 'gc/app', 'drop');
    const orphan = await pushBlob(hub, 'gc/other', 'pushed but never in a manifest');
    assert.equal((await hub.req('DELETE', `/v2/gc/app/manifests/${drop.digest}`)).status, 202);

    // Fresh blobs are protected (a push may be in progress).
    const young = await run(process.execPath, [BERTH, 'hub', 'gc', '--root', hub.root]);
    assert.equal(young.code, 0, young.stderr);
    assert.match(young.stdout, /^0 blobs/m);

    const dry = await run(process.execPath, [
      BERTH,
      'hub',
      'gc',
      '--root',
      hub.root,
      '--min-age',
      '0',
      '--dry-run',
    ]);
    assert.match(dry.stdout, /4 blobs, 0 manifests, 0 uploads eligible for deletion/);
    assert.ok(existsSync(blobFile(hub.root, orphan)));

    // A run that died mid-sweep left a referenced blob in the trash: it goes back first.
    mkdirSync(path.join(hub.root, 'gc-trash'), { recursive: true });
    renameSync(blobFile(hub.root, keep.layer), path.join(hub.root, 'gc-trash', keep.layer.slice(7)));

    const r = await run(process.execPath, [BERTH, 'hub', 'gc', '--root', hub.root, '--min-age', '0']);
    assert.equal(r.code, 0, r.stderr);
    const removed = r.stdout
      .split('\n')
      .filter((l) => l.startsWith('removed blob '))
      .map((l) => l.slice(13))
      .sort();
    assert.deepEqual(removed, [drop.digest, drop.config, drop.layer, orphan].sort());
    assert.match(r.stdout, /4 blobs, 0 manifests, 0 uploads deleted/);
    for (const d of [keep.digest, keep.config, keep.layer]) assert.ok(existsSync(blobFile(hub.root, d)), d);
    const m = await hub.req('GET', '/v2/gc/app/manifests/keep', undefined, {
      Accept: 'application/vnd.oci.image.manifest.v1+json',
    });
    assert.equal(m.status, 200);
    const layer = await hub.req('GET', `/v2/gc/app/blobs/${keep.layer}`);
    assert.equal(`sha256:${createHash('sha256').update(layer.body).digest('hex')}`, keep.layer);
    assert.equal((await hub.req('HEAD', `/v2/gc/other/blobs/${orphan}`)).status, 404);
    assert.ok(!existsSync(path.join(hub.root, 'gc.lock')));
  } finally {
    await hub.stop();
  }
});

test('hub gc --delete-untagged keeps what tags reach (index children, referrers) and refuses a second run', async () => {
  const hub = await startTestHub();
  try {
    const a = await pushImage(hub, 'u/x', 'a');
    const b = await pushImage(hub, 'u/x', 'b');
    const index = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: a.digest, size: a.body.length },
      ],
    });
    assert.equal(
      (
        await hub.req('PUT', '/v2/u/x/manifests/multi', index, {
          'Content-Type': 'application/vnd.oci.image.index.v1+json',
        })
      ).status,
      201,
    );
    // Untag both images: a stays reachable through the index, b does not.
    await hub.req('DELETE', '/v2/u/x/manifests/a');
    await hub.req('DELETE', '/v2/u/x/manifests/b');
    writeFileSync(path.join(hub.root, 'gc.lock'), String(process.pid));
    const locked = await run(process.execPath, [BERTH, 'hub', 'gc', '--root', hub.root]);
    assert.notEqual(locked.code, 0);
    assert.match(locked.stderr, /another gc is running/);
    writeFileSync(path.join(hub.root, 'gc.lock'), '999999999');
    const r = await run(process.execPath, [
      BERTH,
      'hub',
      'gc',
      '--root',
      hub.root,
      '--min-age',
      '0',
      '--delete-untagged',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /1 manifests/);
    assert.equal((await hub.req('HEAD', `/v2/u/x/manifests/${a.digest}`)).status, 200);
    assert.equal((await hub.req('HEAD', `/v2/u/x/manifests/${b.digest}`)).status, 404);
    assert.ok(!existsSync(blobFile(hub.root, b.layer)));
  } finally {
    await hub.stop();
  }
});

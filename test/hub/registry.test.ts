import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { errorCode, pushBlob, pushImage, startTestHub, type TestHub } from './hubtest.js';

let hub: TestHub;
before(async () => {
  hub = await startTestHub();
});
after(async () => {
  await hub.stop();
});

const sha = (s: string | Buffer) => `sha256:${createHash('sha256').update(s).digest('hex')}`;

test('referrers: a manifest with a subject is listed under it, filtered by artifactType', async () => {
  const img = await pushImage(hub, 'ref/app', 'v1');
  const empty = await pushBlob(hub, 'ref/app', '{}');
  const artifact = async (artifactType: string, note: string) => {
    const body = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      artifactType,
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: empty, size: 2 },
      layers: [{ mediaType: 'application/vnd.oci.empty.v1+json', digest: empty, size: 2 }],
      subject: {
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        digest: img.digest,
        size: img.body.length,
      },
      annotations: { note },
    });
    const r = await hub.req('PUT', `/v2/ref/app/manifests/${sha(body)}`, body, {
      'Content-Type': 'application/vnd.oci.image.manifest.v1+json',
    });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.headers['oci-subject'], img.digest);
    return sha(body);
  };
  const sig = await artifact('application/vnd.example.signature', 'signed');
  const sbom = await artifact('application/vnd.example.sbom', 'sbom');
  const all = await hub.req('GET', `/v2/ref/app/referrers/${img.digest}`);
  assert.equal(all.status, 200);
  assert.equal(all.headers['content-type'], 'application/vnd.oci.image.index.v1+json');
  const idx = JSON.parse(all.text) as {
    manifests: { digest: string; artifactType: string; annotations: object }[];
  };
  assert.deepEqual(idx.manifests.map((m) => m.digest).sort(), [sig, sbom].sort());
  assert.deepEqual(idx.manifests.find((m) => m.digest === sig)?.annotations, { note: 'signed' });
  const filtered = await hub.req(
    'GET',
    `/v2/ref/app/referrers/${img.digest}?artifactType=application/vnd.example.sbom`,
  );
  assert.equal(filtered.headers['oci-filters-applied'], 'artifactType');
  assert.deepEqual(
    (JSON.parse(filtered.text) as { manifests: { digest: string }[] }).manifests.map((m) => m.digest),
    [sbom],
  );
  // An unknown subject is an empty list, not a 404; a bad digest is DIGEST_INVALID.
  const none = await hub.req('GET', `/v2/ref/app/referrers/${sha('nothing')}`);
  assert.equal(none.status, 200);
  assert.deepEqual(JSON.parse(none.text).manifests, []);
  const bad = await hub.req('GET', '/v2/ref/app/referrers/sha256:xyz');
  assert.equal(bad.status, 400);
  assert.equal(errorCode(bad), 'DIGEST_INVALID');
  // Deleting the artifact drops it from the list.
  assert.equal((await hub.req('DELETE', `/v2/ref/app/manifests/${sig}`)).status, 202);
  const after = JSON.parse((await hub.req('GET', `/v2/ref/app/referrers/${img.digest}`)).text);
  assert.deepEqual(
    after.manifests.map((m: { digest: string }) => m.digest),
    [sbom],
  );
});

test('blob DELETE unlinks the blob from that repository only', async () => {
  const d = await pushBlob(hub, 'del/a', 'shared bytes');
  const mount = await hub.req('POST', `/v2/del/b/blobs/uploads/?mount=${d}&from=del/a`);
  assert.equal(mount.status, 201);
  assert.equal((await hub.req('DELETE', `/v2/del/a/blobs/${d}`)).status, 202);
  const gone = await hub.req('HEAD', `/v2/del/a/blobs/${d}`);
  assert.equal(gone.status, 404);
  assert.equal((await hub.req('GET', `/v2/del/b/blobs/${d}`)).text, 'shared bytes');
  const again = await hub.req('DELETE', `/v2/del/a/blobs/${d}`);
  assert.equal(again.status, 404);
  assert.equal(errorCode(again), 'BLOB_UNKNOWN');
  // A blob pushed to one repository cannot be read through another name.
  const other = await hub.req('GET', `/v2/del/c/blobs/${d}`);
  assert.equal(other.status, 404);
});

test('tags list paginates with n and last and a Link header', async () => {
  for (const t of ['a', 'b', 'c', 'd', 'e']) await pushImage(hub, 'page/x', t);
  const first = await hub.req('GET', '/v2/page/x/tags/list?n=2');
  assert.deepEqual(JSON.parse(first.text), { name: 'page/x', tags: ['a', 'b'] });
  assert.equal(first.headers.link, '</v2/page/x/tags/list?n=2&last=b>; rel="next"');
  const next = await hub.req('GET', '/v2/page/x/tags/list?n=2&last=b');
  assert.deepEqual(JSON.parse(next.text).tags, ['c', 'd']);
  const last = await hub.req('GET', '/v2/page/x/tags/list?n=2&last=d');
  assert.deepEqual(JSON.parse(last.text).tags, ['e']);
  assert.equal(last.headers.link, undefined);
  assert.deepEqual(JSON.parse((await hub.req('GET', '/v2/page/x/tags/list?n=0')).text).tags, []);
  assert.deepEqual(JSON.parse((await hub.req('GET', '/v2/page/x/tags/list')).text).tags, [
    'a',
    'b',
    'c',
    'd',
    'e',
  ]);
  const bad = await hub.req('GET', '/v2/page/x/tags/list?n=-1');
  assert.equal(bad.status, 400);
  const unknown = await hub.req('GET', '/v2/page/none/tags/list');
  assert.equal(unknown.status, 404);
  assert.equal(errorCode(unknown), 'NAME_UNKNOWN');
});

test('bad input: oversized manifests, wrong digests, missing blobs, unknown uploads, invalid names', async () => {
  const big = Buffer.alloc(4 * 1024 * 1024 + 1, 32);
  const tooBig = await hub.req('PUT', '/v2/bad/x/manifests/v1', big, {
    'Content-Type': 'application/vnd.oci.image.manifest.v1+json',
  });
  assert.equal(tooBig.status, 413);
  assert.equal(errorCode(tooBig), 'SIZE_INVALID');

  const img = await pushImage(hub, 'bad/x', 'ok');
  const wrongRef = await hub.req('PUT', `/v2/bad/x/manifests/${sha('other')}`, img.body, {
    'Content-Type': 'application/vnd.oci.image.manifest.v1+json',
  });
  assert.equal(wrongRef.status, 400);
  assert.equal(errorCode(wrongRef), 'DIGEST_INVALID');

  const missing = img.body.replace(img.layer, sha('never pushed'));
  const mbu = await hub.req('PUT', '/v2/bad/x/manifests/missing', missing, {
    'Content-Type': 'application/vnd.oci.image.manifest.v1+json',
  });
  assert.equal(mbu.status, 400);
  assert.equal(errorCode(mbu), 'MANIFEST_BLOB_UNKNOWN');
  // Blobs of another repository do not count for this one.
  const elsewhere = await hub.req('PUT', '/v2/bad/y/manifests/v1', img.body, {
    'Content-Type': 'application/vnd.oci.image.manifest.v1+json',
  });
  assert.equal(errorCode(elsewhere), 'MANIFEST_BLOB_UNKNOWN');

  const notJson = await hub.req('PUT', '/v2/bad/x/manifests/v2', '{"schemaVersion": 2, "config": 1}', {
    'Content-Type': 'application/vnd.oci.image.manifest.v1+json',
  });
  assert.equal(notJson.status, 400);
  assert.equal(errorCode(notJson), 'MANIFEST_INVALID');

  // Chunked upload whose final digest does not match: DIGEST_INVALID, and the session is gone.
  const start = await hub.req('POST', '/v2/bad/x/blobs/uploads/');
  assert.equal(start.status, 202);
  const loc = String(start.headers.location);
  const patch = await hub.req('PATCH', loc, 'abc', {
    'Content-Range': '0-2',
    'Content-Type': 'application/octet-stream',
  });
  assert.equal(patch.status, 202);
  assert.equal(patch.headers.range, '0-2');
  const outOfOrder = await hub.req('PATCH', loc, 'zzz', { 'Content-Range': '5-7' });
  assert.equal(outOfOrder.status, 416);
  const put = await hub.req('PUT', `${loc}?digest=${sha('abcdeX')}`, 'def');
  assert.equal(put.status, 400);
  assert.equal(errorCode(put), 'DIGEST_INVALID');
  assert.equal(errorCode(await hub.req('GET', loc)), 'BLOB_UPLOAD_UNKNOWN');
  const unknown = await hub.req('PUT', `/v2/bad/x/blobs/uploads/not-a-session?digest=${sha('x')}`, 'x');
  assert.equal(unknown.status, 404);
  assert.equal(errorCode(unknown), 'BLOB_UPLOAD_UNKNOWN');
  // A session belongs to the repository it was opened in.
  const s2 = String((await hub.req('POST', '/v2/bad/x/blobs/uploads/')).headers.location);
  const stolen = await hub.req('PATCH', s2.replace('/bad/x/', '/bad/z/'), 'x');
  assert.equal(errorCode(stolen), 'BLOB_UPLOAD_UNKNOWN');

  const badDigest = await hub.req('GET', '/v2/bad/x/blobs/sha256:short');
  assert.equal(errorCode(badDigest), 'DIGEST_INVALID');
  const badTag = await hub.req('GET', '/v2/bad/x/manifests/-nope');
  assert.equal(errorCode(badTag), 'TAG_INVALID');

  for (const name of ['UPPER/x', 'a//b', '_x/y', 'a/-b', `${'a'.repeat(256)}`]) {
    const r = await hub.req('GET', `/v2/${name}/tags/list`);
    assert.equal(r.status, 400, name);
    assert.equal(errorCode(r), 'NAME_INVALID', name);
  }
});

/** Sends a raw request line, so the path reaches the server exactly as written. */
function rawGet(addr: string, p: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const [host, port] = addr.split(':');
    const s = net.connect(Number(port), host, () =>
      s.end(`GET ${p} HTTP/1.1\r\nHost: ${addr}\r\nConnection: close\r\n\r\n`),
    );
    let out = '';
    s.on('data', (c) => (out += c.toString()));
    s.on('end', () => resolve(out));
    s.on('error', reject);
  });
}

test('path tricks in names never leave the hub root', async () => {
  await pushImage(hub, 'trick/a', 'v1');
  for (const p of [
    '/v2/trick/../trick/a/tags/list',
    '/v2/trick/%2e%2e/trick/a/tags/list',
    '/v2/trick%2fa/tags/list',
    '/v2/../../etc/tags/list',
    '/v2/trick/a/..%2f..%2f/tags/list',
    '/v2/trick\\a/tags/list',
  ]) {
    const r = await rawGet(hub.addr, p);
    assert.match(r, /^HTTP\/1\.1 400/, p);
    assert.match(r, /NAME_INVALID/, p);
  }
  // Nothing outside repositories/ was created or read.
  for (const name of readdirSync(path.join(hub.root, 'repositories'))) assert.match(name, /^[a-z0-9]+$/);
  assert.ok(!existsSync(path.join(hub.root, 'etc')));
});

test('a manifest is committed atomically: no temp files are left and a reader sees all or nothing', async () => {
  const img = await pushImage(hub, 'atomic/x', 'v1');
  const got = await hub.req('GET', '/v2/atomic/x/manifests/v1', undefined, {
    Accept: 'application/vnd.oci.image.manifest.v1+json',
  });
  assert.equal(got.text, img.body);
  assert.equal(got.headers['docker-content-digest'], img.digest);
  const walk = (d: string): string[] =>
    readdirSync(d, { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? walk(path.join(d, e.name)) : [e.name],
    );
  assert.deepEqual(
    walk(hub.root).filter((n) => n.startsWith('.tmp-')),
    [],
  );
});

test('blob GET: whole and by Range across read-buffer boundaries, HEAD, 416, clients at once, a client gone mid-blob', async () => {
  const { randomBytes } = await import('node:crypto');
  const http = await import('node:http');
  // A few megabytes: several of the hub's read buffers, and an odd size so the last read is short.
  const data = randomBytes(3 * 1024 * 1024 + 12345);
  const digest = await pushBlob(hub, 'serve/big', data);
  const url = `/v2/serve/big/blobs/${digest}`;
  const whole = await Promise.all(Array.from({ length: 6 }, () => hub.req('GET', url)));
  for (const r of whole) {
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-length'], String(data.length));
    assert.equal(r.headers['docker-content-digest'], digest);
    assert.ok(r.body.equals(data));
  }
  const head = await hub.req('HEAD', url);
  assert.equal(head.status, 200);
  assert.equal(head.headers['content-length'], String(data.length));
  assert.equal(head.body.length, 0);
  for (const [from, to] of [
    [0, 0],
    [524287, 524288],
    [1_000_000, 2_500_000],
    [data.length - 10, data.length - 1],
  ]) {
    const r = await hub.req('GET', url, undefined, { Range: `bytes=${from}-${to}` });
    assert.equal(r.status, 206);
    assert.equal(r.headers['content-range'], `bytes ${from}-${to}/${data.length}`);
    assert.ok(r.body.equals(data.subarray(from, to + 1)), `${from}-${to}`);
  }
  const open = await hub.req('GET', url, undefined, { Range: `bytes=${data.length - 5}-` });
  assert.ok(open.body.equals(data.subarray(data.length - 5)));
  const beyond = await hub.req('GET', url, undefined, { Range: `bytes=${data.length}-` });
  assert.equal(beyond.status, 416);
  assert.equal(beyond.headers['content-range'], `bytes */${data.length}`);
  // Not linked into another repository: not served through it.
  assert.equal((await hub.req('GET', `/v2/serve/other/blobs/${digest}`)).status, 404);

  // A client that goes away after the first bytes: the hub stays up and serves the next one whole.
  const [host, port] = hub.addr.split(':');
  await new Promise<void>((resolve, reject) => {
    const req = http.get({ host, port: Number(port), path: url }, (res) => {
      res.once('data', () => {
        req.destroy();
        resolve();
      });
    });
    req.on('error', (e: NodeJS.ErrnoException) => (e.code === 'ECONNRESET' ? undefined : reject(e)));
  });
  const again = await hub.req('GET', url);
  assert.ok(again.body.equals(data));
});

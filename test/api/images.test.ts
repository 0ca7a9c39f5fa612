import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { FIXTURES, request, startDaemon, type TestDaemon } from '../helpers/daemon.js';

const ARCHIVE = path.join(FIXTURES, 'busybox-1.38.0-musl-docker-archive.tar');
let d: TestDaemon;

before(async () => {
  d = await startDaemon();
  const r = await request(d, 'POST', '/v1.41/images/load?quiet=1', readFileSync(ARCHIVE), {
    'Content-Type': 'application/x-tar',
  });
  assert.equal(r.status, 200, r.body.toString());
  assert.match(r.body.toString(), /Loaded image: busybox:1.38.0-musl/);
});
after(async () => {
  await d.stop();
});

const json = (b: Buffer) => JSON.parse(b.toString());

test('GET /images/json lists the loaded image with Docker fields', async () => {
  const r = await request(d, 'GET', '/images/json');
  assert.equal(r.status, 200);
  const list = json(r.body);
  assert.equal(list.length, 1);
  const img = list[0];
  assert.deepEqual(img.RepoTags, ['busybox:1.38.0-musl']);
  assert.match(img.Id, /^sha256:654fc8fd[a-f0-9]{56}$/);
  for (const k of ['Created', 'Size', 'SharedSize', 'Labels', 'ParentId', 'RepoDigests', 'Containers'])
    assert.ok(k in img, k);
});

test('inspect by name, id, short id; 404 in Docker wording', async () => {
  const byName = json((await request(d, 'GET', '/images/busybox:1.38.0-musl/json')).body);
  assert.equal(byName.Os, 'linux');
  assert.equal(byName.Architecture, 'amd64');
  assert.deepEqual(byName.Config.Cmd, ['sh']);
  assert.equal(byName.RootFS.Type, 'layers');
  assert.equal(byName.RootFS.Layers.length, 1);
  assert.match(byName.RootFS.Layers[0], /^sha256:0f8918d0/);
  const byId = json((await request(d, 'GET', `/images/${byName.Id}/json`)).body);
  assert.equal(byId.Id, byName.Id);
  const short = json((await request(d, 'GET', `/images/${byName.Id.slice(7, 19)}/json`)).body);
  assert.equal(short.Id, byName.Id);
  const missing = await request(d, 'GET', '/images/nosuch:tag/json');
  assert.equal(missing.status, 404);
  assert.deepEqual(json(missing.body), { message: 'No such image: nosuch:tag' });
});

test('tag, filter by reference and label, untag vs delete', async () => {
  const t = await request(
    d,
    'POST',
    '/v1.41/images/busybox:1.38.0-musl/tag?repo=localhost:5000/team/bb&tag=v1',
  );
  assert.equal(t.status, 201);
  const filtered = json(
    (
      await request(
        d,
        'GET',
        `/images/json?filters=${encodeURIComponent('{"reference":{"localhost:5000/team/*":true}}')}`,
      )
    ).body,
  );
  assert.equal(filtered.length, 1);
  assert.deepEqual(filtered[0].RepoTags, ['localhost:5000/team/bb:v1']);
  const byLabel = json(
    (await request(d, 'GET', `/images/json?filters=${encodeURIComponent('{"label":["nope=1"]}')}`)).body,
  );
  assert.equal(byLabel.length, 0);
  const untag = await request(d, 'DELETE', '/images/localhost:5000/team/bb:v1');
  assert.equal(untag.status, 200);
  assert.deepEqual(json(untag.body), [{ Untagged: 'localhost:5000/team/bb:v1' }]);
  const still = await request(d, 'GET', '/images/busybox:1.38.0-musl/json');
  assert.equal(still.status, 200);
});

test('bad references and filters are 400s', async () => {
  const upper = await request(d, 'POST', '/images/busybox:1.38.0-musl/tag?repo=UPPER/Case&tag=x');
  assert.equal(upper.status, 400);
  assert.match(json(upper.body).message, /invalid reference format/);
  const long = await request(d, 'POST', `/images/busybox:1.38.0-musl/tag?repo=${'a'.repeat(300)}`);
  assert.equal(long.status, 400);
  const empty = await request(d, 'POST', '/images/busybox:1.38.0-musl/tag?repo=');
  assert.equal(empty.status, 400);
  const badFilter = await request(d, 'GET', `/images/json?filters=${encodeURIComponent('{"nope":["x"]}')}`);
  assert.equal(badFilter.status, 400);
  assert.match(json(badFilter.body).message, /invalid filter 'nope'/);
  const notJson = await request(d, 'GET', '/images/json?filters=%7Bnot-json');
  assert.equal(notJson.status, 400);
});

test('history is newest first with the image id on top', async () => {
  const h = json((await request(d, 'GET', '/images/busybox:1.38.0-musl/history')).body);
  assert.ok(h.length >= 1);
  assert.match(h[0].Id, /^sha256:/);
  assert.deepEqual(h[0].Tags, ['busybox:1.38.0-musl']);
  assert.equal(h[h.length - 1].Id, h.length > 1 ? '<missing>' : h[0].Id);
});

test('a malformed archive is a 400 and changes nothing', async () => {
  const before = json((await request(d, 'GET', '/images/json')).body).length;
  const r = await request(
    d,
    'POST',
    '/images/load',
    Buffer.from('this is not a tar archive at all'.repeat(40)),
  );
  assert.equal(r.status, 400, r.body.toString());
  assert.ok(json(r.body).message.length > 0);
  const truncated = readFileSync(ARCHIVE).subarray(0, 300_000);
  const t = await request(d, 'POST', '/images/load', truncated);
  assert.ok(t.status === 400 || json(t.body).error, t.body.toString());
  assert.equal(json((await request(d, 'GET', '/images/json')).body).length, before);
});

test('save streams a tar that loads back into a fresh daemon with the same id', async () => {
  const saved = await request(d, 'GET', '/images/busybox:1.38.0-musl/get');
  assert.equal(saved.status, 200);
  assert.equal(saved.headers['content-type'], 'application/x-tar');
  const d2 = await startDaemon();
  try {
    const r = await request(d2, 'POST', '/images/load', saved.body);
    assert.equal(r.status, 200, r.body.toString());
    const a = json((await request(d, 'GET', '/images/busybox:1.38.0-musl/json')).body);
    const b = json((await request(d2, 'GET', '/images/busybox:1.38.0-musl/json')).body);
    assert.equal(a.Id, b.Id);
  } finally {
    await d2.stop();
  }
  const missing = await request(d, 'GET', '/images/get?names=nosuch');
  assert.equal(missing.status, 404);
});

test('import a rootfs tarball with changes and a message', async () => {
  const tarball = readFileSync(path.join(FIXTURES, 'alpine-minirootfs-3.20.3-x86_64.tar.gz'));
  const q = new URLSearchParams();
  q.set('fromSrc', '-');
  q.set('repo', 'my/alpine');
  q.set('tag', '3.20');
  q.set('message', 'imported in a test');
  q.append('changes', 'CMD ["/bin/sh","-c","cat /etc/os-release"]');
  q.append('changes', 'ENV A=1 B=2');
  q.append('changes', 'WORKDIR /srv');
  const r = await request(d, 'POST', `/images/create?${q}`, tarball);
  assert.equal(r.status, 200, r.body.toString());
  const img = json((await request(d, 'GET', '/images/my/alpine:3.20/json')).body);
  assert.deepEqual(img.Config.Cmd, ['/bin/sh', '-c', 'cat /etc/os-release']);
  assert.ok(img.Config.Env.includes('A=1') && img.Config.Env.includes('B=2'));
  assert.equal(img.Config.WorkingDir, '/srv');
  assert.equal(img.Comment, 'imported in a test');
  const bad = await request(d, 'POST', '/images/create?fromSrc=-&changes=FROBNICATE%20x', tarball);
  assert.equal(bad.status, 400);
});

test('prune removes dangling images only', async () => {
  const r = await request(d, 'POST', '/images/prune');
  assert.equal(r.status, 200);
  const report = json(r.body);
  assert.ok('SpaceReclaimed' in report);
  assert.equal((await request(d, 'GET', '/images/busybox:1.38.0-musl/json')).status, 200);
});

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { berth, docker, DOCKER_CLI, request, startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { pushImage, startTestHub, type TestHub } from './hubtest.js';

let hub: TestHub;
let d: TestDaemon;

before(async () => {
  hub = await startTestHub();
  await pushImage(hub, 'library/redis', 'latest');
  await pushImage(hub, 'alice/redis-tools', 'v1');
  await pushImage(hub, 'bob/other', 'v1');
  await hub.storage.setRepoMeta('library/redis', {
    description: 'Redis is an in-memory key-value store',
    stars: 12,
  });
  await hub.storage.setRepoMeta('alice/redis-tools', { description: 'tools for redis', stars: 3 });
  await hub.storage.setRepoMeta('bob/other', { description: 'mentions Redis in passing' });
  d = await startDaemon([], { 'registry-mirrors': [hub.url] });
});
after(async () => {
  await d?.stop();
  await hub?.stop();
});

test('/v1/search answers Docker Hub v1 JSON with paging', async () => {
  const r = await hub.req('GET', '/v1/search?q=redis&n=2&page=1');
  assert.equal(r.status, 200);
  const j = JSON.parse(r.text);
  assert.equal(j.num_results, 3);
  assert.equal(j.query, 'redis');
  assert.equal(j.num_pages, 2);
  assert.deepEqual(j.results[0], {
    name: 'redis',
    description: 'Redis is an in-memory key-value store',
    star_count: 12,
    is_official: true,
    is_automated: false,
  });
  assert.equal(j.results[1].name, 'alice/redis-tools');
  const p2 = JSON.parse((await hub.req('GET', '/v1/search?q=redis&n=2&page=2')).text);
  assert.deepEqual(
    p2.results.map((x: { name: string }) => x.name),
    ['bob/other'],
  );
  const none = JSON.parse((await hub.req('GET', '/v1/search?q=postgres')).text);
  assert.equal(none.num_results, 0);
});

test('berth search asks the mirror through berthd; filters, limit and explicit hosts work', async () => {
  const r = await berth(d, ['search', 'redis']);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.match(lines[0], /^NAME\s+DESCRIPTION\s+STARS\s+OFFICIAL\s+AUTOMATED$/);
  assert.match(lines[1], /^redis\s+Redis is an in-memory key-value store\s+12\s+\[OK\]/);
  assert.equal(lines.length, 4);
  const official = await berth(d, [
    'search',
    '--filter',
    'is-official=true',
    '--format',
    '{{.Name}}',
    'redis',
  ]);
  assert.equal(official.stdout, 'redis\n');
  const stars = await berth(d, ['search', '-f', 'stars=3', '--format', '{{.Name}}:{{.StarCount}}', 'redis']);
  assert.equal(stars.stdout, 'redis:12\nalice/redis-tools:3\n');
  const limited = await berth(d, ['search', '--limit', '1', '--format', '{{.Name}}', 'redis']);
  assert.equal(limited.stdout, 'redis\n');
  const host = await berth(d, ['search', '--format', '{{.Name}}', `${hub.addr}/other`]);
  assert.equal(host.stdout, 'bob/other\n');
  const bad = await request(d, 'GET', '/images/search?term=redis&filters=%7B%22nope%22%3A%5B%22x%22%5D%7D');
  assert.equal(bad.status, 400);
  const noTerm = await request(d, 'GET', '/images/search');
  assert.equal(noTerm.status, 400);
  const tooMany = await berth(d, ['search', '--limit', '101', 'redis']);
  assert.notEqual(tooMany.code, 0);
  assert.match(tooMany.stderr, /outside the range of \[1, 100\]/);
});

test(
  'the real docker CLI searches through berthd',
  { skip: !existsSync(DOCKER_CLI) && 'no docker CLI' },
  async () => {
    const r = await docker(d, ['search', 'redis']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^NAME\s+DESCRIPTION\s+STARS\s+OFFICIAL/);
    assert.match(r.stdout, /\nredis\s+Redis is an in-memory key-value store\s+12\s+\[OK\]/);
    assert.match(r.stdout, /\nalice\/redis-tools\s+tools for redis\s+3\s/);
    const f = await docker(d, ['search', '--filter', 'is-official=true', '--format', '{{.Name}}', 'redis']);
    assert.equal(f.stdout, 'redis\n');
  },
);

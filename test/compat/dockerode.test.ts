import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import Docker from 'dockerode';
import { FIXTURES, startDaemon, type TestDaemon } from '../helpers/daemon.js';

let d: TestDaemon;
before(async () => {
  d = await startDaemon();
});
after(async () => {
  await d.stop();
});

test('dockerode: load, list, inspect, tag, remove', async () => {
  const client = new Docker({ socketPath: d.socket });
  const stream = await client.loadImage(
    createReadStream(path.join(FIXTURES, 'busybox-1.38.0-musl-docker-archive.tar')),
  );
  const out = await new Promise<string>((resolve, reject) => {
    let s = '';
    stream.on('data', (c: Buffer) => (s += c.toString()));
    stream.on('end', () => resolve(s));
    stream.on('error', reject);
  });
  assert.match(out, /Loaded image: busybox:1.38.0-musl/);
  const list = await client.listImages();
  assert.equal(list.length, 1);
  assert.deepEqual(list[0].RepoTags, ['busybox:1.38.0-musl']);
  const img = client.getImage('busybox:1.38.0-musl');
  const info = await img.inspect();
  assert.equal(info.Os, 'linux');
  await img.tag({ repo: 'mine/bb', tag: 'x' });
  const tagged = await client.getImage('mine/bb:x').inspect();
  assert.equal(tagged.Id, info.Id);
  const removed = (await client.getImage('mine/bb:x').remove()) as { Untagged?: string }[];
  assert.deepEqual(removed, [{ Untagged: 'mine/bb:x' }]);
  await assert.rejects(
    client.getImage('nosuch:1').inspect(),
    (e: { statusCode?: number }) => e.statusCode === 404,
  );
  await client.getImage('busybox:1.38.0-musl').remove({ force: true });
  assert.equal((await client.listImages()).length, 0);
});

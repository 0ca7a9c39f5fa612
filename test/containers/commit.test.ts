import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { berth, DOCKER_CLI, docker, FIXTURES, startDaemon, type TestDaemon } from '../helpers/daemon.js';

const BB = 'busybox:1.38.0-musl';
let d: TestDaemon;

before(async () => {
  d = await startDaemon();
  assert.equal(
    (await berth(d, ['load', '-i', path.join(FIXTURES, 'busybox-1.38.0-musl-docker-archive.tar')])).code,
    0,
  );
});
after(async () => {
  await d.stop();
});

test('diff lists added, changed and deleted paths; commit makes an image that has them', async () => {
  const r = await berth(d, [
    'run',
    '--name',
    'c1',
    BB,
    'sh',
    '-c',
    'echo new > /added.txt; echo x >> /etc/passwd; rm /bin/vi; mkdir -p /srv/app && echo app > /srv/app/a',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const diff = await berth(d, ['diff', 'c1']);
  const lines = diff.stdout.trim().split('\n');
  assert.ok(lines.includes('A /added.txt'), diff.stdout);
  assert.ok(lines.includes('C /etc/passwd'), diff.stdout);
  assert.ok(lines.includes('D /bin/vi'), diff.stdout);
  assert.ok(lines.includes('A /srv/app/a'), diff.stdout);
  assert.ok(
    !lines.includes('A /etc/hostname') && !lines.includes('A /proc'),
    'runtime mount points are not changes',
  );
  const c = await berth(d, [
    'commit',
    '-m',
    'my change',
    '-c',
    'CMD ["cat","/added.txt"]',
    'c1',
    'committed:1',
  ]);
  assert.equal(c.code, 0, c.stderr);
  assert.match(c.stdout, /^sha256:[0-9a-f]{64}\n$/);
  const run = await berth(d, ['run', '--rm', 'committed:1']);
  assert.equal(run.stdout, 'new\n');
  const gone = await berth(d, [
    'run',
    '--rm',
    'committed:1',
    'sh',
    '-c',
    'test -e /bin/vi && echo present || echo deleted; cat /srv/app/a',
  ]);
  assert.equal(gone.stdout, 'deleted\napp\n');
  const h = await berth(d, ['history', '--format', '{{.Comment}}', 'committed:1']);
  assert.equal(h.stdout.split('\n')[0], 'my change');
  const layers = await berth(d, ['image', 'inspect', '-f', '{{len .RootFS.Layers}}', 'committed:1']);
  assert.equal(layers.stdout.trim(), '2');
  await berth(d, ['rm', 'c1']);
});

test(
  'the real docker CLI: docker diff and docker commit',
  { skip: !existsSync(DOCKER_CLI) && 'no docker CLI' },
  async () => {
    assert.equal((await docker(d, ['run', '--name', 'c2', BB, 'sh', '-c', 'echo hi > /hi'])).code, 0);
    const diff = await docker(d, ['diff', 'c2']);
    assert.match(diff.stdout, /^A \/hi$/m);
    const c = await docker(d, ['commit', 'c2', 'dcommit:1']);
    assert.equal(c.code, 0, c.stderr);
    const r = await docker(d, ['run', '--rm', 'dcommit:1', 'cat', '/hi']);
    assert.equal(r.stdout, 'hi\n');
  },
);

test('export: the container root file system as a tar that imports back', async () => {
  assert.equal((await berth(d, ['create', '--name', 'ex1', BB, 'true'])).code, 0);
  const r = await berth(d, ['export', '-o', `${d.dir}/ex1.tar`, 'ex1']);
  assert.equal(r.code, 0, r.stderr);
  const list = (await import('node:child_process'))
    .execFileSync('tar', ['-tf', `${d.dir}/ex1.tar`])
    .toString()
    .split('\n');
  assert.ok(list.includes('bin/busybox'), 'entries are relative to the root');
  const imp = await berth(d, ['import', `${d.dir}/ex1.tar`, 'exported:1']);
  assert.equal(imp.code, 0, imp.stderr);
  const run = await berth(d, ['run', '--rm', 'exported:1', '/bin/echo', 'round trip']);
  assert.equal(run.stdout, 'round trip\n');
  if (existsSync(DOCKER_CLI)) {
    const de = await docker(d, ['export', '-o', `${d.dir}/ex2.tar`, 'ex1']);
    assert.equal(de.code, 0, de.stderr);
  }
});

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import {
  berth,
  cleanupDir,
  DOCKER_CLI,
  docker,
  FIXTURES,
  request,
  startDaemon,
  type TestDaemon,
} from '../helpers/daemon.js';

const BB = 'busybox:1.38.0-musl';
let d: TestDaemon;
let tmp: string;

before(async () => {
  d = await startDaemon();
  tmp = mkdtempSync(path.join(os.tmpdir(), 'berth-cp-'));
  assert.equal(
    (await berth(d, ['load', '-i', path.join(FIXTURES, 'busybox-1.38.0-musl-docker-archive.tar')])).code,
    0,
  );
  const r = await berth(d, [
    'run',
    '-d',
    '--name',
    'cp1',
    BB,
    'sh',
    '-c',
    'mkdir /data; echo inside > /data/f; ln -s / /data/up; ln -s ../../../../etc /data/rel; sleep 120',
  ]);
  assert.equal(r.code, 0, r.stderr);
  for (let i = 0; i < 50 && (await berth(d, ['exec', 'cp1', 'test', '-L', '/data/rel'])).code !== 0; i++)
    await new Promise((res) => setTimeout(res, 100));
});
after(async () => {
  await d.stop();
  await cleanupDir(tmp);
});

test('berth cp both ways, files and directories, and tar streams', async () => {
  assert.equal((await berth(d, ['cp', 'cp1:/data/f', path.join(tmp, 'f.txt')])).code, 0);
  assert.equal(readFileSync(path.join(tmp, 'f.txt'), 'utf8'), 'inside\n');
  writeFileSync(path.join(tmp, 'host.txt'), 'from host\n');
  assert.equal((await berth(d, ['cp', path.join(tmp, 'host.txt'), 'cp1:/data/'])).code, 0);
  assert.equal((await berth(d, ['exec', 'cp1', 'cat', '/data/host.txt'])).stdout, 'from host\n');
  assert.equal((await berth(d, ['cp', path.join(tmp, 'host.txt'), 'cp1:/data/renamed'])).code, 0);
  assert.equal((await berth(d, ['exec', 'cp1', 'cat', '/data/renamed'])).stdout, 'from host\n');
  const t = await berth(d, ['cp', 'cp1:/data', '-']);
  assert.equal(t.code, 0);
  assert.ok(t.stdout.includes('data/f'));
});

test('cp never reaches the host through .. or symlinks', async () => {
  const hostPasswd = readFileSync('/etc/passwd', 'utf8');
  for (const p of ['/../../../../etc/passwd', '/data/up/etc/passwd', '/data/rel/passwd']) {
    const out = path.join(tmp, `p-${Math.random()}`);
    const r = await berth(d, ['cp', `cp1:${p}`, out]);
    assert.equal(r.code, 0, `${p}: ${r.stderr}`);
    const got = readFileSync(out, 'utf8');
    assert.notEqual(got, hostPasswd, `${p} must be the container's file`);
    assert.match(got, /^root:x:0:0:root:\/root:\/bin\/sh/);
  }
  // Writing through a symlink that points at / lands in the container's root, never the host's.
  writeFileSync(path.join(tmp, 'evil.txt'), 'evil\n');
  assert.equal((await berth(d, ['cp', path.join(tmp, 'evil.txt'), 'cp1:/data/up/tmp/'])).code, 0);
  assert.equal(existsSync('/tmp/evil.txt'), false);
  assert.equal((await berth(d, ['exec', 'cp1', 'cat', '/tmp/evil.txt'])).stdout, 'evil\n');
  const missing = await request(d, 'GET', '/containers/cp1/archive?path=/nosuch');
  assert.equal(missing.status, 404);
});

test(
  'the real docker CLI: docker cp both ways, also from a stopped container',
  { skip: !existsSync(DOCKER_CLI) && 'no docker CLI' },
  async () => {
    const out = path.join(tmp, 'docker-f.txt');
    const r = await docker(d, ['cp', 'cp1:/data/f', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(out, 'utf8'), 'inside\n');
    writeFileSync(path.join(tmp, 'd.txt'), 'docker in\n');
    assert.equal((await docker(d, ['cp', path.join(tmp, 'd.txt'), 'cp1:/data/'])).code, 0);
    assert.equal((await berth(d, ['exec', 'cp1', 'cat', '/data/d.txt'])).stdout, 'docker in\n');
    assert.equal((await docker(d, ['stop', '-t', '0', 'cp1'])).code, 0);
    const stopped = await docker(d, ['cp', 'cp1:/data/d.txt', path.join(tmp, 'stopped.txt')]);
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.equal(readFileSync(path.join(tmp, 'stopped.txt'), 'utf8'), 'docker in\n');
  },
);

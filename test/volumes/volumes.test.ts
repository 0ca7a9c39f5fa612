/**
 * Volumes through the API, `berth volume` and the docker CLI: create/ls/inspect/rm/prune round
 * trips, filters, in-use refusal, driver options (tmpfs, bind) and bad names and options.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import {
  berth,
  cleanupDir,
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
  tmp = mkdtempSync(path.join(os.tmpdir(), 'berth-vol-'));
  const r = await berth(d, ['load', '-i', path.join(FIXTURES, 'busybox-1.38.0-musl-docker-archive.tar')]);
  assert.equal(r.code, 0, r.stderr);
});
after(async () => {
  await d.stop();
  await cleanupDir(tmp);
});

function json(body: Buffer): Record<string, unknown> {
  return JSON.parse(body.toString()) as Record<string, unknown>;
}

test('docker volume create/ls/inspect/rm round trip', async () => {
  let r = await docker(d, ['volume', 'create', '--label', 'team=blue', 'dv1']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'dv1');
  r = await docker(d, ['volume', 'ls', '--format', '{{.Driver}} {{.Name}} {{.Labels}}']);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.stdout.split('\n').includes('local dv1 team=blue'), r.stdout);
  r = await docker(d, ['volume', 'inspect', 'dv1']);
  assert.equal(r.code, 0, r.stderr);
  const [v] = JSON.parse(r.stdout) as Record<string, unknown>[];
  assert.equal(v.Name, 'dv1');
  assert.equal(v.Driver, 'local');
  assert.equal(v.Scope, 'local');
  assert.deepEqual(v.Labels, { team: 'blue' });
  assert.equal(v.Mountpoint, path.join(d.dataRoot, 'volumes', 'dv1', '_data'));
  assert.ok(existsSync(v.Mountpoint as string));
  assert.ok(existsSync(path.join(d.dataRoot, 'volumes', 'dv1', 'meta.json')));
  r = await docker(d, ['volume', 'inspect', '--format', '{{.Name}} {{.Labels.team}}', 'dv1']);
  assert.equal(r.stdout.trim(), 'dv1 blue');
  // Creating an existing name gives the existing volume back.
  r = await docker(d, ['volume', 'create', 'dv1']);
  assert.equal(r.code, 0, r.stderr);
  r = await docker(d, ['volume', 'rm', 'dv1']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'dv1');
  assert.ok(!existsSync(path.join(d.dataRoot, 'volumes', 'dv1')));
  r = await docker(d, ['volume', 'inspect', 'dv1']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /get dv1: no such volume/);
  r = await docker(d, ['volume', 'rm', 'dv1']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no such volume/);
  r = await docker(d, ['volume', 'rm', '-f', 'dv1']);
  assert.equal(r.code, 0, r.stderr);
});

test('berth volume: create, ls filters, quiet, inspect, prune, and a restarted daemon keeps volumes', async () => {
  let r = await berth(d, ['volume', 'create', '--label', 'k=v', 'bv1']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await berth(d, ['volume', 'create', 'bv2'])).code, 0);
  const anon = (await berth(d, ['volume', 'create'])).stdout.trim();
  assert.match(anon, /^[0-9a-f]{64}$/);
  r = await berth(d, ['volume', 'ls', '-q', '--filter', 'label=k=v']);
  assert.deepEqual(r.stdout.trim().split('\n'), ['bv1']);
  r = await berth(d, ['volume', 'ls', '-q', '--filter', 'name=bv']);
  assert.deepEqual(r.stdout.trim().split('\n'), ['bv1', 'bv2']);
  r = await berth(d, ['volume', 'ls']);
  assert.match(r.stdout, /^DRIVER\s+VOLUME NAME\n/);
  assert.match(r.stdout, /local\s+bv2/);
  r = await berth(d, ['run', '--name', 'user1', '-v', 'bv1:/data', BB, 'true']);
  assert.equal(r.code, 0, r.stderr);
  r = await berth(d, ['volume', 'ls', '-q', '--filter', 'dangling=true']);
  assert.ok(!r.stdout.split('\n').includes('bv1'));
  assert.ok(r.stdout.split('\n').includes('bv2'));
  r = await berth(d, ['volume', 'ls', '-q', '--filter', 'dangling=false']);
  assert.ok(r.stdout.split('\n').includes('bv1'));
  r = await berth(d, ['volume', 'ls', '--filter', 'dangling=maybe']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /invalid filter 'dangling=maybe'/);
  r = await berth(d, ['volume', 'inspect', '-f', '{{.Name}}', 'bv1', 'bv2']);
  assert.equal(r.stdout, 'bv1\nbv2\n');

  // A restarted daemon counts references again from the container records.
  const dir = d.dir;
  d.proc.kill('SIGKILL');
  await new Promise((res) => d.proc.once('exit', res));
  d = await startDaemon([], {}, { dir });
  r = await berth(d, ['volume', 'rm', 'bv1']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /remove bv1: volume is in use - \[[0-9a-f]{64}\]/);
  r = await berth(d, ['volume', 'prune', '-f']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Deleted Volumes:\n/);
  assert.ok(r.stdout.includes('bv2') && r.stdout.includes(anon));
  assert.ok(!r.stdout.includes('bv1'));
  assert.match(r.stdout, /Total reclaimed space: /);
  assert.deepEqual((await berth(d, ['volume', 'ls', '-q'])).stdout.trim().split('\n'), ['bv1']);
  assert.equal((await berth(d, ['rm', 'user1'])).code, 0);
  r = await docker(d, ['volume', 'prune', '-f']);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.stdout.includes('bv1'));
  assert.equal((await berth(d, ['volume', 'ls', '-q'])).stdout, '');
});

test('volume API: Docker shapes and errors', async () => {
  let res = await request(
    d,
    'POST',
    '/v1.41/volumes/create',
    JSON.stringify({ Name: 'api1', Labels: { a: '1' } }),
    {
      'Content-Type': 'application/json',
    },
  );
  assert.equal(res.status, 201);
  const v = json(res.body);
  assert.deepEqual(Object.keys(v).sort(), [
    'CreatedAt',
    'Driver',
    'Labels',
    'Mountpoint',
    'Name',
    'Options',
    'Scope',
  ]);
  assert.match(v.CreatedAt as string, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  res = await request(d, 'GET', '/v1.41/volumes');
  assert.equal(res.status, 200);
  const list = json(res.body);
  assert.ok((list.Volumes as { Name: string }[]).some((x) => x.Name === 'api1'));
  assert.ok('Warnings' in list);
  res = await request(d, 'GET', '/v1.41/volumes/nosuch');
  assert.equal(res.status, 404);
  assert.deepEqual(json(res.body), { message: 'get nosuch: no such volume' });
  res = await request(d, 'DELETE', '/v1.41/volumes/api1');
  assert.equal(res.status, 204);
  res = await request(d, 'GET', '/v1.41/volumes?filters=' + encodeURIComponent('{"bogus":{"x":true}}'));
  assert.equal(res.status, 400);
  res = await request(
    d,
    'POST',
    '/v1.41/volumes/create',
    JSON.stringify({ Name: 'x', Driver: 'nfs-plugin' }),
    {
      'Content-Type': 'application/json',
    },
  );
  assert.equal(res.status, 404);
  res = await request(d, 'POST', '/v1.41/volumes/create', JSON.stringify({ Name: 7 }), {
    'Content-Type': 'application/json',
  });
  assert.equal(res.status, 400);
});

test('bad volume names and options are refused with Docker messages, nothing made', async () => {
  for (const name of ['a/b', '../x', 'x', '_x', 'a\\b']) {
    const r = await docker(d, ['volume', 'create', name]);
    assert.equal(r.code, 1, name);
    assert.ok(
      r.stderr.includes(
        `create ${name}: "${name}" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed`,
      ),
      r.stderr,
    );
  }
  let r = await docker(d, ['volume', 'create', '--opt', 'bogus=1', 'okname']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /invalid option: "bogus"/);
  r = await docker(d, ['volume', 'create', '--opt', 'type=tmpfs', 'okname']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /missing required option: "device"/);
  const res = await request(d, 'POST', '/volumes/create', JSON.stringify({ Name: 'a/../../b' }), {
    'Content-Type': 'application/json',
  });
  assert.equal(res.status, 400);
  assert.equal((await berth(d, ['volume', 'ls', '-q'])).stdout, '');
  assert.ok(!existsSync(path.join(d.dataRoot, 'b')));
});

test('driver options: tmpfs and bind volumes are mounted while used, unmounted after', async () => {
  let r = await docker(d, [
    'volume',
    'create',
    '--opt',
    'type=tmpfs',
    '--opt',
    'device=tmpfs',
    '--opt',
    'o=size=8m',
    'tv',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const dataPath = path.join(d.dataRoot, 'volumes', 'tv', '_data');
  r = await docker(d, ['run', '--rm', '-v', 'tv:/t', BB, 'sh', '-c', 'df -k /t | tail -1']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^tmpfs\s+8192\s/);
  assert.ok(!readFileSync('/proc/self/mountinfo', 'utf8').includes(dataPath));
  const src = path.join(tmp, 'bindsrc');
  await import('node:fs/promises').then((f) => f.mkdir(src));
  writeFileSync(path.join(src, 'hello'), 'from host\n');
  r = await berth(d, [
    'volume',
    'create',
    '-o',
    'type=none',
    '-o',
    `device=${src}`,
    '-o',
    'o=bind',
    'bindvol',
  ]);
  assert.equal(r.code, 0, r.stderr);
  r = await berth(d, [
    'run',
    '--rm',
    '-v',
    'bindvol:/b',
    BB,
    'sh',
    '-c',
    'cat /b/hello; echo back > /b/written',
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'from host\n');
  assert.equal(readFileSync(path.join(src, 'written'), 'utf8'), 'back\n');
  r = await berth(d, ['volume', 'inspect', '-f', '{{json .Options}}', 'bindvol']);
  assert.deepEqual(JSON.parse(r.stdout), { type: 'none', device: src, o: 'bind' });
  // Removing the volume never touches the bound directory's files.
  assert.equal((await berth(d, ['volume', 'rm', 'bindvol', 'tv'])).code, 0);
  assert.equal(readFileSync(path.join(src, 'hello'), 'utf8'), 'from host\n');
});

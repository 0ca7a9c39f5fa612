import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, test } from 'node:test';
import {
  BERTH,
  BERTHD,
  DOCKER_CLI,
  docker,
  request,
  run,
  startDaemon,
  type TestDaemon,
} from '../helpers/daemon.js';

let d: TestDaemon;
before(async () => {
  d = await startDaemon();
});
after(async () => {
  await d.stop();
});

test('HEAD and GET /_ping negotiate like Docker', async () => {
  const head = await request(d, 'HEAD', '/_ping');
  assert.equal(head.status, 200);
  assert.equal(head.headers['api-version'], '1.41');
  assert.equal(head.headers['ostype'], 'linux');
  assert.equal(head.headers['docker-experimental'], 'false');
  assert.equal(head.headers['content-type'], 'text/plain; charset=utf-8');
  const get = await request(d, 'GET', '/_ping');
  assert.equal(get.body.toString(), 'OK');
});

test('routes answer with and without a version prefix', async () => {
  for (const p of ['/version', '/v1.41/version', '/v1.24/version']) {
    const r = await request(d, 'GET', p);
    assert.equal(r.status, 200, p);
    const v = JSON.parse(r.body.toString());
    assert.equal(v.ApiVersion, '1.41');
    assert.equal(v.MinAPIVersion, '1.24');
    assert.ok(r.body.toString().endsWith('\n'));
  }
});

test('too new and too old API versions are refused like Docker', async () => {
  const hi = await request(d, 'GET', '/v1.99/version');
  assert.equal(hi.status, 400);
  assert.equal(hi.headers['content-type'], 'application/json');
  assert.match(
    JSON.parse(hi.body.toString()).message,
    /client version 1.99 is too new. Maximum supported API version is 1.41/,
  );
  const lo = await request(d, 'GET', '/v1.12/version');
  assert.equal(lo.status, 400);
  assert.match(JSON.parse(lo.body.toString()).message, /too old/);
});

test('unknown routes are 404 with a JSON message', async () => {
  const r = await request(d, 'GET', '/v1.41/nothing/here');
  assert.equal(r.status, 404);
  assert.deepEqual(JSON.parse(r.body.toString()), { message: 'page not found' });
});

test('/info has the fields clients read', async () => {
  const r = await request(d, 'GET', '/info');
  const info = JSON.parse(r.body.toString());
  for (const k of [
    'ID',
    'Images',
    'Driver',
    'ServerVersion',
    'OperatingSystem',
    'OSType',
    'Architecture',
    'NCPU',
    'MemTotal',
    'Runtimes',
    'Labels',
    'IndexServerAddress',
  ])
    assert.ok(k in info, k);
  assert.equal(info.DockerRootDir, d.dataRoot);
});

test(
  'the real docker CLI: version and info',
  { skip: !existsSync(DOCKER_CLI) && 'docker CLI not installed' },
  async () => {
    const v = await docker(d, ['version']);
    assert.equal(v.code, 0, v.stderr);
    assert.match(v.stdout, /API version:\s+1\.41 \(downgraded from 1\.\d+\)/);
    assert.match(v.stdout, /Engine:/);
    const i = await docker(d, ['info', '--format', '{{.ServerVersion}} {{.OSType}}']);
    assert.equal(i.code, 0, i.stderr);
    assert.equal(i.stdout.trim(), '0.1.0 linux');
  },
);

test('SIGTERM shuts the daemon down cleanly and removes its socket', async () => {
  const d2 = await startDaemon();
  const exited = new Promise<number | null>((r) => d2.proc.once('exit', (c) => r(c)));
  d2.proc.kill('SIGTERM');
  assert.equal(await exited, 0);
  assert.equal(existsSync(d2.socket), false);
  await d2.stop();
});

test('TCP: loopback is served, other addresses are refused without TLS', async () => {
  const refused = await run(
    process.execPath,
    [
      BERTHD,
      '--data-root',
      `${d.dir}/tcp-data`,
      '--exec-root',
      `${d.dir}/tcp-run`,
      '--config-file',
      `${d.dir}/daemon.json`,
      '-H',
      'tcp://0.0.0.0:23990',
    ],
    { timeoutMs: 20_000 },
  );
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /refusing to listen on tcp:\/\/0\.0\.0\.0:23990 without TLS/);
  const d2 = await startDaemon(['-H', 'tcp://127.0.0.1:23991']);
  try {
    const v = await run(
      process.execPath,
      [BERTH, '-H', 'tcp://127.0.0.1:23991', 'version', '--format', '{{.Server.ApiVersion}}'],
      { env: { BERTH_HOST: '', DOCKER_HOST: '' } },
    );
    assert.equal(v.code, 0, v.stderr);
    assert.equal(v.stdout.trim(), '1.41');
  } finally {
    await d2.stop();
  }
});

test('the API socket is mode 0660', async () => {
  const { statSync } = await import('node:fs');
  assert.equal(statSync(d.socket).mode & 0o777, 0o660);
});

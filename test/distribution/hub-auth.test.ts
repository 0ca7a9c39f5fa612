/**
 * The client side against Berth Hub with accounts (token auth): berth and the docker CLI log in
 * through berthd and push; skopeo copies in and out with credentials; each pulls what the other
 * pushed and it runs the same.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import {
  BERTH,
  berth,
  cleanupDir,
  docker,
  DOCKER_CLI,
  run,
  startDaemon,
  type TestDaemon,
} from '../helpers/daemon.js';
import { freePort, seedAuthHub } from './registries.js';

let d: TestDaemon;
let hub: string;
let hubRoot: string;
const hasSkopeo = existsSync('/usr/bin/skopeo');

before(async () => {
  hubRoot = mkdtempSync(path.join(os.tmpdir(), 'berth-authhub-'));
  await seedAuthHub(hubRoot, { alice: 'alice-pw-1', bob: 'bob-pw-123' });
  hub = `127.0.0.1:${await freePort()}`;
  d = await startDaemon([], { 'hub-listen': hub, 'hub-root': hubRoot });
});
after(async () => {
  await d.stop();
  await cleanupDir(hubRoot);
});

test('berth login and push to an account on Berth Hub; anonymous and foreign pushes are refused', async () => {
  const pub = await berth(d, ['pull', `${hub}/library/busybox`]);
  assert.equal(pub.code, 0, pub.stderr);
  const mine = `${hub}/alice/bb:1`;
  await berth(d, ['tag', `${hub}/library/busybox`, mine]);
  const anon = await berth(d, ['push', mine]);
  assert.equal(anon.code, 1);
  assert.match(anon.stderr, /unauthorized|denied/);

  const wrong = await berth(d, ['login', '-u', 'alice', '--password-stdin', hub], { input: 'nope\n' });
  assert.equal(wrong.code, 1);
  const ok = await berth(d, ['login', '-u', 'alice', '--password-stdin', hub], { input: 'alice-pw-1\n' });
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /Login Succeeded/);

  const p = await berth(d, ['push', mine]);
  assert.equal(p.code, 0, p.stderr);
  // alice's token may pull the public library/busybox, so the layer is mounted, not uploaded.
  assert.match(p.stdout, /Mounted from library\/busybox|Layer already exists/);
  assert.match(p.stdout, /1: digest: sha256:[0-9a-f]{64}/);

  await berth(d, ['tag', `${hub}/library/busybox`, `${hub}/bob/bb:1`]);
  const foreign = await berth(d, ['push', `${hub}/bob/bb:1`]);
  assert.equal(foreign.code, 1);
  assert.match(foreign.stderr, /denied/);

  // A private repository: only with credentials.
  const priv = await run(process.execPath, [
    BERTH,
    'hub',
    'repo',
    'alice/bb',
    '--private',
    '--root',
    hubRoot,
  ]);
  assert.equal(priv.code, 0, priv.stderr);
  await berth(d, ['rmi', mine]);
  const back = await berth(d, ['pull', mine]);
  assert.equal(back.code, 0, back.stderr);
  await berth(d, ['rmi', mine]);
  await berth(d, ['logout', hub]);
  const denied = await berth(d, ['pull', mine]);
  assert.equal(denied.code, 1);
  assert.match(denied.stderr, /pull access denied|denied|unauthorized/);
});

test(
  'the docker CLI logs in and pushes through berthd to an account',
  { skip: !existsSync(DOCKER_CLI) && 'no docker CLI' },
  async () => {
    const login = await docker(d, ['login', '-u', 'bob', '--password-stdin', hub], { input: 'bob-pw-123\n' });
    assert.equal(login.code, 0, login.stderr);
    assert.match(login.stdout, /Login Succeeded/);
    const name = `${hub}/bob/dk:1`;
    assert.equal((await docker(d, ['tag', `${hub}/library/busybox`, name])).code, 0);
    const p = await docker(d, ['push', name]);
    assert.equal(p.code, 0, p.stderr);
    assert.match(p.stdout, /1: digest: sha256:/);
    await docker(d, ['rmi', name]);
    const back = await docker(d, ['pull', name]);
    assert.equal(back.code, 0, back.stderr);
    const r = await docker(d, ['run', '--rm', name, 'echo', 'bob was here']);
    assert.equal(r.stdout, 'bob was here\n');
    const out = await docker(d, ['logout', hub]);
    assert.equal(out.code, 0, out.stderr);
  },
);

test(
  'skopeo copies in and out of Berth Hub with credentials; berth runs what skopeo pushed',
  { skip: !hasSkopeo && 'no skopeo' },
  async () => {
    // In: skopeo pushes into alice's namespace; berth pulls it (logged in) and runs it.
    const copyIn = await run('skopeo', [
      'copy',
      '--src-tls-verify=false',
      '--dest-tls-verify=false',
      '--dest-creds',
      'alice:alice-pw-1',
      `docker://${hub}/library/busybox:latest`,
      `docker://${hub}/alice/from-skopeo:1`,
    ]);
    assert.equal(copyIn.code, 0, copyIn.stderr);
    const login = await berth(d, ['login', '-u', 'alice', '--password-stdin', hub], {
      input: 'alice-pw-1\n',
    });
    assert.equal(login.code, 0, login.stderr);
    const pulled = await berth(d, ['pull', `${hub}/alice/from-skopeo:1`]);
    assert.equal(pulled.code, 0, pulled.stderr);
    const r = await berth(d, ['run', '--rm', `${hub}/alice/from-skopeo:1`, 'sh', '-c', 'echo $((6*7))']);
    assert.equal(r.stdout, '42\n');

    // Out: berth pushes an image of its own making; skopeo reads it back with credentials.
    await berth(d, ['tag', `${hub}/alice/from-skopeo:1`, `${hub}/alice/from-berth:2`]);
    const p = await berth(d, ['push', `${hub}/alice/from-berth:2`]);
    assert.equal(p.code, 0, p.stderr);
    const digest = /2: digest: (sha256:[0-9a-f]{64})/.exec(p.stdout)?.[1];
    await run(process.execPath, [BERTH, 'hub', 'repo', 'alice/from-berth', '--private', '--root', hubRoot]);
    const noCreds = await run('skopeo', [
      'inspect',
      '--tls-verify=false',
      `docker://${hub}/alice/from-berth:2`,
    ]);
    assert.notEqual(noCreds.code, 0);
    const inspect = await run('skopeo', [
      'inspect',
      '--tls-verify=false',
      '--creds',
      'alice:alice-pw-1',
      `docker://${hub}/alice/from-berth:2`,
    ]);
    assert.equal(inspect.code, 0, inspect.stderr);
    assert.equal(JSON.parse(inspect.stdout).Digest, digest);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-skopeo-out-'));
    try {
      const copyOut = await run('skopeo', [
        'copy',
        '--src-tls-verify=false',
        '--src-creds',
        'alice:alice-pw-1',
        `docker://${hub}/alice/from-berth:2`,
        `oci:${dir}:out`,
      ]);
      assert.equal(copyOut.code, 0, copyOut.stderr);
      assert.ok(existsSync(path.join(dir, 'index.json')));
    } finally {
      await cleanupDir(dir);
      await berth(d, ['logout', hub]);
    }
  },
);

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import {
  BERTH,
  berth,
  docker,
  DOCKER_CLI,
  request,
  run,
  startDaemon,
  type TestDaemon,
} from '../helpers/daemon.js';
import { makeTar } from '../helpers/tar.js';
import {
  freePort,
  hasReferenceRegistry,
  type RunningRegistry,
  startReferenceRegistry,
  startTokenRegistry,
  type TokenRegistry,
} from './registries.js';

let d: TestDaemon;
let hub: string;

before(async () => {
  hub = `127.0.0.1:${await freePort()}`;
  d = await startDaemon([], { 'registry-mirrors': [`http://${hub}`], 'hub-listen': hub });
  const seed = await run(process.execPath, [BERTH, 'hub', 'seed', '--registry', hub]);
  assert.equal(seed.code, 0, seed.stderr);
  const p = await berth(d, ['pull', 'busybox']);
  assert.equal(p.code, 0, p.stderr);
});
after(async () => {
  await d.stop();
});

function messages(body: Buffer): Record<string, unknown>[] {
  return body
    .toString()
    .split('\r\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

test('berth push to Berth Hub: pushed, already there, mounted from another repository, pulled back', async () => {
  const name = `${hub}/team/bb`;
  assert.equal((await berth(d, ['tag', 'busybox', `${name}:1`])).code, 0);
  const first = await berth(d, ['push', `${name}:1`]);
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stdout, new RegExp(`The push refers to repository \\[${name}\\]`));
  assert.match(first.stdout, /: (Pushed|Layer already exists)\n/);
  const digest = /1: digest: (sha256:[0-9a-f]{64}) size: (\d+)/.exec(first.stdout);
  assert.ok(digest, first.stdout);
  // The manifest the image was pulled with is pushed byte for byte: same digest as the seed.
  const seeded = await run('skopeo', [
    'inspect',
    '--tls-verify=false',
    `docker://${hub}/library/busybox:latest`,
  ]);
  assert.equal(JSON.parse(seeded.stdout).Digest, digest[1]);
  const again = await berth(d, ['push', `${name}:1`]);
  assert.match(again.stdout, /: Layer already exists\n/);
  assert.doesNotMatch(again.stdout, /Pushed/);

  // Another repository on the same registry.
  assert.equal((await berth(d, ['tag', 'busybox', `${hub}/team/other:2`])).code, 0);
  const other = await berth(d, ['push', `${hub}/team/other:2`]);
  assert.equal(other.code, 0, other.stderr);

  // RepoDigests gained the pushed digest.
  const inspect = await berth(d, ['image', 'inspect', '-f', '{{json .RepoDigests}}', `${name}:1`]);
  assert.ok(JSON.parse(inspect.stdout).includes(`${name}@${digest[1]}`), inspect.stdout);

  await berth(d, ['rmi', `${name}:1`, `${hub}/team/other:2`]);
  const back = await berth(d, ['pull', `${hub}/team/other:2`]);
  assert.equal(back.code, 0, back.stderr);
  const r = await berth(d, ['run', '--rm', `${hub}/team/other:2`, 'echo', 'round trip']);
  assert.equal(r.stdout, 'round trip\n');
});

test('push API: Docker progress messages with aux Digest; bad names fail before the stream', async () => {
  const name = `${hub}/api/bb`;
  await berth(d, ['tag', 'busybox', `${name}:7`]);
  const res = await request(d, 'POST', `/v1.41/images/${name}/push?tag=7`, undefined, {
    'X-Registry-Auth': 'e30=',
  });
  assert.equal(res.status, 200);
  const msgs = messages(res.body);
  assert.deepEqual(msgs[0], { status: `The push refers to repository [${name}]` });
  assert.ok(msgs.some((m) => m.status === 'Preparing' && typeof m.id === 'string' && m.id.length === 12));
  const aux = msgs.find((m) => m.aux) as { aux: { Tag: string; Digest: string; Size: number } };
  assert.equal(aux.aux.Tag, '7');
  assert.match(aux.aux.Digest, /^sha256:[0-9a-f]{64}$/);
  assert.ok(msgs.some((m) => m.status === `7: digest: ${aux.aux.Digest} size: ${aux.aux.Size}`));

  const missing = await request(d, 'POST', `/images/${name}/push?tag=nosuch`);
  assert.equal(missing.status, 404);
  assert.match(JSON.parse(missing.body.toString()).message, /An image does not exist locally with the tag/);
  // A registry that is not there: an error message in the stream, no hang.
  const dead = `127.0.0.1:${await freePort()}/x/y`;
  await berth(d, ['tag', 'busybox', `${dead}:1`]);
  const down = await berth(d, ['push', `${dead}:1`]);
  assert.equal(down.code, 1);
  assert.match(down.stderr, /ECONNREFUSED|connect/);
});

test('push --all-tags pushes every tag of the repository', async () => {
  const name = `${hub}/all/bb`;
  for (const t of ['a', 'b']) await berth(d, ['tag', 'busybox', `${name}:${t}`]);
  const r = await berth(d, ['push', '--all-tags', name]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /a: digest: sha256:/);
  assert.match(r.stdout, /b: digest: sha256:/);
  const tags = await run('skopeo', ['list-tags', '--tls-verify=false', `docker://${name}`]);
  assert.deepEqual(JSON.parse(tags.stdout).Tags.sort(), ['a', 'b']);
});

test(
  'the real docker CLI pushes through berthd and pulls it back',
  { skip: !existsSync(DOCKER_CLI) && 'no docker CLI' },
  async () => {
    const name = `${hub}/docker/bb:1`;
    assert.equal((await docker(d, ['tag', 'busybox', name])).code, 0);
    const p = await docker(d, ['push', name]);
    assert.equal(p.code, 0, p.stderr);
    assert.match(p.stdout, /1: digest: sha256:[0-9a-f]{64} size: \d+/);
    assert.equal((await docker(d, ['rmi', name])).code, 0);
    const back = await docker(d, ['pull', name]);
    assert.equal(back.code, 0, back.stderr);
    assert.match(back.stdout, /Status: Downloaded newer image/);
    const r = await docker(d, ['run', '--rm', name, 'echo', 'via docker']);
    assert.equal(r.stdout, 'via docker\n');
  },
);

test('a big layer goes up in chunks behind token auth; credentials from berth login', async () => {
  const reg: TokenRegistry = await startTokenRegistry({ alice: 'wonderland' });
  try {
    // A 40 MB uncompressed layer: more than one upload chunk.
    const tarball = await makeTar([{ name: 'big.bin', data: randomBytes(40 * 1024 * 1024) }]);
    const name = `${reg.host}/alice/big`;
    const imp = await berth(d, ['import', '-', `${name}:1`], { input: tarball });
    assert.equal(imp.code, 0, imp.stderr);

    const anon = await berth(d, ['push', `${name}:1`]);
    assert.equal(anon.code, 1);
    assert.match(anon.stderr, /denied|unauthorized/);

    const bad = await berth(d, ['login', '-u', 'alice', '--password-stdin', reg.host], { input: 'nope\n' });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /unauthorized|incorrect username or password/);
    const login = await berth(d, ['login', '-u', 'alice', '--password-stdin', reg.host], {
      input: 'wonderland\n',
    });
    assert.equal(login.code, 0, login.stderr);
    assert.match(login.stdout, /Login Succeeded/);
    const cfgFile = path.join(d.dir, 'docker-config', 'config.json');
    assert.equal(statSync(cfgFile).mode & 0o777, 0o600);
    const { readFileSync } = await import('node:fs');
    const cfg = JSON.parse(readFileSync(cfgFile, 'utf8'));
    assert.equal(cfg.auths[reg.host].auth, Buffer.from('alice:wonderland').toString('base64'));

    reg.log.length = 0;
    const p = await berth(d, ['push', `${name}:1`]);
    assert.equal(p.code, 0, p.stderr);
    assert.match(p.stdout, /Pushed/);
    const patches = reg.log.filter((l) => l.method === 'PATCH');
    assert.ok(patches.length >= 2, `chunked upload: ${JSON.stringify(patches)}`);
    assert.equal(patches[0].contentRange, '0-33554431');
    const unauthenticated = reg.log.filter(
      (l) => l.path !== '/token' && l.path !== '/v2/' && l.auth !== 'Bearer',
    );
    assert.deepEqual(unauthenticated, []);
    assert.ok(
      reg.tokenRequests.some(
        (t) => t.account === 'alice' && t.scopes.includes('repository:alice/big:pull,push'),
      ),
      JSON.stringify(reg.tokenRequests),
    );

    await berth(d, ['rmi', `${name}:1`]);
    const back = await berth(d, ['pull', `${name}:1`]);
    assert.equal(back.code, 0, back.stderr);

    const out = await berth(d, ['logout', reg.host]);
    assert.match(out.stdout, new RegExp(`Removing login credentials for ${reg.host}`));
    assert.equal(JSON.parse(readFileSync(cfgFile, 'utf8')).auths[reg.host], undefined);
    const again = await berth(d, ['logout', reg.host]);
    assert.match(again.stdout, /Not logged in/);
  } finally {
    await berth(d, ['rmi', '-f', `${reg.host}/alice/big:1`]);
    await reg.stop();
  }
});

test(
  "the reference registry (Debian's docker-registry): push and pull round trip, with htpasswd auth",
  { skip: !hasReferenceRegistry && 'no docker-registry' },
  async () => {
    let reg: RunningRegistry | undefined;
    try {
      reg = await startReferenceRegistry();
      const name = `${reg.host}/lib/bb:1`;
      await berth(d, ['tag', 'busybox', name]);
      const p = await berth(d, ['push', name]);
      assert.equal(p.code, 0, p.stderr);
      assert.match(p.stdout, /Pushed/);
      await berth(d, ['rmi', name]);
      const back = await berth(d, ['pull', name]);
      assert.equal(back.code, 0, back.stderr);
      const r = await berth(d, ['run', '--rm', name, 'echo', 'reference']);
      assert.equal(r.stdout, 'reference\n');
      // The registry links blobs per repository: a second repository gets the layer by a mount.
      await berth(d, ['tag', 'busybox', `${reg.host}/lib/cc:1`]);
      const mounted = await berth(d, ['push', `${reg.host}/lib/cc:1`]);
      assert.equal(mounted.code, 0, mounted.stderr);
      assert.match(mounted.stdout, /: Mounted from lib\/bb\n/);
      await berth(d, ['rmi', `${reg.host}/lib/cc:1`]);
      await reg.stop();
      reg = undefined;

      reg = await startReferenceRegistry({ bob: 'builder' });
      const secured = `${reg.host}/lib/bb:2`;
      await berth(d, ['tag', 'busybox', secured]);
      const anon = await berth(d, ['push', secured]);
      assert.equal(anon.code, 1);
      assert.match(anon.stderr, /unauthorized/);
      if (existsSync(DOCKER_CLI)) {
        const login = await docker(d, ['login', '-u', 'bob', '--password-stdin', reg.host], {
          input: 'builder\n',
        });
        assert.equal(login.code, 0, login.stderr);
        assert.match(login.stdout, /Login Succeeded/);
        const dp = await docker(d, ['push', secured]);
        assert.equal(dp.code, 0, dp.stderr);
        const wrong = await docker(d, ['login', '-u', 'bob', '--password-stdin', reg.host], { input: 'x\n' });
        assert.equal(wrong.code, 1);
      }
      // berth reads the same config.json the docker CLI wrote.
      const login = await berth(d, ['login', '-u', 'bob', '--password-stdin', reg.host], {
        input: 'builder\n',
      });
      assert.equal(login.code, 0, login.stderr);
      await berth(d, ['rmi', secured]);
      const back2 = await berth(d, ['pull', secured]);
      assert.equal(back2.code, 0, back2.stderr);
      await berth(d, ['logout', reg.host]);
      await berth(d, ['rmi', secured]);
      const denied = await berth(d, ['pull', secured]);
      assert.equal(denied.code, 1);
    } finally {
      await reg?.stop();
    }
  },
);

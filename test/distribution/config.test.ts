import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { isInsecure, registryBase, validateRegistryConfig } from '../../src/distribution/hosts.js';
import { decodeRegistryAuth, encodeRegistryAuth } from '../../src/distribution/auth.js';
import { BERTH, BERTHD, berth, cleanupDir, request, run, startDaemon } from '../helpers/daemon.js';
import { freePort } from './registries.js';

test('insecure registries: loopback always, host:port and CIDR entries; mirrors validated', () => {
  assert.ok(isInsecure('127.0.0.1:5000', []));
  assert.ok(isInsecure('localhost:5000', []));
  assert.ok(!isInsecure('registry.example:5000', []));
  assert.ok(isInsecure('registry.example:5000', ['registry.example:5000']));
  assert.ok(isInsecure('10.1.2.3:5000', ['10.1.0.0/16']));
  assert.ok(!isInsecure('10.2.2.3:5000', ['10.1.0.0/16']));
  assert.equal(
    registryBase('https://index.docker.io/v1/', { mirrors: [], insecure: [] }).base,
    'https://registry-1.docker.io',
  );
  assert.equal(registryBase('127.0.0.1:5000', { mirrors: [], insecure: [] }).base, 'http://127.0.0.1:5000');
  assert.equal(registryBase('reg.example', { mirrors: [], insecure: [] }).base, 'https://reg.example');
  assert.throws(() => validateRegistryConfig({ mirrors: ['ftp://x'], insecure: [] }), /unsupported scheme/);
  assert.throws(
    () => validateRegistryConfig({ mirrors: [], insecure: ['http://x:5000'] }),
    /should not contain/,
  );
  assert.throws(() => validateRegistryConfig({ mirrors: [], insecure: ['10.0.0.0/99'] }), /CIDR/);
  // X-Registry-Auth: base64url JSON both ways; `auth` split into user and password.
  assert.deepEqual(decodeRegistryAuth(encodeRegistryAuth({ username: 'a', password: 'p?>' })), {
    username: 'a',
    password: 'p?>',
  });
  assert.deepEqual(decodeRegistryAuth('e30='), {});
  const viaAuth = Buffer.from(JSON.stringify({ auth: Buffer.from('u:pw').toString('base64') })).toString(
    'base64',
  );
  assert.equal(decodeRegistryAuth(viaAuth).password, 'pw');
  assert.throws(() => decodeRegistryAuth('!!notbase64json'), /X-Registry-Auth/);
});

test('berthd flags --insecure-registry and --registry-mirror reach /info; a bad mirror stops the daemon', async () => {
  const hubPort = await freePort();
  const hub = `127.0.0.1:${hubPort}`;
  const d = await startDaemon(
    [
      '--insecure-registry',
      '10.1.0.0/16',
      '--insecure-registry',
      'reg.example:5000',
      '--registry-mirror',
      `http://127.0.0.1:${await freePort()}`,
      '--registry-mirror',
      `http://${hub}`,
    ],
    { 'hub-listen': hub },
  );
  try {
    const info = JSON.parse((await request(d, 'GET', '/info')).body.toString());
    assert.deepEqual(info.RegistryConfig.InsecureRegistryCIDRs, ['127.0.0.0/8', '10.1.0.0/16']);
    assert.equal(info.RegistryConfig.IndexConfigs['reg.example:5000'].Secure, false);
    assert.equal(info.RegistryConfig.Mirrors.length, 2);
    const seed = await run(process.execPath, [BERTH, 'hub', 'seed', '--registry', hub, '--no-busybox']);
    assert.equal(seed.code, 0, seed.stderr);
    // The first mirror is down: the pull goes on to the next one.
    const p = await berth(d, ['pull', 'hello-world']);
    assert.equal(p.code, 0, p.stderr);
    // A loopback registry named `localhost` is spoken to over plain HTTP too.
    const byName = await berth(d, ['pull', `localhost:${hubPort}/library/hello-world`]);
    assert.equal(byName.code, 0, byName.stderr);
  } finally {
    await d.stop();
  }

  const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-badcfg-'));
  try {
    writeFileSync(path.join(dir, 'daemon.json'), JSON.stringify({ 'registry-mirrors': ['ftp://mirror'] }));
    const r = await run(
      process.execPath,
      [
        BERTHD,
        '--data-root',
        path.join(dir, 'data'),
        '--exec-root',
        path.join(dir, 'run'),
        '-H',
        `unix://${dir}/s.sock`,
        '--config-file',
        path.join(dir, 'daemon.json'),
      ],
      { timeoutMs: 30_000 },
    );
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /invalid mirror: unsupported scheme "ftp"/);
  } finally {
    await cleanupDir(dir);
  }
});

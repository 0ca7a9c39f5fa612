import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { isInsecure, registryBase, validateRegistryConfig } from '../../src/distribution/hosts.js';
import { decodeRegistryAuth, encodeRegistryAuth } from '../../src/distribution/auth.js';
import { endpointsFor } from '../../src/distribution/pull.js';
import { RegistryClient } from '../../src/distribution/registry.js';
import { parseReference } from '../../src/common/reference.js';
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
      '--insecure-registry',
      `0.0.0.0:${hubPort}`,
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
    assert.equal(info.RegistryConfig.IndexConfigs[`0.0.0.0:${hubPort}`].Secure, false);
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
    // 0.0.0.0 reaches the same plain-http hub without being loopback by name: listed as insecure, it
    // is tried over https first and then over http, as Docker does.
    const fallback = await berth(d, ['pull', `0.0.0.0:${hubPort}/library/hello-world`]);
    assert.equal(fallback.code, 0, fallback.stderr);
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

test('an insecure registry is asked over https first (certificate not checked), then plain http; loopback is plain http', async () => {
  const cfg = { mirrors: [], insecure: ['0.0.0.0:5000', '10.1.0.0/16'] };
  const eps = (ref: string) => endpointsFor(parseReference(ref), cfg);
  assert.deepEqual(eps('0.0.0.0:5000/a/b:t'), [
    { base: 'https://0.0.0.0:5000', repo: 'a/b', httpFallback: true },
  ]);
  assert.deepEqual(eps('10.1.2.3:5000/a'), [
    { base: 'https://10.1.2.3:5000', repo: 'a', httpFallback: true },
  ]);
  assert.deepEqual(eps('127.0.0.1:5000/a'), [{ base: 'http://127.0.0.1:5000', repo: 'a' }]);
  assert.deepEqual(eps('localhost:5000/a'), [{ base: 'http://localhost:5000', repo: 'a' }]);
  assert.deepEqual(eps('reg.example/a'), [{ base: 'https://reg.example', repo: 'a' }]);

  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
  });
  const seen: string[] = [];
  const answer = (scheme: string) => (req: http.IncomingMessage, res: http.ServerResponse) => {
    seen.push(`${scheme} ${req.url}`);
    res.writeHead(200, { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' });
    res.end(manifest);
  };
  const listen = async (server: http.Server) => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    return (server.address() as AddressInfo).port;
  };
  const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-tls-'));
  const tls = await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=berth-test',
    '-keyout',
    path.join(dir, 'key.pem'),
    '-out',
    path.join(dir, 'cert.pem'),
  ]);
  assert.equal(tls.code, 0, tls.stderr);
  const secure = https.createServer(
    { key: readFileSync(path.join(dir, 'key.pem')), cert: readFileSync(path.join(dir, 'cert.pem')) },
    answer('https'),
  );
  const plain = http.createServer(answer('http'));
  try {
    const tlsPort = await listen(secure);
    const plainPort = await listen(plain);
    // Speaks TLS with a self-signed certificate: https, unchecked, no fallback.
    const overTls = new RegistryClient({
      base: `https://127.0.0.1:${tlsPort}`,
      repo: 'x/y',
      httpFallback: true,
    });
    assert.equal((await overTls.getManifest('t')).body.toString(), manifest);
    assert.deepEqual(seen.splice(0), ['https /v2/x/y/manifests/t']);
    // A secure registry's certificate is checked.
    await assert.rejects(
      new RegistryClient({ base: `https://127.0.0.1:${tlsPort}`, repo: 'x/y' }).getManifest('t'),
      /certificate/,
    );
    // Plain http only: the https attempt fails below HTTP, and the client goes on over http.
    const overHttp = new RegistryClient({
      base: `https://127.0.0.1:${plainPort}`,
      repo: 'x/y',
      httpFallback: true,
    });
    assert.equal((await overHttp.getManifest('t')).body.toString(), manifest);
    assert.equal((await overHttp.getManifest('u')).body.toString(), manifest);
    assert.deepEqual(seen.splice(0), ['http /v2/x/y/manifests/t', 'http /v2/x/y/manifests/u']);
    // Not insecure: no fallback.
    await assert.rejects(
      new RegistryClient({ base: `https://127.0.0.1:${plainPort}`, repo: 'x/y' }).getManifest('t'),
    );
    assert.deepEqual(seen, []);
  } finally {
    secure.closeAllConnections();
    plain.closeAllConnections();
    await new Promise((r) => secure.close(r));
    await new Promise((r) => plain.close(r));
    rmSync(dir, { recursive: true, force: true });
  }
});

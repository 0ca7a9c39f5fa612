import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { GREETING } from '../../src/hello/greeting.js';
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

async function freePort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

let d: TestDaemon;
let hub: string;

before(async () => {
  const port = await freePort();
  hub = `127.0.0.1:${port}`;
  d = await startDaemon([], { 'registry-mirrors': [`http://${hub}`], 'hub-listen': hub });
  const seed = await run(process.execPath, [BERTH, 'hub', 'seed', '--registry', hub]);
  assert.equal(seed.code, 0, seed.stderr);
  assert.match(seed.stdout, /library\/hello-world:latest: digest: sha256:a42ee0f9/);
});
after(async () => {
  await d.stop();
});

test('the story: run hello-world pulls on a miss, the second run pulls nothing', async () => {
  const first = await berth(d, ['run', '--rm', 'hello-world']);
  assert.equal(first.code, 0, first.stderr);
  assert.equal(first.stdout, GREETING);
  assert.match(first.stderr, /Unable to find image 'hello-world:latest' locally/);
  assert.match(first.stderr, /Pulling from library\/hello-world/);
  assert.match(first.stderr, /Status: Downloaded newer image for hello-world:latest/);
  const second = await berth(d, ['run', '--rm', 'hello-world']);
  assert.equal(second.code, 0);
  assert.equal(second.stderr, '');
  const inspect = await berth(d, ['image', 'inspect', '-f', '{{index .RepoDigests 0}}', 'hello-world']);
  assert.equal(
    inspect.stdout.trim(),
    'hello-world@sha256:a42ee0f9669cf11d4a602f7940248663df545bb0d7f645313ab1884468ff3683',
  );
});

test('pull: busybox from the hub runs; unknown tags fail fast with Docker words', async () => {
  const p = await berth(d, ['pull', 'busybox']);
  assert.equal(p.code, 0, p.stderr);
  assert.match(p.stdout, /Pull complete/);
  const again = await berth(d, ['pull', 'busybox']);
  assert.match(again.stdout, /Image is up to date for busybox:latest/);
  const r = await berth(d, ['run', '--rm', 'busybox', 'sh', '-c', 'echo $((1+2))']);
  assert.equal(r.stdout, '3\n');
  const t0 = Date.now();
  const missing = await berth(d, ['pull', 'nosuch:1']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /manifest for nosuch:1 not found: manifest unknown/);
  assert.ok(Date.now() - t0 < 10_000);
  const api = await request(d, 'POST', '/images/create?fromImage=nosuch&tag=1');
  assert.equal(api.status, 404);
});

test(
  'the real docker CLI pulls through berthd and the run pulls implicitly',
  { skip: !existsSync(DOCKER_CLI) && 'no docker CLI' },
  async () => {
    await berth(d, ['rmi', '-f', 'hello-world']);
    const r = await docker(d, ['run', '--rm', 'hello-world']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, GREETING);
    assert.match(r.stderr, /Unable to find image 'hello-world:latest' locally/);
    const p = await docker(d, ['pull', 'nosuch:2']);
    assert.equal(p.code, 1);
    assert.match(p.stderr, /manifest for nosuch:2 not found/);
  },
);

test('skopeo reads from Berth Hub', { skip: !existsSync('/usr/bin/skopeo') && 'no skopeo' }, async () => {
  const r = await run('skopeo', ['inspect', '--tls-verify=false', `docker://${hub}/library/busybox:latest`]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).Os, 'linux');
  const tags = await run('skopeo', [
    'list-tags',
    '--tls-verify=false',
    `docker://${hub}/library/hello-world`,
  ]);
  assert.deepEqual(JSON.parse(tags.stdout).Tags, ['latest']);
});

function hubRequest(
  method: string,
  p: string,
  body?: Buffer | string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const [host, port] = hub.split(':');
    const req = http.request({ host, port: Number(port), method, path: p, headers }, (res) => {
      let b = '';
      res.on('data', (c: Buffer) => (b += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: b, headers: res.headers }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

test('the hub refuses bad input with OCI error codes', async () => {
  const code = (r: { body: string }) => (JSON.parse(r.body) as { errors: { code: string }[] }).errors[0].code;
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: {
      mediaType: 'application/vnd.oci.image.config.v1+json',
      digest: `sha256:${'1'.repeat(64)}`,
      size: 2,
    },
    layers: [],
  });
  const missingBlob = await hubRequest('PUT', '/v2/t/x/manifests/v1', manifest, {
    'Content-Type': 'application/vnd.oci.image.manifest.v1+json',
  });
  assert.equal(missingBlob.status, 400);
  assert.equal(code(missingBlob), 'MANIFEST_BLOB_UNKNOWN');
  const bad = await hubRequest(
    'POST',
    `/v2/t/x/blobs/uploads/?digest=sha256:${'2'.repeat(64)}`,
    'not those bytes',
  );
  assert.equal(bad.status, 400);
  assert.equal(code(bad), 'DIGEST_INVALID');
  const unknown = await hubRequest(
    'PATCH',
    '/v2/t/x/blobs/uploads/00000000-0000-0000-0000-000000000000',
    'x',
  );
  assert.equal(unknown.status, 404);
  assert.equal(code(unknown), 'BLOB_UPLOAD_UNKNOWN');
  const name = await hubRequest('GET', '/v2/UPPER/../x/manifests/latest');
  assert.equal(name.status, 400);
  assert.equal(code(name), 'NAME_INVALID');
  const notJson = await hubRequest('PUT', '/v2/t/x/manifests/v2', '{oops', {
    'Content-Type': 'application/vnd.oci.image.manifest.v1+json',
  });
  assert.equal(notJson.status, 400);
  assert.equal(code(notJson), 'MANIFEST_INVALID');
  const tooBig = await hubRequest('PUT', '/v2/t/x/manifests/v3', Buffer.alloc(5 * 1024 * 1024, 32));
  assert.equal(tooBig.status, 413);
  const ok = await hubRequest('GET', '/v2/');
  assert.equal(ok.status, 200);
  assert.equal(ok.headers['docker-distribution-api-version'], 'registry/2.0');
});

test('a registry that sends wrong bytes leaves no image behind', async () => {
  // A registry that answers the hub's manifests but corrupts every blob.
  const [host, port] = hub.split(':');
  const evil = http.createServer((req, res) => {
    const up = http.request(
      { host, port: Number(port), method: req.method, path: req.url, headers: req.headers },
      (ur) => {
        const isBlob = /\/blobs\/sha256:/.test(req.url ?? '');
        res.writeHead(ur.statusCode ?? 500, ur.headers);
        if (!isBlob) return void ur.pipe(res);
        ur.on('data', (c: Buffer) => res.write(Buffer.from(c.map((x) => x ^ 0xff))));
        ur.on('end', () => res.end());
      },
    );
    req.pipe(up);
  });
  await new Promise<void>((r) => evil.listen(0, '127.0.0.1', () => r()));
  const evilPort = (evil.address() as AddressInfo).port;
  try {
    await berth(d, ['rmi', '-f', 'busybox']);
    const r = await berth(d, ['pull', `127.0.0.1:${evilPort}/library/busybox:latest`]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /digest mismatch|invalid/);
    const imgs = await berth(d, ['images', '--format', '{{.Repository}}']);
    assert.ok(!imgs.stdout.includes(`127.0.0.1:${evilPort}`));
  } finally {
    evil.close();
  }
});

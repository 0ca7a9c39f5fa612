import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, test } from 'node:test';
import { randomBytes } from 'node:crypto';
import { ProgressPrinter } from '../../src/cli/progress.js';
import { makeTar } from '../helpers/tar.js';
import { BERTH, berth, request, run, startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { freePort } from './registries.js';

let d: TestDaemon;
let hub: string;

before(async () => {
  hub = `127.0.0.1:${await freePort()}`;
  d = await startDaemon([], { 'registry-mirrors': [`http://${hub}`], 'hub-listen': hub });
  const seed = await run(process.execPath, [BERTH, 'hub', 'seed', '--registry', hub]);
  assert.equal(seed.code, 0, seed.stderr);
});
after(async () => {
  await d.stop();
});

type Tamper = (
  req: http.IncomingMessage,
  res: http.ServerResponse,
  upstream: http.IncomingMessage,
) => boolean | void;

/** A registry in front of the hub that can tamper with answers; `tamper` returns true when it answered. */
async function proxy(tamper: Tamper): Promise<{ host: string; log: string[]; close(): Promise<void> }> {
  const [host, port] = hub.split(':');
  const log: string[] = [];
  const server = http.createServer((req, res) => {
    log.push(`${req.method} ${req.url} ${req.headers.range ?? ''}`.trim());
    const up = http.request(
      { host, port: Number(port), method: req.method, path: req.url, headers: req.headers },
      (ur) => {
        log.push(`  -> ${ur.statusCode} ${ur.headers['content-length'] ?? 'chunked'}`);
        if (tamper(req, res, ur)) return;
        res.writeHead(ur.statusCode ?? 500, ur.headers);
        ur.pipe(res);
      },
    );
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    host: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    log,
    async close() {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

let uniq = 0;
/** A fresh image (one random 2 MB layer) on the hub and not in the daemon: `repo` under the hub. */
async function uniqueImage(): Promise<string> {
  const repo = `t/img${++uniq}`;
  const tarball = await makeTar([{ name: 'data.bin', data: randomBytes(2 * 1024 * 1024) }]);
  const imp = await berth(d, ['import', '-', `${hub}/${repo}:latest`, '-c', 'CMD ["/data.bin"]'], {
    input: tarball,
  });
  assert.equal(imp.code, 0, imp.stderr);
  assert.equal((await berth(d, ['push', `${hub}/${repo}:latest`])).code, 0);
  assert.equal((await berth(d, ['rmi', `${hub}/${repo}:latest`])).code, 0);
  return repo;
}

const isLayerGet = (req: http.IncomingMessage) =>
  req.method === 'GET' && /\/blobs\/sha256:/.test(req.url ?? '');

async function readBody(s: http.IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Nothing half-written: no in-flight ingests, no image under the proxy's name. */
async function assertNothingKept(host: string): Promise<void> {
  assert.deepEqual(readdirSync(path.join(d.dataRoot, 'content', 'ingest')), []);
  const imgs = await berth(d, ['images', '--format', '{{.Repository}}']);
  assert.ok(!imgs.stdout.includes(host), imgs.stdout);
}

test('a connection dropped mid-blob is resumed with Range', async () => {
  let dropped = 0;
  const p = await proxy((req, res, ur) => {
    const len = Number(ur.headers['content-length'] ?? 0);
    if (!isLayerGet(req) || req.headers.range || len < 1024 * 1024 || dropped) return;
    dropped++;
    // Half the bytes, then the connection dies.
    res.writeHead(200, ur.headers);
    let sent = 0;
    ur.on('data', (c: Buffer) => {
      if (sent >= len / 2) return;
      res.write(c);
      sent += c.length;
      if (sent >= len / 2) setTimeout(() => res.socket?.destroy(), 50);
    });
    return true;
  });
  try {
    const r = await berth(d, ['pull', `${p.host}/library/busybox:latest`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(dropped, 1);
    assert.ok(
      p.log.some((l) => /bytes=\d+-$/.test(l)),
      p.log.join('\n'),
    );
    const run1 = await berth(d, ['run', '--rm', `${p.host}/library/busybox:latest`, 'echo', 'resumed']);
    assert.equal(run1.stdout, 'resumed\n');
  } finally {
    await berth(d, ['rmi', '-f', `${p.host}/library/busybox:latest`]);
    await p.close();
  }
});

test('a registry that keeps cutting a blob short, or answers 5xx, fails clearly and keeps nothing', async () => {
  const short = await proxy((req, res, ur) => {
    if (!isLayerGet(req)) return;
    const len = Number(ur.headers['content-length'] ?? 0);
    if (len < 4096) return;
    res.writeHead(req.headers.range ? 206 : 200, { 'Content-Length': String(Math.floor(len / 4)) });
    let sent = 0;
    ur.on('data', (c: Buffer) => {
      const room = Math.floor(len / 4) - sent;
      if (room <= 0) return;
      res.write(c.subarray(0, room));
      sent += Math.min(room, c.length);
      if (sent >= Math.floor(len / 4)) res.end();
    });
    return true;
  });
  try {
    const r = await berth(d, ['pull', `${short.host}/${await uniqueImage()}:latest`]);
    assert.equal(r.code, 1, r.stdout + short.log.join('\n'));
    assert.match(r.stderr, /connection closed after \d+ of \d+ bytes/);
    await assertNothingKept(short.host);
  } finally {
    await short.close();
  }

  const failing = await proxy((req, res) => {
    if (!isLayerGet(req)) return;
    res.writeHead(503, { 'Content-Type': 'application/json' });
    res.end('{"errors":[{"code":"UNAVAILABLE","message":"try later"}]}');
    return true;
  });
  try {
    const r = await berth(d, ['pull', `${failing.host}/${await uniqueImage()}:latest`]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /registry answered 503/);
    await assertNothingKept(failing.host);
  } finally {
    await failing.close();
  }
});

/** A two-layer image (plain tar layers) put on the hub over HTTP; returns its repo and layer digests. */
async function twoLayerImage(): Promise<{ repo: string; layers: string[] }> {
  const { createHash } = await import('node:crypto');
  const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
  const repo = `t/two${++uniq}`;
  const put = async (p: string, body: Buffer, method = 'POST', type = 'application/octet-stream') => {
    const [host, port] = hub.split(':');
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request(
        { host, port: Number(port), method, path: p, headers: { 'Content-Type': type } },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
    assert.equal(status, 201, `${method} ${p}`);
  };
  const layers = [
    await makeTar([{ name: 'one.bin', data: randomBytes(1024 * 1024) }]),
    await makeTar([{ name: 'two.bin', data: randomBytes(1024 * 1024) }]),
  ];
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { Cmd: ['/one.bin'] },
      rootfs: { type: 'layers', diff_ids: layers.map(sha) },
    }),
  );
  for (const b of [...layers, config]) await put(`/v2/${repo}/blobs/uploads/?digest=${sha(b)}`, b);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: {
        mediaType: 'application/vnd.oci.image.config.v1+json',
        digest: sha(config),
        size: config.length,
      },
      layers: layers.map((l) => ({
        mediaType: 'application/vnd.oci.image.layer.v1.tar',
        digest: sha(l),
        size: l.length,
      })),
    }),
  );
  await put(`/v2/${repo}/manifests/latest`, manifest, 'PUT', 'application/vnd.oci.image.manifest.v1+json');
  return { repo, layers: layers.map(sha) };
}

test('a pull that fails on a later layer removes the layers it had already unpacked', async () => {
  const { repo, layers } = await twoLayerImage();
  const snapshots = () => readdirSync(path.join(d.dataRoot, 'snapshots', 'layers')).sort();
  const before = snapshots();
  // The first layer comes whole; the second is cut short every time, so the pull fails after it
  // has unpacked and filed the first.
  let firstServed = false;
  const p = await proxy((req, res, ur) => {
    if (req.url?.endsWith(layers[0])) ur.on('end', () => (firstServed = true));
    if (!isLayerGet(req) || !req.url?.endsWith(layers[1])) return;
    const len = Number(ur.headers['content-length'] ?? 0);
    res.writeHead(req.headers.range ? 206 : 200, { 'Content-Length': String(len) });
    res.write(Buffer.alloc(1024));
    setTimeout(() => res.socket?.destroy(), 20);
    return true;
  });
  try {
    const r = await berth(d, ['pull', `${p.host}/${repo}:latest`]);
    assert.equal(r.code, 1, r.stdout);
    assert.ok(firstServed, p.log.join('\n'));
    assert.deepEqual(snapshots(), before);
    await assertNothingKept(p.host);
    // The same image pulls whole from a registry that behaves.
    const ok = await berth(d, ['pull', `${hub}/${repo}:latest`]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(snapshots().length, before.length + 2);
    assert.equal((await berth(d, ['rmi', `${hub}/${repo}:latest`])).code, 0);
    assert.deepEqual(snapshots(), before);
  } finally {
    await p.close();
  }
});

test('wrong sizes and bad manifests are refused before anything is stored', async () => {
  const rewrite = (fn: (m: Record<string, unknown>) => unknown) =>
    proxy((req, res, ur) => {
      if (!/\/manifests\//.test(req.url ?? '')) return;
      void readBody(ur).then((body) => {
        const out = Buffer.from(JSON.stringify(fn(JSON.parse(body.toString()) as Record<string, unknown>)));
        res.writeHead(200, { 'Content-Type': ur.headers['content-type'], 'Content-Length': out.length });
        res.end(out);
      });
      return true;
    });
  const wrongSize = await rewrite((m) => {
    const layers = m.layers as { size: number }[] | undefined;
    if (layers) layers[0].size += 10;
    return m;
  });
  try {
    const r = await berth(d, ['pull', `${wrongSize.host}/${await uniqueImage()}:latest`]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /is shorter than its descriptor says/);
    await assertNothingKept(wrongSize.host);
  } finally {
    await wrongSize.close();
  }
  const tooLong = await rewrite((m) => {
    const layers = m.layers as { size: number }[] | undefined;
    if (layers) layers[0].size -= 10;
    return m;
  });
  try {
    const r = await berth(d, ['pull', `${tooLong.host}/${await uniqueImage()}:latest`]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /the registry sent more than \d+ bytes/);
    await assertNothingKept(tooLong.host);
  } finally {
    await tooLong.close();
  }
  const bad = await rewrite(() => ({ schemaVersion: 2, layers: 'nope' }));
  try {
    const r = await berth(d, ['pull', `${bad.host}/library/busybox:latest`]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /Error response from daemon: .*(manifest|layers)/);
    const api = await request(d, 'POST', `/images/create?fromImage=${bad.host}/library/busybox&tag=latest`);
    assert.equal(api.status, 400);
    await assertNothingKept(bad.host);
  } finally {
    await bad.close();
  }
});

test('pull by digest, --quiet, --platform and pull --all-tags', async () => {
  const inspect = await run('skopeo', [
    'inspect',
    '--tls-verify=false',
    `docker://${hub}/library/busybox:latest`,
  ]);
  const digest = JSON.parse(inspect.stdout).Digest as string;
  const byDigest = await berth(d, ['pull', `${hub}/library/busybox@${digest}`]);
  assert.equal(byDigest.code, 0, byDigest.stderr);
  assert.match(byDigest.stdout, new RegExp(`Digest: ${digest}`));
  assert.match(byDigest.stdout, new RegExp(`${hub}/library/busybox@${digest}\\n$`));
  const wrong = await berth(d, ['pull', `${hub}/library/busybox@sha256:${'0'.repeat(64)}`]);
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /not found/);

  const quiet = await berth(d, ['pull', '-q', `${hub}/library/hello-world`]);
  assert.equal(quiet.code, 0, quiet.stderr);
  assert.equal(quiet.stdout, `${hub}/library/hello-world:latest\n`);

  const arm = await berth(d, ['pull', '--platform', 'linux/s390x', `${hub}/library/hello-world`]);
  assert.equal(arm.code, 1);
  assert.match(arm.stderr, /no matching manifest for linux\/s390x in the manifest list entries/);
  const amd = await berth(d, ['pull', '--platform', 'linux/amd64', `${hub}/library/hello-world`]);
  assert.equal(amd.code, 0, amd.stderr);

  for (const t of ['x', 'y']) {
    await berth(d, ['tag', `${hub}/library/busybox@${digest}`, `${hub}/many/bb:${t}`]);
    assert.equal((await berth(d, ['push', `${hub}/many/bb:${t}`])).code, 0);
    await berth(d, ['rmi', `${hub}/many/bb:${t}`]);
  }
  const all = await berth(d, ['pull', '--all-tags', `${hub}/many/bb`]);
  assert.equal(all.code, 0, all.stderr);
  const tags = await berth(d, ['images', '--format', '{{.Tag}}', `${hub}/many/bb`]);
  assert.deepEqual(tags.stdout.trim().split('\n').sort(), ['x', 'y']);
  const tagged = await berth(d, ['pull', '-a', `${hub}/many/bb:x`]);
  assert.equal(tagged.code, 1);
});

test('/distribution/{name}/json answers with the Descriptor and Platforms', async () => {
  const index = await request(d, 'GET', `/v1.41/distribution/${hub}/library/hello-world:latest/json`);
  assert.equal(index.status, 200, index.body.toString());
  const j = JSON.parse(index.body.toString());
  assert.equal(j.Descriptor.mediaType, 'application/vnd.oci.image.index.v1+json');
  assert.equal(
    j.Descriptor.digest,
    'sha256:a42ee0f9669cf11d4a602f7940248663df545bb0d7f645313ab1884468ff3683',
  );
  assert.deepEqual(j.Platforms, [{ architecture: 'amd64', os: 'linux' }]);
  const single = await request(d, 'GET', `/distribution/${hub}/library/busybox/json`);
  const s = JSON.parse(single.body.toString());
  assert.equal(s.Descriptor.mediaType, 'application/vnd.oci.image.manifest.v1+json');
  assert.deepEqual(s.Platforms, [{ architecture: 'amd64', os: 'linux' }]);
  const missing = await request(d, 'GET', `/distribution/${hub}/library/nosuch/json`);
  assert.equal(missing.status, 404);
});

test('on a terminal the CLI redraws one line per layer, like Docker', () => {
  const out = new PassThrough();
  let text = '';
  out.on('data', (c: Buffer) => (text += c.toString()));
  const tty = new ProgressPrinter(out, true);
  tty.handle({ status: 'Pulling from library/busybox', id: 'latest' });
  tty.handle({ status: 'Pulling fs layer', progressDetail: {}, id: 'aaa' });
  tty.handle({ status: 'Pulling fs layer', progressDetail: {}, id: 'bbb' });
  tty.handle({
    status: 'Downloading',
    progressDetail: { current: 5, total: 10 },
    progress: '[=>  ] 5B/10B',
    id: 'aaa',
  });
  tty.handle({ status: 'Pull complete', progressDetail: {}, id: 'aaa' });
  tty.handle({ status: 'Digest: sha256:1' });
  // Layer aaa is two lines up when bbb is the last: cursor up 2, rewrite, cursor down 2.
  assert.ok(text.includes('\x1b[2A\x1b[2K\raaa: Downloading [=>  ] 5B/10B\r\x1b[2B'), JSON.stringify(text));
  assert.ok(text.endsWith('Digest: sha256:1\n'));
  let plain = '';
  const out2 = new PassThrough();
  out2.on('data', (c: Buffer) => (plain += c.toString()));
  const pipe = new ProgressPrinter(out2, false);
  pipe.handle({
    status: 'Downloading',
    progressDetail: { current: 5, total: 10 },
    progress: '[=>] 5B/10B',
    id: 'aaa',
  });
  pipe.handle({ status: 'Download complete', progressDetail: {}, id: 'aaa' });
  assert.equal(plain, 'aaa: Download complete\n');
  assert.throws(() => pipe.handle({ error: 'boom', errorDetail: { message: 'boom' } }), /boom/);
});

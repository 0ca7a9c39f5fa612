import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { sha256Digest } from '../../src/common/digest.js';
import { GREETING } from '../../src/hello/greeting.js';
import { buildHelloWorld, writeOciLayout } from '../../src/hello/image.js';
import { request, startDaemon } from '../helpers/daemon.js';

// Pinned: any change to the program, greeting or JSON layout must be deliberate.
const INDEX_DIGEST = 'sha256:a42ee0f9669cf11d4a602f7940248663df545bb0d7f645313ab1884468ff3683';
const MANIFEST_DIGEST = 'sha256:6c5acc024a839c420c84b149202a16b05c05242e26ef2e9801e978ac262d1f8c';

function tmp(): string {
  return mkdtempSync(path.join(os.tmpdir(), 'berth-hello-'));
}

test('the image is byte for byte deterministic', () => {
  const a = buildHelloWorld();
  const b = buildHelloWorld();
  assert.deepEqual(a.index, b.index);
  assert.equal(a.indexDigest, INDEX_DIGEST);
  assert.equal(a.manifests[0].manifestDigest, MANIFEST_DIGEST);
});

test('the program runs and prints the greeting', () => {
  const dir = tmp();
  try {
    const layer = buildHelloWorld().manifests[0].layer;
    writeFileSync(path.join(dir, 'layer.tar'), layer);
    execFileSync('tar', ['-xf', 'layer.tar'], { cwd: dir });
    const st = spawnSync(path.join(dir, 'hello'));
    assert.equal(st.status, 0);
    assert.equal(st.stdout.toString(), GREETING);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the OCI layout is valid: every blob matches its name, sizes match', async () => {
  const dir = tmp();
  try {
    await writeOciLayout(buildHelloWorld(), dir);
    const blobs = path.join(dir, 'blobs', 'sha256');
    for (const name of readdirSync(blobs))
      assert.equal(sha256Digest(readFileSync(path.join(blobs, name))), `sha256:${name}`);
    const top = JSON.parse(readFileSync(path.join(dir, 'index.json'), 'utf8'));
    const read = (d: string) => readFileSync(path.join(blobs, d.slice(7)));
    const idx = JSON.parse(read(top.manifests[0].digest).toString());
    const m = JSON.parse(read(idx.manifests[0].digest).toString());
    assert.equal(read(m.config.digest).length, m.config.size);
    assert.equal(read(m.layers[0].digest).length, m.layers[0].size);
    if (existsSync('/usr/bin/skopeo')) {
      const out = execFileSync('skopeo', ['inspect', `oci:${dir}:latest`]).toString();
      assert.equal(JSON.parse(out).Digest, INDEX_DIGEST);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('berthd loads it as hello-world:latest', async () => {
  const dir = tmp();
  const d = await startDaemon();
  try {
    await writeOciLayout(buildHelloWorld(), path.join(dir, 'layout'));
    execFileSync('tar', ['-cf', path.join(dir, 'hello.tar'), '-C', path.join(dir, 'layout'), '.']);
    const r = await request(d, 'POST', '/images/load', readFileSync(path.join(dir, 'hello.tar')));
    assert.equal(r.status, 200, r.body.toString());
    assert.match(r.body.toString(), /Loaded image: hello-world:latest/);
    const img = JSON.parse((await request(d, 'GET', '/images/hello-world/json')).body.toString());
    assert.deepEqual(img.Config.Cmd, ['/hello']);
  } finally {
    await d.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

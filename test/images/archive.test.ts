import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream, existsSync, mkdtempSync, promises as fsp, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { type Digest, sha256Digest } from '../../src/common/digest.js';
import { BerthError } from '../../src/common/errors.js';
import { FileContentStore } from '../../src/engine/content/store.js';
import { type EngineEvent, EventBus } from '../../src/engine/events/events.js';
import { type ArchiveDeps, importImage, loadImages, saveImages } from '../../src/engine/images/archive.js';
import { MediaType } from '../../src/engine/images/manifest.js';
import { ImageStore } from '../../src/engine/images/store.js';
import { OverlaySnapshotter } from '../../src/engine/snapshots/overlay.js';
import { cleanupDir, FIXTURES } from '../helpers/daemon.js';
import { makeTar, type TarEntry } from '../helpers/tar.js';

// The fixture image, as /work/shared/fixtures/images/README.md describes it.
const BUSYBOX_ID = 'sha256:654fc8fd836e35f4a64586bddf8f59b9029b48cf80f520834c6c98ca8ab5def9';
const BUSYBOX_MANIFEST = 'sha256:a34ce92094b7b100a98fbd21411a92825f6827b1bc5f6918c253516c90556998';
const BUSYBOX_LAYER = 'sha256:5c3b447848a98e48dce106cb3e6acbd4fb6f9b26ee778798137349ce01f4d3c1';
const BUSYBOX_DIFF_ID = 'sha256:0f8918d0fe4f272ce8acece89916a9ba0b240584d3c1dd1943f343f69b0d0ffb';
const DOCKER_ARCHIVE = path.join(FIXTURES, 'busybox-1.38.0-musl-docker-archive.tar');
const OCI_DIR = path.join(FIXTURES, 'busybox-1.38.0-musl-oci');
const ALPINE = path.join(FIXTURES, 'alpine-minirootfs-3.20.3-x86_64.tar.gz');
const SKOPEO = '/usr/bin/skopeo';

interface TestDeps extends ArchiveDeps {
  events: EventBus;
  seen: EngineEvent[];
  snapshots: OverlaySnapshotter;
}

/** A fresh data root composed as Engine composes it, removed afterwards. */
async function withDeps(fn: (deps: TestDeps, dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-archive-'));
  try {
    const events = new EventBus();
    const seen: EngineEvent[] = [];
    events.subscribe((e) => seen.push(e));
    const content = new FileContentStore(path.join(dir, 'content'));
    const snapshots = new OverlaySnapshotter(path.join(dir, 'snapshots'));
    await content.init();
    await snapshots.init();
    const images = new ImageStore(path.join(dir, 'image'), content, snapshots);
    await images.init();
    await fn({ content, snapshots, images, events, seen }, dir);
  } finally {
    await cleanupDir(dir);
  }
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Every entry of a tar archive, in archive order. */
async function readTar(data: Buffer): Promise<{ name: string; type: string; data: Buffer }[]> {
  const out: { name: string; type: string; data: Buffer }[] = [];
  const extract = tar.extract();
  extract.on('entry', (header, stream, next) => {
    collect(stream as unknown as Readable).then((d) => {
      out.push({ name: header.name, type: header.type ?? 'file', data: d });
      next();
    }, next);
  });
  await new Promise<void>((resolve, reject) => {
    extract.on('finish', resolve);
    extract.on('error', reject);
    extract.end(data);
  });
  return out;
}

/** The files of the OCI layout fixture (relative path -> bytes). */
async function ociFiles(): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  for (const e of await fsp.readdir(OCI_DIR, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const full = path.join(e.parentPath ?? e.path, e.name);
    files.set(path.relative(OCI_DIR, full), readFileSync(full));
  }
  return files;
}

/** Tars the OCI layout fixture, with some files replaced or added. */
async function ociTar(replace: Record<string, string | Buffer> = {}): Promise<Buffer> {
  const files = await ociFiles();
  for (const [k, v] of Object.entries(replace)) files.set(k, Buffer.from(v));
  return makeTar([...files].map(([name, data]): TarEntry => ({ name, data })));
}

function ociIndex(manifests: object[]): string {
  return JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests });
}

const busyboxManifestDesc = {
  mediaType: MediaType.ociManifest,
  digest: BUSYBOX_MANIFEST,
  size: 608,
  platform: { architecture: 'amd64', os: 'linux' },
};

const invalid = (re: RegExp) => (e: unknown) => {
  assert.ok(e instanceof BerthError && e.kind === 'InvalidArgument', String(e));
  assert.match((e as Error).message, re);
  return true;
};

function layerDir(deps: ArchiveDeps, name: string): string {
  return deps.snapshots.lowerDirs(deps.images.resolve(name).record.chainId!)[0];
}

test('load: the docker archive gives busybox:1.38.0-musl with a working layer; loading again changes nothing', () =>
  withDeps(async (deps) => {
    const r = await loadImages(deps, createReadStream(DOCKER_ARCHIVE));
    assert.deepEqual(r.loaded, ['busybox:1.38.0-musl']);
    assert.deepEqual(r.messages, ['Loaded image: busybox:1.38.0-musl']);
    const img = deps.images.resolve('busybox:1.38.0-musl');
    assert.equal(img.record.id, BUSYBOX_ID);
    assert.deepEqual(img.config.rootfs.diff_ids, [BUSYBOX_DIFF_ID]);
    assert.deepEqual(img.repoTags, ['docker.io/library/busybox:1.38.0-musl']);
    assert.equal(img.record.layers[0].diffId, BUSYBOX_DIFF_ID);
    assert.equal(img.record.layers[0].mediaType, MediaType.dockerLayer);
    assert.equal(img.record.chainId, BUSYBOX_DIFF_ID);
    assert.deepEqual(img.config.config?.Cmd, ['sh']);
    assert.ok(deps.snapshots.has(BUSYBOX_DIFF_ID));
    const busybox = path.join(layerDir(deps, 'busybox:1.38.0-musl'), 'bin', 'busybox');
    assert.ok((await fsp.stat(busybox)).mode & 0o111, 'bin/busybox is executable');
    assert.deepEqual(
      deps.seen.filter((e) => e.Action === 'load').map((e) => e.Actor.ID),
      [BUSYBOX_ID],
    );

    const again = await loadImages(deps, createReadStream(DOCKER_ARCHIVE));
    assert.deepEqual(again.messages, r.messages);
    assert.equal(deps.images.list({ all: true }).length, 1);
    assert.equal(deps.snapshots.list().length, 1);
  }));

test('load: the OCI layout as tar and a gzip-compressed docker archive give the same image', () =>
  withDeps(async (deps) => {
    const r = await loadImages(deps, Readable.from([await ociTar()]));
    assert.deepEqual(r.loaded, ['busybox:1.38.0-musl']);
    const img = deps.images.resolve('busybox:1.38.0-musl');
    assert.equal(img.record.id, BUSYBOX_ID);
    assert.equal(img.record.manifestDigest, BUSYBOX_MANIFEST);
    assert.equal(deps.images.resolve(`busybox@${BUSYBOX_MANIFEST}`).record.id, BUSYBOX_ID);
    assert.deepEqual(
      img.record.layers.map((l) => [l.digest, l.mediaType, l.diffId]),
      [[BUSYBOX_LAYER, MediaType.ociLayerGzip, BUSYBOX_DIFF_ID]],
    );
    assert.ok(existsSync(path.join(layerDir(deps, 'busybox:1.38.0-musl'), 'bin', 'busybox')));

    await withDeps(async (fresh) => {
      const gz = gzipSync(readFileSync(DOCKER_ARCHIVE));
      const g = await loadImages(fresh, Readable.from([gz]));
      assert.deepEqual(g.loaded, ['busybox:1.38.0-musl']);
      assert.equal(fresh.images.resolve('busybox:1.38.0-musl').record.id, BUSYBOX_ID);
      assert.ok(existsSync(path.join(layerDir(fresh, 'busybox:1.38.0-musl'), 'bin', 'busybox')));
    });
  }));

test('load: OCI image names come from the annotations; a nested index is resolved for the platform', () =>
  withDeps(async (deps) => {
    // A bare tag with no image name: loaded untagged.
    const bare = ociIndex([
      { ...busyboxManifestDesc, annotations: { 'org.opencontainers.image.ref.name': 'latest' } },
    ]);
    const r1 = await loadImages(deps, Readable.from([await ociTar({ 'index.json': bare })]));
    assert.deepEqual(r1.loaded, [BUSYBOX_ID]);
    assert.deepEqual(r1.messages, [`Loaded image ID: ${BUSYBOX_ID}`]);
    assert.deepEqual(deps.images.resolve(BUSYBOX_ID).repoTags, []);

    // A bare tag completes containerd's image name.
    const named = ociIndex([
      {
        ...busyboxManifestDesc,
        annotations: {
          'org.opencontainers.image.ref.name': 'v1',
          'io.containerd.image.name': 'registry.example:5000/team/bb',
        },
      },
    ]);
    const r2 = await loadImages(deps, Readable.from([await ociTar({ 'index.json': named })]));
    assert.deepEqual(r2.loaded, ['registry.example:5000/team/bb:v1']);

    // ref.name alone, as a full reference.
    const full = ociIndex([
      { ...busyboxManifestDesc, annotations: { 'org.opencontainers.image.ref.name': 'example/bb:full' } },
    ]);
    const r3 = await loadImages(deps, Readable.from([await ociTar({ 'index.json': full })]));
    assert.deepEqual(r3.loaded, ['example/bb:full']);

    // index.json -> a multi-platform index whose host entry comes after another platform's.
    const nested = Buffer.from(
      ociIndex([
        {
          ...busyboxManifestDesc,
          digest: sha256Digest('elsewhere'),
          platform: { architecture: 's390x', os: 'linux' },
        },
        busyboxManifestDesc,
      ]),
    );
    const nestedDigest = sha256Digest(nested);
    const top = ociIndex([
      {
        mediaType: MediaType.ociIndex,
        digest: nestedDigest,
        size: nested.length,
        annotations: { 'io.containerd.image.name': 'docker.io/library/nested:1' },
      },
    ]);
    const archive = await ociTar({ 'index.json': top, [`blobs/sha256/${nestedDigest.slice(7)}`]: nested });
    const r4 = await loadImages(deps, Readable.from([archive]), {
      platform: { os: 'linux', architecture: 'amd64' },
    });
    assert.deepEqual(r4.loaded, ['nested:1']);
    assert.equal(deps.images.resolve('nested:1').record.id, BUSYBOX_ID);
    await assert.rejects(
      loadImages(deps, Readable.from([archive]), { platform: { os: 'linux', architecture: 'riscv64' } }),
      invalid(/no image for platform linux\/riscv64/),
    );
    assert.equal(deps.images.list({ all: true }).length, 1);
  }));

test('load: a tag taken from another image is reported as Docker reports it', () =>
  withDeps(async (deps) => {
    const other = await importImage(deps, createReadStream(ALPINE), { tag: 'busybox:1.38.0-musl' });
    const r = await loadImages(deps, createReadStream(DOCKER_ARCHIVE));
    assert.deepEqual(r.messages, [
      `The image busybox:1.38.0-musl already exists, renaming the old one with ID ${other} to empty string`,
      'Loaded image: busybox:1.38.0-musl',
    ]);
    assert.equal(deps.images.resolve('busybox:1.38.0-musl').record.id, BUSYBOX_ID);
    assert.deepEqual(deps.images.resolve(other).repoTags, []);
  }));

test('save: Docker 25+ layout, uncompressed layers named by diff id; a fresh store loads it back; skopeo reads it', (t) =>
  withDeps(async (deps, dir) => {
    // Loaded from the OCI layout, the layer blob is gzip: save must write it uncompressed.
    await loadImages(deps, Readable.from([await ociTar()]));
    await deps.images.tag('busybox:1.38.0-musl', 'extra:tag');
    const saved = await collect(
      await saveImages(deps, ['busybox:1.38.0-musl', 'extra:tag', 'busybox:1.38.0-musl']),
    );
    const again = await collect(await saveImages(deps, ['busybox:1.38.0-musl', 'extra:tag']));
    assert.ok(saved.equals(again), 'the same images give the same bytes');

    const entries = await readTar(saved);
    const names = entries.map((e) => e.name);
    assert.deepEqual(names, [...names].sort(), 'entries are in name order');
    const file = (n: string) => entries.find((e) => e.name === n)!.data;
    const blobs = entries.filter((e) => e.name.startsWith('blobs/sha256/') && e.type === 'file');
    for (const b of blobs) assert.equal(sha256Digest(b.data), `sha256:${b.name.slice(13)}`, b.name);
    assert.deepEqual(
      names.filter((n) => !n.startsWith('blobs/')),
      ['index.json', 'manifest.json', 'oci-layout', 'repositories'],
    );

    const manifest = JSON.parse(file('manifest.json').toString());
    assert.deepEqual(manifest, [
      {
        Config: `blobs/sha256/${BUSYBOX_ID.slice(7)}`,
        RepoTags: ['busybox:1.38.0-musl', 'extra:tag'],
        Layers: [`blobs/sha256/${BUSYBOX_DIFF_ID.slice(7)}`],
      },
    ]);
    const layer = file(manifest[0].Layers[0]);
    assert.equal(layer.readUInt16BE(0) === 0x1f8b, false, 'the layer is not gzip');
    assert.equal(sha256Digest(layer), BUSYBOX_DIFF_ID);
    assert.deepEqual(JSON.parse(file('repositories').toString()), {
      busybox: { '1.38.0-musl': BUSYBOX_DIFF_ID.slice(7) },
      extra: { tag: BUSYBOX_DIFF_ID.slice(7) },
    });
    assert.deepEqual(JSON.parse(file('oci-layout').toString()), { imageLayoutVersion: '1.0.0' });
    const index = JSON.parse(file('index.json').toString());
    assert.deepEqual(
      index.manifests.map((m: { annotations: Record<string, string> }) => m.annotations),
      [
        {
          'io.containerd.image.name': 'docker.io/library/busybox:1.38.0-musl',
          'org.opencontainers.image.ref.name': '1.38.0-musl',
        },
        {
          'io.containerd.image.name': 'docker.io/library/extra:tag',
          'org.opencontainers.image.ref.name': 'tag',
        },
      ],
    );
    const ociManifest = JSON.parse(file(`blobs/sha256/${index.manifests[0].digest.slice(7)}`).toString());
    assert.equal(ociManifest.config.digest, BUSYBOX_ID);
    assert.deepEqual(ociManifest.layers, [
      { mediaType: MediaType.ociLayer, digest: BUSYBOX_DIFF_ID, size: layer.length },
    ]);

    await withDeps(async (fresh) => {
      const r = await loadImages(fresh, Readable.from([saved]));
      assert.deepEqual(r.loaded, ['busybox:1.38.0-musl', 'extra:tag']);
      assert.equal(fresh.images.resolve('extra:tag').record.id, BUSYBOX_ID);
      assert.ok(existsSync(path.join(layerDir(fresh, 'extra:tag'), 'bin', 'busybox')));
      // The OCI view alone (no manifest.json) loads too.
      const ociOnly = await makeTar(
        entries
          .filter((e) => e.type === 'file' && e.name !== 'manifest.json')
          .map((e) => ({ name: e.name, data: e.data })),
      );
      await fresh.images.remove('extra:tag');
      const o = await loadImages(fresh, Readable.from([ociOnly]));
      assert.deepEqual(o.loaded, ['busybox:1.38.0-musl', 'extra:tag']);
    });
    assert.deepEqual(
      deps.seen.filter((e) => e.Action === 'save').map((e) => e.Actor.ID),
      [BUSYBOX_ID, BUSYBOX_ID],
    );

    if (!existsSync(SKOPEO)) {
      t.skip(`${SKOPEO} is not installed`);
      return;
    }
    const out = path.join(dir, 'saved.tar');
    await fsp.writeFile(out, saved);
    const info = JSON.parse(execFileSync(SKOPEO, ['inspect', `docker-archive:${out}`]).toString());
    assert.equal(info.Os, 'linux');
    assert.deepEqual(info.Layers, [BUSYBOX_DIFF_ID]);
    const tagged = JSON.parse(
      execFileSync(SKOPEO, ['inspect', '--config', `docker-archive:${out}:extra:tag`]).toString(),
    );
    assert.deepEqual(tagged.rootfs.diff_ids, [BUSYBOX_DIFF_ID]);
    // A full copy reads and checks every blob.
    execFileSync(SKOPEO, [
      'copy',
      '-q',
      `docker-archive:${out}:busybox:1.38.0-musl`,
      `oci:${path.join(dir, 'copy')}:x`,
    ]);
    const ociInfo = JSON.parse(execFileSync(SKOPEO, ['inspect', `oci-archive:${out}:tag`]).toString());
    assert.equal(ociInfo.Digest, index.manifests[1].digest);
  }));

test('save: a repository name selects all its tags, an id selects the image unnamed; unknown names fail first', () =>
  withDeps(async (deps) => {
    await loadImages(deps, createReadStream(DOCKER_ARCHIVE));
    await deps.images.tag('busybox:1.38.0-musl', 'busybox:other');
    await deps.images.tag('busybox:1.38.0-musl', 'unrelated:1');
    const byRepo = await readTar(await collect(await saveImages(deps, ['busybox'])));
    const m1 = JSON.parse(byRepo.find((e) => e.name === 'manifest.json')!.data.toString());
    assert.deepEqual(m1[0].RepoTags, ['busybox:1.38.0-musl', 'busybox:other']);

    const byId = await readTar(await collect(await saveImages(deps, [BUSYBOX_ID.slice(7, 19)])));
    const m2 = JSON.parse(byId.find((e) => e.name === 'manifest.json')!.data.toString());
    assert.equal(m2[0].RepoTags, null);
    assert.ok(!byId.some((e) => e.name === 'repositories'));

    await assert.rejects(saveImages(deps, ['busybox:1.38.0-musl', 'nosuch:1']), (e: unknown) => {
      assert.ok(e instanceof BerthError && e.kind === 'NotFound');
      assert.equal(e.message, 'No such image: nosuch:1');
      return true;
    });
  }));

test('import: the Alpine rootfs with --change and -m', () =>
  withDeps(async (deps) => {
    const before = Date.now();
    const id = await importImage(deps, createReadStream(ALPINE), {
      changes: [
        'CMD ["/bin/sh", "-l"]',
        'ENTRYPOINT echo hi',
        'ENV A=1 B="two words"',
        'ENV LEGACY some value',
        'WORKDIR /w',
        'EXPOSE 80 53/udp',
        'LABEL a=b "c d"=e',
        'USER nobody',
        'VOLUME ["/data", "/cache"]',
        'STOPSIGNAL SIGTERM',
        'ONBUILD RUN true',
      ],
      message: 'my alpine',
      tag: 'alp:1',
    });
    const img = deps.images.resolve('alp:1');
    assert.equal(img.record.id, id);
    const c = img.config.config!;
    assert.deepEqual(c.Cmd, ['/bin/sh', '-l']);
    assert.deepEqual(c.Entrypoint, ['/bin/sh', '-c', 'echo hi']);
    assert.deepEqual(c.Env, ['A=1', 'B=two words', 'LEGACY=some value']);
    assert.equal(c.WorkingDir, '/w');
    assert.deepEqual(Object.keys(c.ExposedPorts!).sort(), ['53/udp', '80/tcp']);
    assert.deepEqual(c.Labels, { a: 'b', 'c d': 'e' });
    assert.equal(c.User, 'nobody');
    assert.deepEqual(Object.keys(c.Volumes!).sort(), ['/cache', '/data']);
    assert.equal(c.StopSignal, 'SIGTERM');
    assert.deepEqual(c.OnBuild, ['RUN true']);

    const diffId = sha256Digest(gunzipSync(readFileSync(ALPINE)));
    assert.deepEqual(img.config.rootfs.diff_ids, [diffId]);
    assert.equal(img.config.os, 'linux');
    assert.equal(img.config.architecture, process.arch === 'x64' ? 'amd64' : process.arch);
    assert.ok(Date.parse(img.config.created!) >= before - 1000);
    assert.equal(img.config.history?.length, 1);
    assert.equal(img.config.history?.[0].comment, 'my alpine');
    assert.equal(img.config.comment, 'my alpine');
    const blob = readFileSync(ALPINE);
    assert.deepEqual(
      img.record.layers.map((l) => [l.mediaType, l.digest, l.size]),
      [[MediaType.dockerLayerGzip, sha256Digest(blob), blob.length]],
    );
    assert.equal(
      readFileSync(path.join(layerDir(deps, 'alp:1'), 'etc', 'alpine-release'), 'utf8'),
      '3.20.3\n',
    );
    assert.deepEqual(
      deps.seen.filter((e) => e.Action === 'import').map((e) => e.Actor.ID),
      [id],
    );
  }));

test('import: a plain tarball gets the default comment; bad changes and non-tars are refused', () =>
  withDeps(async (deps) => {
    const plain = await makeTar([{ name: 'hello.txt', data: 'hi\n' }]);
    const id = await importImage(deps, Readable.from([plain]), {
      platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
    });
    const img = deps.images.resolve(id);
    assert.equal(img.config.history?.[0].comment, 'Imported from -');
    assert.equal(img.config.comment, 'Imported from -');
    assert.equal(img.config.architecture, 'arm64');
    assert.equal(img.config.variant, 'v8');
    assert.equal(img.record.layers[0].mediaType, MediaType.dockerLayer);
    assert.equal(img.record.layers[0].digest, sha256Digest(plain));
    assert.deepEqual(img.repoTags, []);

    const images = deps.images.list({ all: true }).length;
    const layers = deps.snapshots.list().length;
    await assert.rejects(
      importImage(deps, createReadStream(ALPINE), { changes: ['FROB x'] }),
      invalid(/^FROB is not a valid change command$/),
    );
    const upload = createReadStream(ALPINE);
    await assert.rejects(
      importImage(deps, upload, { changes: ['RUN echo'] }),
      invalid(/^RUN is not a valid change command$/),
    );
    if (!upload.readableEnded) await once(upload, 'end');
    await assert.rejects(
      importImage(deps, Readable.from([Buffer.from('not a tarball at all\n'.repeat(100))])),
      invalid(/import/),
    );
    await assert.rejects(importImage(deps, Readable.from([Buffer.alloc(0)])), invalid(/empty/));
    await assert.rejects(
      importImage(deps, Readable.from([plain]), { tag: 'Bad/Name' }),
      (e: unknown) => e instanceof BerthError && e.kind === 'InvalidArgument',
    );
    assert.equal(deps.images.list({ all: true }).length, images);
    assert.equal(deps.snapshots.list().length, layers);
  }));

function configJson(diffIds: Digest[]): string {
  return JSON.stringify({
    architecture: 'amd64',
    os: 'linux',
    rootfs: { type: 'layers', diff_ids: diffIds },
  });
}

test('load: bad archives are refused and leave no image, tag or layer behind', () =>
  withDeps(async (deps) => {
    const fixture = readFileSync(DOCKER_ARCHIVE);
    const layerTar = await makeTar([{ name: 'f', data: 'real' }]);
    const cfg = configJson([sha256Digest(layerTar)]);
    const weirdManifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.ociManifest,
        config: { mediaType: MediaType.ociConfig, digest: sha256Digest(cfg), size: cfg.length },
        layers: [{ mediaType: 'application/x-weird', digest: sha256Digest(layerTar), size: layerTar.length }],
      }),
    );
    const blob = (data: string | Buffer): TarEntry => ({
      name: `blobs/sha256/${sha256Digest(data).slice(7)}`,
      data,
    });
    const indexOf = (m: Buffer) =>
      JSON.stringify({
        schemaVersion: 2,
        manifests: [{ mediaType: MediaType.ociManifest, digest: sha256Digest(m), size: m.length }],
      });
    const cases: [string, Buffer, RegExp][] = [
      ['truncated', fixture.subarray(0, 400_000), /^invalid archive: archive is truncated/],
      ['truncated in a header', fixture.subarray(0, 1000), /^invalid archive: archive is truncated/],
      ['truncated gzip', gzipSync(fixture).subarray(0, 300_000), /^invalid archive: archive is truncated/],
      ['not a tar', Buffer.from('hello world, definitely not a tar archive '.repeat(30)), /^invalid archive/],
      ['empty', Buffer.alloc(0), /^invalid archive: empty/],
      [
        'no manifest',
        await makeTar([{ name: 'foo.txt', data: 'x' }]),
        /^invalid archive: manifest.json not found$/,
      ],
      ['bad json', await makeTar([{ name: 'manifest.json', data: '{not json' }]), /invalid manifest.json/],
      ['manifest.json not a list', await makeTar([{ name: 'manifest.json', data: '{}' }]), /must be a list/],
      ['zero images', await makeTar([{ name: 'manifest.json', data: '[]' }]), /lists no images/],
      [
        'bad config json',
        await makeTar([
          { name: 'c.json', data: '{"rootfs": ' },
          { name: 'manifest.json', data: JSON.stringify([{ Config: 'c.json', Layers: [] }]) },
        ]),
        /invalid image config/,
      ],
      [
        'missing config',
        await makeTar([{ name: 'manifest.json', data: JSON.stringify([{ Config: 'c.json', Layers: [] }]) }]),
        /config "c.json" not found/,
      ],
      [
        'missing layer',
        await makeTar([
          { name: 'c.json', data: configJson([sha256Digest('x')]) },
          {
            name: 'manifest.json',
            data: JSON.stringify([{ Config: 'c.json', RepoTags: ['x:1'], Layers: ['nope/layer.tar'] }]),
          },
        ]),
        /^invalid archive: layer "nope\/layer.tar" not found$/,
      ],
      [
        'layer not matching its diff id',
        await makeTar([
          { name: 'l/layer.tar', data: layerTar },
          { name: 'c.json', data: configJson([sha256Digest('other')]) },
          {
            name: 'manifest.json',
            data: JSON.stringify([{ Config: 'c.json', RepoTags: ['x:1'], Layers: ['l/layer.tar'] }]),
          },
        ]),
        /diff id mismatch/,
      ],
      [
        'blob whose content does not match its name',
        await makeTar([{ name: `blobs/sha256/${'b'.repeat(64)}`, data: 'not that' }]),
        /digest mismatch/,
      ],
      [
        'digest in RepoTags',
        await makeTar([
          { name: 'c.json', data: configJson([]) },
          {
            name: 'manifest.json',
            data: JSON.stringify([{ Config: 'c.json', RepoTags: [`x@${BUSYBOX_ID}`], Layers: [] }]),
          },
        ]),
        /is not a tag/,
      ],
      [
        'bad reference in RepoTags',
        await makeTar([
          { name: 'c.json', data: configJson([]) },
          {
            name: 'manifest.json',
            data: JSON.stringify([{ Config: 'c.json', RepoTags: ['BAD/Ref'], Layers: [] }]),
          },
        ]),
        /manifest.json: .*BAD\/Ref/,
      ],
      ['entry climbing out', await makeTar([{ name: '../evil', data: 'x' }]), /unsafe path "..\/evil"/],
      ['absolute entry', await makeTar([{ name: '/etc/evil', data: 'x' }]), /unsafe path "\/etc\/evil"/],
      [
        'link climbing out',
        await makeTar([{ name: 'a/layer.tar', type: 'symlink', linkname: '../../etc/passwd' }]),
        /unsafe link/,
      ],
      [
        'config path climbing out',
        await makeTar([
          { name: 'manifest.json', data: JSON.stringify([{ Config: '../c.json', Layers: [] }]) },
        ]),
        /unsafe path/,
      ],
      [
        'unknown layer media type',
        await makeTar([
          blob(layerTar),
          blob(cfg),
          blob(weirdManifest),
          { name: 'index.json', data: indexOf(weirdManifest) },
        ]),
        /unsupported layer media type "application\/x-weird"/,
      ],
      ['bad index.json', await makeTar([{ name: 'index.json', data: '[' }]), /invalid image index/],
      [
        'empty index',
        await makeTar([{ name: 'index.json', data: ociIndex([]) }]),
        /index.json lists no images/,
      ],
      [
        'index naming a missing manifest',
        await ociTar({ 'index.json': ociIndex([{ ...busyboxManifestDesc, digest: sha256Digest('gone') }]) }),
        /manifest sha256:[a-f0-9]+ not found/,
      ],
      [
        'OCI layer missing',
        await makeTar([
          blob(cfg),
          blob(weirdManifest.toString().replace('application/x-weird', MediaType.ociLayer)),
          {
            name: 'index.json',
            data: indexOf(
              Buffer.from(weirdManifest.toString().replace('application/x-weird', MediaType.ociLayer)),
            ),
          },
        ]),
        /layer sha256:[a-f0-9]+ not found/,
      ],
    ];
    for (const [what, data, re] of cases)
      await assert.rejects(loadImages(deps, Readable.from([data])), invalid(re), what);
    // A refused upload is still read to its end, so an HTTP client gets the error rather than a reset.
    const early = Readable.from([
      await makeTar([{ name: '../evil', data: 'x' }]),
      ...Array.from({ length: 64 }, () => Buffer.alloc(64 * 1024)),
    ]);
    await assert.rejects(loadImages(deps, early), invalid(/unsafe path/));
    if (!early.readableEnded) await once(early, 'end');
    assert.equal(deps.images.list({ all: true }).length, 0);
    assert.deepEqual(deps.snapshots.list(), [], 'no layer was left unpacked');
    assert.ok(!deps.seen.some((e) => e.Type === 'image'));
  }));

test('load: when a later image of the archive is bad, none is registered or tagged', () =>
  withDeps(async (deps) => {
    const good = await makeTar([{ name: 'f', data: 'good' }]);
    const bad = await makeTar([{ name: 'g', data: 'bad' }]);
    const archive = await makeTar([
      { name: 'good.tar', data: good },
      { name: 'bad.tar', data: bad },
      { name: 'good.json', data: configJson([sha256Digest(good)]) },
      { name: 'bad.json', data: configJson([sha256Digest('something else')]) },
      {
        name: 'manifest.json',
        data: JSON.stringify([
          { Config: 'good.json', RepoTags: ['good:1'], Layers: ['good.tar'] },
          { Config: 'bad.json', RepoTags: ['bad:1'], Layers: ['bad.tar'] },
        ]),
      },
    ]);
    await assert.rejects(loadImages(deps, Readable.from([archive])), invalid(/diff id mismatch/));
    assert.equal(deps.images.list({ all: true }).length, 0);
    assert.equal(deps.images.tryResolve('good:1'), undefined);
    // Whole layers may remain for the garbage collector; a half-unpacked one never does.
    for (const l of deps.snapshots.list()) assert.equal(l.diffId, sha256Digest(good));

    // Both good: both load, the shared layer is unpacked once.
    const twice = await makeTar([
      { name: 'a/layer.tar', data: good },
      { name: 'b/layer.tar', type: 'symlink', linkname: '../a/layer.tar' },
      { name: 'one.json', data: configJson([sha256Digest(good)]) },
      {
        name: 'two.json',
        data: JSON.stringify({ ...JSON.parse(configJson([sha256Digest(good)])), author: 'me' }),
      },
      {
        name: 'manifest.json',
        data: JSON.stringify([
          { Config: 'one.json', RepoTags: ['one:1'], Layers: ['a/layer.tar'] },
          { Config: 'two.json', RepoTags: null, Layers: ['b/layer.tar'] },
        ]),
      },
    ]);
    const r = await loadImages(deps, Readable.from([twice]));
    assert.equal(r.loaded[0], 'one:1');
    assert.match(r.loaded[1], /^sha256:[a-f0-9]{64}$/);
    assert.equal(deps.images.list({ all: true }).length, 2);
    assert.equal(deps.snapshots.list().length, 1);
    const hash = createHash('sha256')
      .update(readFileSync(path.join(layerDir(deps, 'one:1'), 'f')))
      .digest('hex');
    assert.equal(hash, createHash('sha256').update('good').digest('hex'));
  }));

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createReadStream, existsSync, mkdtempSync, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { sha256Digest } from '../../src/common/digest.js';
import { BerthError } from '../../src/common/errors.js';
import { FileContentStore } from '../../src/engine/content/store.js';
import { type ArchiveDeps, importImage, loadImages, saveImages } from '../../src/engine/images/archive.js';
import { ImageStore } from '../../src/engine/images/store.js';
import { OverlaySnapshotter } from '../../src/engine/snapshots/overlay.js';
import { cleanupDir, FIXTURES } from '../helpers/daemon.js';
import { makeTar } from '../helpers/tar.js';

const BUSYBOX_ID = 'sha256:654fc8fd836e35f4a64586bddf8f59b9029b48cf80f520834c6c98ca8ab5def9';

async function withDeps(fn: (deps: ArchiveDeps, dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-archive-'));
  try {
    const content = new FileContentStore(path.join(dir, 'content'));
    const snapshots = new OverlaySnapshotter(path.join(dir, 'snapshots'));
    await content.init();
    await snapshots.init();
    const images = new ImageStore(path.join(dir, 'image'), content, snapshots);
    await images.init();
    await fn({ content, snapshots, images }, dir);
  } finally {
    await cleanupDir(dir);
  }
}

const invalid = (re: RegExp) => (e: unknown) => {
  assert.ok(e instanceof BerthError && e.kind === 'InvalidArgument', String(e));
  assert.match((e as Error).message, re);
  return true;
};

test('load: docker archive and OCI layout of the same image give the same id', () =>
  withDeps(async (deps, dir) => {
    const r = await loadImages(
      deps,
      createReadStream(path.join(FIXTURES, 'busybox-1.38.0-musl-docker-archive.tar')),
    );
    assert.deepEqual(r.loaded, ['busybox:1.38.0-musl']);
    const img = deps.images.resolve('busybox:1.38.0-musl');
    assert.equal(img.record.id, BUSYBOX_ID);
    assert.ok(existsSync(path.join(deps.snapshots.lowerDirs(img.record.chainId!)[0], 'bin', 'busybox')));
    const again = await loadImages(
      deps,
      createReadStream(path.join(FIXTURES, 'busybox-1.38.0-musl-docker-archive.tar')),
    );
    assert.deepEqual(again.loaded, r.loaded);
    assert.equal(deps.images.list().length, 1);
    const ociTar = path.join(dir, 'oci.tar');
    execFileSync('tar', ['-cf', ociTar, '-C', path.join(FIXTURES, 'busybox-1.38.0-musl-oci'), '.']);
    const oci = await loadImages(deps, createReadStream(ociTar));
    assert.equal(
      deps.images.resolve(oci.loaded[0].startsWith('sha256:') ? oci.loaded[0] : oci.loaded[0]).record.id,
      BUSYBOX_ID,
    );
    assert.equal(
      deps.images.resolve('busybox@sha256:a34ce92094b7b100a98fbd21411a92825f6827b1bc5f6918c253516c90556998')
        .record.id,
      BUSYBOX_ID,
    );
  }));

test('save then load into a fresh store round-trips; skopeo reads the archive', () =>
  withDeps(async (deps, dir) => {
    await loadImages(deps, createReadStream(path.join(FIXTURES, 'busybox-1.38.0-musl-docker-archive.tar')));
    await deps.images.tag('busybox:1.38.0-musl', 'extra:tag');
    const out = path.join(dir, 'saved.tar');
    const chunks: Buffer[] = [];
    for await (const c of await saveImages(deps, ['busybox:1.38.0-musl', 'extra:tag']))
      chunks.push(c as Buffer);
    const saved = Buffer.concat(chunks);
    require_write(out, saved);
    const list = execFileSync('tar', ['-tf', out]).toString().split('\n');
    for (const f of ['manifest.json', 'index.json', 'oci-layout', 'repositories'])
      assert.ok(list.includes(f), f);
    const manifest = JSON.parse(execFileSync('tar', ['-xOf', out, 'manifest.json']).toString());
    assert.deepEqual(manifest[0].RepoTags.sort(), ['busybox:1.38.0-musl', 'extra:tag']);
    const layer = execFileSync('tar', ['-xOf', out, manifest[0].Layers[0]], { maxBuffer: 1 << 26 });
    assert.equal(sha256Digest(layer), deps.images.resolve('extra:tag').config.rootfs.diff_ids[0]);
    await withDeps(async (fresh) => {
      const r = await loadImages(fresh, Readable.from([saved]));
      assert.deepEqual(r.loaded.sort(), ['busybox:1.38.0-musl', 'extra:tag']);
      assert.equal(fresh.images.resolve('extra:tag').record.id, BUSYBOX_ID);
    });
    if (existsSync('/usr/bin/skopeo')) {
      const info = JSON.parse(
        execFileSync('skopeo', ['inspect', `docker-archive:${out}:busybox:1.38.0-musl`]).toString(),
      );
      assert.equal(info.Os, 'linux');
    }
    await assert.rejects(
      saveImages(deps, ['nosuch']),
      (e: unknown) => e instanceof BerthError && e.kind === 'NotFound',
    );
  }));

function require_write(p: string, data: Buffer): void {
  execFileSync('tee', [p], { input: data, stdio: ['pipe', 'ignore', 'inherit'] });
}

test('import a rootfs with changes', () =>
  withDeps(async (deps) => {
    const id = await importImage(
      deps,
      createReadStream(path.join(FIXTURES, 'alpine-minirootfs-3.20.3-x86_64.tar.gz')),
      {
        changes: [
          'CMD ["/bin/sh"]',
          'ENV A=1',
          'EXPOSE 80 53/udp',
          'LABEL a=b "c d"=e',
          'USER nobody',
          'VOLUME /data',
          'WORKDIR /w',
          'ENTRYPOINT echo hi',
        ],
        message: 'msg',
        tag: 'alp:1',
      },
    );
    const img = deps.images.resolve('alp:1');
    assert.equal(img.record.id, id);
    const c = img.config.config!;
    assert.deepEqual(c.Cmd, ['/bin/sh']);
    assert.deepEqual(c.Entrypoint, ['/bin/sh', '-c', 'echo hi']);
    assert.deepEqual(c.Env, ['A=1']);
    assert.deepEqual(Object.keys(c.ExposedPorts!).sort(), ['53/udp', '80/tcp']);
    assert.deepEqual(c.Labels, { a: 'b', 'c d': 'e' });
    assert.equal(c.User, 'nobody');
    assert.deepEqual(Object.keys(c.Volumes!), ['/data']);
    assert.equal(img.config.history?.[0].comment, 'msg');
    assert.ok(
      existsSync(path.join(deps.snapshots.lowerDirs(img.record.chainId!)[0], 'etc', 'alpine-release')),
    );
  }));

test('bad archives are refused and add nothing', () =>
  withDeps(async (deps) => {
    const fixture = readFileSync(path.join(FIXTURES, 'busybox-1.38.0-musl-docker-archive.tar'));
    const cases: [string, Buffer, RegExp][] = [
      ['truncated', fixture.subarray(0, 400_000), /truncated|manifest.json not found|invalid archive/],
      ['no manifest', await makeTar([{ name: 'foo.txt', data: 'x' }]), /manifest.json not found/],
      ['bad json', await makeTar([{ name: 'manifest.json', data: '{not json' }]), /invalid manifest.json/],
      [
        'missing layer',
        await makeTar([
          {
            name: 'c.json',
            data: JSON.stringify({
              architecture: 'amd64',
              os: 'linux',
              rootfs: { type: 'layers', diff_ids: [sha256Digest('x')] },
            }),
          },
          {
            name: 'manifest.json',
            data: JSON.stringify([{ Config: 'c.json', RepoTags: ['x:1'], Layers: ['nope/layer.tar'] }]),
          },
        ]),
        /layer "nope\/layer.tar" not found/,
      ],
      [
        'layer not matching its diff id',
        await makeTar([
          { name: 'l.tar', data: await makeTar([{ name: 'f', data: 'real' }]) },
          {
            name: 'c.json',
            data: JSON.stringify({
              architecture: 'amd64',
              os: 'linux',
              rootfs: { type: 'layers', diff_ids: [sha256Digest('other')] },
            }),
          },
          {
            name: 'manifest.json',
            data: JSON.stringify([{ Config: 'c.json', RepoTags: ['x:1'], Layers: ['l.tar'] }]),
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
        'bad reference in RepoTags',
        await makeTar([
          {
            name: 'manifest.json',
            data: JSON.stringify([{ Config: 'c', RepoTags: ['BAD/Ref'], Layers: [] }]),
          },
        ]),
        /config "c" not found|invalid reference/,
      ],
      ['not a tar', Buffer.from('hello world, definitely not a tar archive '.repeat(30)), /invalid archive/],
    ];
    for (const [what, data, re] of cases)
      await assert.rejects(loadImages(deps, Readable.from([data])), invalid(re), what);
    const mtIndex = JSON.stringify({
      schemaVersion: 2,
      manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: '', size: 0 }],
    });
    void mtIndex;
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: {
          mediaType: 'application/vnd.oci.image.config.v1+json',
          digest: sha256Digest('{}'),
          size: 2,
        },
        layers: [{ mediaType: 'application/x-weird', digest: sha256Digest('x'), size: 1 }],
      }),
    );
    const weird = await makeTar([
      { name: 'oci-layout', data: '{"imageLayoutVersion":"1.0.0"}' },
      { name: `blobs/sha256/${sha256Digest(manifest).slice(7)}`, data: manifest },
      {
        name: 'index.json',
        data: JSON.stringify({
          schemaVersion: 2,
          manifests: [
            {
              mediaType: 'application/vnd.oci.image.manifest.v1+json',
              digest: sha256Digest(manifest),
              size: manifest.length,
            },
          ],
        }),
      },
    ]);
    await assert.rejects(loadImages(deps, Readable.from([weird])), invalid(/unsupported layer media type/));
    await assert.rejects(
      importImage(deps, Readable.from([Buffer.from('x'.repeat(2000))]), { changes: ['BOGUS x'] }),
      invalid(/./),
    );
    await assert.rejects(
      importImage(deps, createReadStream(path.join(FIXTURES, 'alpine-minirootfs-3.20.3-x86_64.tar.gz')), {
        changes: ['FROB x'],
      }),
      invalid(/FROB is not a valid change command/),
    );
    assert.equal(deps.images.list({ all: true }).length, 0);
  }));

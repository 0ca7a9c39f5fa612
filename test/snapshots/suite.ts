/**
 * The behaviour every Snapshotter must have (a shared suite, containerd style).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, promises as fsp, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { sha256Digest } from '../../src/common/digest.js';
import { BerthError } from '../../src/common/errors.js';
import { native } from '../../src/common/native.js';
import { chainIdOf, type Snapshotter } from '../../src/engine/snapshots/snapshots.js';
import { cleanupDir } from '../helpers/daemon.js';
import { makeTar, type TarEntry } from '../helpers/tar.js';

type Factory = (root: string) => Promise<Snapshotter>;

async function withSnapshotter(
  factory: Factory,
  fn: (s: Snapshotter, root: string) => Promise<void>,
): Promise<void> {
  const root = mkdtempSync(path.join(os.tmpdir(), 'berth-snap-'));
  try {
    await fn(await factory(path.join(root, 'store')), root);
  } finally {
    await cleanupDir(root);
  }
}

const isInvalid = (re: RegExp) => (e: unknown) => {
  assert.ok(e instanceof BerthError, String(e));
  assert.equal(e.kind, 'InvalidArgument');
  assert.match(e.message, re);
  return true;
};

export function snapshotterSuite(name: string, factory: Factory): void {
  test(`${name}: applies plain and gzip layers with the right diff id`, () =>
    withSnapshotter(factory, async (s) => {
      const t = await makeTar([
        { name: 'etc/', type: 'directory' },
        { name: 'etc/hostname', data: 'box\n' },
        { name: 'bin/sh', type: 'symlink', linkname: '/bin/busybox' },
        { name: 'bin/busybox', data: 'ELF', mode: 0o4755 },
        { name: 'bin/ash', type: 'link', linkname: 'bin/busybox' },
        { name: 'run/fifo', type: 'fifo' },
      ]);
      const info = await s.apply(null, Readable.from([t]));
      assert.equal(info.diffId, sha256Digest(t));
      assert.equal(info.chainId, info.diffId);
      const dir = s.lowerDirs(info.chainId)[0];
      assert.equal(readFileSync(path.join(dir, 'etc/hostname'), 'utf8'), 'box\n');
      assert.equal(await fsp.readlink(path.join(dir, 'bin/sh')), '/bin/busybox');
      const st = await fsp.stat(path.join(dir, 'bin/busybox'));
      assert.equal(st.mode & 0o7777, 0o4755);
      assert.equal(st.nlink, 2);
      assert.ok((await fsp.lstat(path.join(dir, 'run/fifo'))).isFIFO());
      const gz = await s.apply(null, Readable.from([gzipSync(t)]));
      assert.equal(gz.chainId, info.chainId, 'same content, same chain: not unpacked twice');
      assert.equal(s.list().length, 1);
    }));

  test(`${name}: zstd layers`, { skip: !existsSync('/usr/bin/zstd') && 'zstd not installed' }, () =>
    withSnapshotter(factory, async (s, root) => {
      const t = await makeTar([{ name: 'z.txt', data: 'zstd!' }]);
      const zst = execFileSync('zstd', ['-q', '-c'], { input: t });
      const info = await s.apply(null, Readable.from([zst]));
      assert.equal(info.diffId, sha256Digest(t));
      assert.equal(readFileSync(path.join(s.lowerDirs(info.chainId)[0], 'z.txt'), 'utf8'), 'zstd!');
      void root;
    }),
  );

  test(`${name}: whiteouts and opaque dirs give the merged view overlayfs should`, () =>
    withSnapshotter(factory, async (s, root) => {
      const l1 = await makeTar([
        { name: 'a.txt', data: 'a' },
        { name: 'keep.txt', data: 'k' },
        { name: 'd/', type: 'directory' },
        { name: 'd/old.txt', data: 'old' },
      ]);
      const l2 = await makeTar([
        { name: '.wh.a.txt' },
        { name: 'd/', type: 'directory' },
        { name: 'd/.wh..wh..opq' },
        { name: 'd/new.txt', data: 'new' },
        { name: '.wh..wh.plnk/', type: 'directory' },
      ]);
      const i1 = await s.apply(null, Readable.from([l1]));
      const i2 = await s.apply(i1.chainId, Readable.from([l2]), { expectedDiffId: sha256Digest(l2) });
      assert.equal(i2.chainId, chainIdOf(i1.chainId, sha256Digest(l2)));
      const top = s.lowerDirs(i2.chainId)[0];
      const wh = await fsp.lstat(path.join(top, 'a.txt'));
      assert.ok(wh.isCharacterDevice() && wh.rdev === 0, 'whiteout is a 0/0 char device');
      assert.equal(native.lgetxattr(path.join(top, 'd'), 'trusted.overlay.opaque')?.toString(), 'y');
      assert.equal(existsSync(path.join(top, '.wh.a.txt')), false);
      const target = path.join(root, 'mnt');
      await s.prepare('c1', i2.chainId);
      await s.mount('c1', target);
      try {
        assert.equal(existsSync(path.join(target, 'a.txt')), false);
        assert.equal(readFileSync(path.join(target, 'keep.txt'), 'utf8'), 'k');
        assert.deepEqual((await fsp.readdir(path.join(target, 'd'))).sort(), ['new.txt']);
        await fsp.writeFile(path.join(target, 'written.txt'), 'w');
        assert.equal(existsSync(path.join(s.lowerDirs(i2.chainId)[0], 'written.txt')), false);
      } finally {
        await s.unmount(target);
      }
      await s.removeActive('c1');
      await assert.rejects(
        s.remove(i1.chainId),
        (e: unknown) => e instanceof BerthError && e.kind === 'Conflict',
      );
      await s.remove(i2.chainId);
      await s.remove(i1.chainId);
      assert.equal(s.list().length, 0);
    }));

  test(`${name}: concurrent applies of the same layer end in one layer`, () =>
    withSnapshotter(factory, async (s) => {
      const t = await makeTar(
        Array.from({ length: 50 }, (_, i) => ({ name: `f${i}`, data: `x${i}` }) as TarEntry),
      );
      const infos = await Promise.all([1, 2, 3, 4].map(() => s.apply(null, Readable.from([t]))));
      assert.ok(infos.every((i) => i.chainId === infos[0].chainId));
      assert.equal(s.list().length, 1);
    }));

  const unsafe: [string, TarEntry[], RegExp][] = [
    ['.. escaping the root', [{ name: '../evil', data: 'x' }], /escapes the layer root/],
    ['.. in the middle', [{ name: 'a/../../evil', data: 'x' }], /escapes the layer root/],
    [
      'writing through a symlink',
      [
        { name: 'link', type: 'symlink', linkname: '/tmp' },
        { name: 'link/evil', data: 'x' },
      ],
      /is a symlink/,
    ],
    [
      'a relative symlink escaping',
      [{ name: 'a/b', type: 'symlink', linkname: '../../../etc/passwd' }],
      /escapes the layer/,
    ],
    [
      'a hardlink outside',
      [{ name: 'h', type: 'link', linkname: '../../etc/passwd' }],
      /escapes the layer root/,
    ],
    [
      'a hardlink to a missing file',
      [{ name: 'h', type: 'link', linkname: 'etc/shadow' }],
      /not in the layer/,
    ],
    [
      'a hardlink through a symlink',
      [
        { name: 'l', type: 'symlink', linkname: '/etc' },
        { name: 'h', type: 'link', linkname: 'l/passwd' },
      ],
      /is a symlink/,
    ],
    [
      'a char device',
      [{ name: 'dev/mem', type: 'character-device', devmajor: 1, devminor: 1 }],
      /device nodes/,
    ],
    ['a block device', [{ name: 'dev/sda', type: 'block-device', devmajor: 8, devminor: 0 }], /device nodes/],
  ];
  for (const [what, entries, re] of unsafe) {
    test(`${name}: refuses ${what}, leaving nothing behind`, () =>
      withSnapshotter(factory, async (s, root) => {
        const before = new Set(await fsp.readdir(root));
        const t = await makeTar([{ name: 'ok.txt', data: 'fine' }, ...entries]);
        await assert.rejects(s.apply(null, Readable.from([t])), isInvalid(re));
        assert.equal(s.list().length, 0);
        assert.deepEqual(await fsp.readdir(path.join(root, 'store', 'layers')), []);
        assert.deepEqual(await fsp.readdir(path.join(root, 'store', 'tmp')), []);
        assert.deepEqual(new Set(await fsp.readdir(root)), before);
        assert.equal(existsSync(path.join(root, 'evil')), false);
      }));
  }

  test(`${name}: a diff id mismatch and truncated or corrupt input are refused`, () =>
    withSnapshotter(factory, async (s) => {
      const t = await makeTar([{ name: 'f', data: 'x'.repeat(5000) }]);
      await assert.rejects(
        s.apply(null, Readable.from([t]), { expectedDiffId: sha256Digest('other') }),
        isInvalid(/diff id mismatch/),
      );
      const gz = gzipSync(t);
      await assert.rejects(s.apply(null, Readable.from([gz.subarray(0, gz.length - 20)])), isInvalid(/./));
      await assert.rejects(
        s.apply(null, Readable.from([Buffer.concat([gz.subarray(0, 30), Buffer.alloc(200, 7)])])),
        isInvalid(/./),
      );
      await assert.rejects(s.apply(null, Readable.from([t.subarray(0, 700)])), isInvalid(/./));
      assert.equal(s.list().length, 0);
    }));

  test(`${name}: half-made layers from a crash are removed at start`, () =>
    withSnapshotter(factory, async (s, root) => {
      const t = await makeTar([{ name: 'f', data: 'x' }]);
      const info = await s.apply(null, Readable.from([t]));
      await fsp.mkdir(path.join(root, 'store', 'tmp', 'half', 'fs'), { recursive: true });
      const again = await factory(path.join(root, 'store'));
      assert.deepEqual(await fsp.readdir(path.join(root, 'store', 'tmp')), []);
      assert.ok(again.has(info.chainId));
    }));
}

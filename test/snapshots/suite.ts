/**
 * The behaviour every Snapshotter must have (a shared suite, containerd style). Runs as root: layers
 * hold files of other owners, whiteouts are device nodes and snapshots are mounted.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, promises as fsp, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { type Digest, sha256Digest } from '../../src/common/digest.js';
import { BerthError, type ErrorKind } from '../../src/common/errors.js';
import { native } from '../../src/common/native.js';
import { chainIdOf, type Snapshotter } from '../../src/engine/snapshots/snapshots.js';
import { cleanupDir } from '../helpers/daemon.js';
import { makeTar, type TarEntry } from '../helpers/tar.js';

/** Makes a ready (initialised) snapshotter whose data lives under `root` (which does not exist yet). */
export type SnapshotterFactory = (root: string) => Promise<Snapshotter>;

export const ZSTD = '/usr/bin/zstd';
/** makeTar's entry time. */
export const TAR_MTIME = 1_700_000_000;

export interface Sandbox {
  s: Snapshotter;
  /** The temp dir holding everything of the test: store/ (the snapshotter's root), outside/, mnt/. */
  root: string;
  store: string;
  /** A directory outside the store that unsafe layers aim at. */
  outside: string;
}

export async function withSnapshotter(
  factory: SnapshotterFactory,
  fn: (sb: Sandbox) => Promise<void>,
): Promise<void> {
  const root = mkdtempSync(path.join(os.tmpdir(), 'berth-snap-'));
  try {
    const outside = path.join(root, 'outside');
    await fsp.mkdir(outside);
    await fsp.writeFile(path.join(outside, 'passwd'), 'root:x:0:0\n');
    const store = path.join(root, 'store');
    await fn({ s: await factory(store), root, store, outside });
  } finally {
    await cleanupDir(root);
  }
}

export const isKind =
  (kind: ErrorKind, re: RegExp = /./) =>
  (e: unknown): boolean => {
    assert.ok(e instanceof BerthError, `expected a BerthError, got ${String(e)}`);
    assert.equal(e.kind, kind, e.message);
    assert.match(e.message, re);
    return true;
  };

export const isInvalid = (re: RegExp = /./) => isKind('InvalidArgument', re);

/**
 * Every path under `dir` with its mode, and size and mtime for non-directories: equal listings mean
 * nothing was added, removed or rewritten (directory times change with temp entries, so they are left out).
 */
export async function treeOf(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string) => {
    for (const name of (await fsp.readdir(path.join(dir, rel))).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const st = await fsp.lstat(path.join(dir, r));
      out.push(`${r} ${st.mode.toString(8)}` + (st.isDirectory() ? '' : ` ${st.size} ${st.mtimeMs}`));
      if (st.isDirectory()) await walk(r);
    }
  };
  await walk('');
  return out;
}

const layer = (buf: Buffer) => Readable.from([buf]);

function zstd(buf: Buffer): Buffer {
  return execFileSync(ZSTD, ['-q', '-c'], { input: buf });
}

/** The top layer directory of a chain. */
function top(s: Snapshotter, chain: Digest): string {
  return s.lowerDirs(chain)[0];
}

export function snapshotterSuite(name: string, factory: SnapshotterFactory): void {
  const t = (title: string, fn: (sb: Sandbox) => Promise<void>, opts: { skip?: string | false } = {}) =>
    test(`${name}: ${title}`, { skip: opts.skip }, () => withSnapshotter(factory, fn));

  t('applies a plain layer: files, dirs, links, fifos, owners, modes, times, xattrs', async ({ s }) => {
    const tarball = await makeTar([
      { name: 'etc/', type: 'directory', mode: 0o700, uid: 7, gid: 8 },
      { name: 'etc/hostname', data: 'box\n', uid: 1000, gid: 1001, mode: 0o640 },
      { name: 'bin/sh', type: 'symlink', linkname: '/bin/busybox', uid: 5, gid: 6 },
      { name: 'bin/busybox', data: 'ELF', mode: 0o4755 },
      { name: 'bin/ash', type: 'link', linkname: 'bin/busybox' },
      { name: 'tmp/', type: 'directory', mode: 0o1777 },
      { name: 'run/fifo', type: 'fifo', mode: 0o620 },
      { name: 'x/attr', data: 'x', pax: { 'SCHILY.xattr.user.note': 'héllo' } },
      { name: '/abs/file', data: 'leading slash dropped' },
      { name: './dot/file', data: 'leading dot dropped' },
      { name: 'a/../b/c', data: 'cleaned' },
    ]);
    const info = await s.apply(null, layer(tarball));
    assert.equal(info.diffId, sha256Digest(tarball));
    assert.equal(info.chainId, info.diffId);
    assert.equal(info.parent, null);
    assert.equal(info.size, 4 + 3 + 1 + 21 + 19 + 7);
    assert.deepEqual(s.get(info.chainId), info);
    assert.ok(s.has(info.chainId));
    const dir = top(s, info.chainId);
    const etc = await fsp.stat(path.join(dir, 'etc'));
    assert.deepEqual([etc.mode & 0o7777, etc.uid, etc.gid], [0o700, 7, 8]);
    assert.equal(etc.mtimeMs, TAR_MTIME * 1000, 'directory times are set after their content');
    const host = await fsp.stat(path.join(dir, 'etc/hostname'));
    assert.deepEqual([host.mode & 0o7777, host.uid, host.gid], [0o640, 1000, 1001]);
    assert.equal(host.mtimeMs, TAR_MTIME * 1000);
    assert.equal(readFileSync(path.join(dir, 'etc/hostname'), 'utf8'), 'box\n');
    const sh = await fsp.lstat(path.join(dir, 'bin/sh'));
    assert.ok(sh.isSymbolicLink());
    assert.deepEqual([sh.uid, sh.gid, sh.mtimeMs], [5, 6, TAR_MTIME * 1000]);
    assert.equal(await fsp.readlink(path.join(dir, 'bin/sh')), '/bin/busybox');
    const bb = await fsp.stat(path.join(dir, 'bin/busybox'));
    assert.equal(bb.mode & 0o7777, 0o4755, 'setuid survives chown');
    assert.equal(bb.nlink, 2);
    assert.equal((await fsp.stat(path.join(dir, 'bin/ash'))).ino, bb.ino);
    assert.equal((await fsp.stat(path.join(dir, 'tmp'))).mode & 0o7777, 0o1777);
    const fifo = await fsp.lstat(path.join(dir, 'run/fifo'));
    assert.ok(fifo.isFIFO());
    assert.equal(fifo.mode & 0o7777, 0o620);
    assert.equal(native.lgetxattr(path.join(dir, 'x/attr'), 'user.note')?.toString(), 'héllo');
    assert.equal(readFileSync(path.join(dir, 'abs/file'), 'utf8'), 'leading slash dropped');
    assert.equal(readFileSync(path.join(dir, 'dot/file'), 'utf8'), 'leading dot dropped');
    assert.equal(readFileSync(path.join(dir, 'b/c'), 'utf8'), 'cleaned');
    assert.equal(existsSync(path.join(dir, 'a')), false);
    assert.deepEqual(s.list(), [info]);
  });

  t('applies a gzip layer, with the diff id of the uncompressed tar', async ({ s }) => {
    const tarball = await makeTar([{ name: 'g.txt', data: 'gzip!' }]);
    const info = await s.apply(null, layer(gzipSync(tarball)));
    assert.equal(info.diffId, sha256Digest(tarball));
    assert.equal(readFileSync(path.join(top(s, info.chainId), 'g.txt'), 'utf8'), 'gzip!');
  });

  t(
    'applies a zstd layer, with the diff id of the uncompressed tar',
    async ({ s }) => {
      const tarball = await makeTar([{ name: 'z.txt', data: 'zstd!' }]);
      const info = await s.apply(null, layer(zstd(tarball)));
      assert.equal(info.diffId, sha256Digest(tarball));
      assert.equal(readFileSync(path.join(top(s, info.chainId), 'z.txt'), 'utf8'), 'zstd!');
    },
    { skip: !existsSync(ZSTD) && `${ZSTD} is not installed (Debian package zstd); no way to make the input` },
  );

  t('streams large files through intact', async ({ s }) => {
    const big = randomBytes(3 * 1024 * 1024 + 17);
    const mid = randomBytes(70 * 1024);
    const tarball = await makeTar([
      { name: 'big.bin', data: big },
      { name: 'mid.bin', data: mid },
      { name: 'empty', data: '' },
    ]);
    const info = await s.apply(null, Readable.from(chunks(gzipSync(tarball), 1000)));
    const dir = top(s, info.chainId);
    assert.equal(sha256Digest(readFileSync(path.join(dir, 'big.bin'))), sha256Digest(big));
    assert.equal(sha256Digest(readFileSync(path.join(dir, 'mid.bin'))), sha256Digest(mid));
    assert.equal(readFileSync(path.join(dir, 'empty')).length, 0);
    assert.equal(info.size, big.length + mid.length);
  });

  t('reports progress in bytes of the compressed input', async ({ s }) => {
    const gz = gzipSync(await makeTar([{ name: 'f', data: randomBytes(100_000) }]));
    const seen: number[] = [];
    await s.apply(null, Readable.from(chunks(gz, 4096)), { onProgress: (n) => seen.push(n) });
    assert.ok(seen.length > 1);
    assert.equal(seen[seen.length - 1], gz.length);
    assert.deepEqual(
      seen,
      [...seen].sort((a, b) => a - b),
    );
  });

  t('the same layer applied again is the same layer, not a second copy', async ({ s }) => {
    const tarball = await makeTar([{ name: 'f', data: 'x' }]);
    const first = await s.apply(null, layer(tarball));
    const ino = (await fsp.stat(path.join(top(s, first.chainId), 'f'))).ino;
    assert.deepEqual(await s.apply(null, layer(gzipSync(tarball))), first);
    assert.deepEqual(await s.apply(null, layer(tarball), { expectedDiffId: first.diffId }), first);
    assert.equal((await fsp.stat(path.join(top(s, first.chainId), 'f'))).ino, ino);
    assert.deepEqual(s.list(), [first]);
    // Known already, yet the bytes are still checked.
    const other = await makeTar([{ name: 'f', data: 'y' }]);
    await assert.rejects(
      s.apply(null, layer(other), { expectedDiffId: first.diffId }),
      isInvalid(/layer diff id mismatch: expected sha256:[0-9a-f]{64}, got sha256:/),
    );
    assert.deepEqual(s.list(), [first]);
  });

  t('the same content on different parents makes different chains', async ({ s }) => {
    const base = await s.apply(null, layer(await makeTar([{ name: 'base', data: 'b' }])));
    const tarball = await makeTar([{ name: 'f', data: 'x' }]);
    const alone = await s.apply(null, layer(tarball));
    const stacked = await s.apply(base.chainId, layer(tarball));
    assert.equal(alone.diffId, stacked.diffId);
    assert.equal(stacked.chainId, chainIdOf(base.chainId, stacked.diffId));
    assert.notEqual(alone.chainId, stacked.chainId);
    assert.equal(stacked.parent, base.chainId);
    assert.equal(s.lowerDirs(stacked.chainId).length, 2);
    assert.equal(s.list().length, 3);
  });

  t('later entries replace earlier ones at the same path', async ({ s, outside }) => {
    const tarball = await makeTar([
      { name: 'f2d', data: 'file' },
      { name: 'f2d/', type: 'directory' },
      { name: 'f2d/in', data: 'in' },
      { name: 'd2f/', type: 'directory' },
      { name: 'd2f/gone', data: 'gone' },
      { name: 'd2f', data: 'now a file' },
      { name: 'l2f', type: 'symlink', linkname: path.join(outside, 'passwd') },
      { name: 'l2f', data: 'not through the link' },
      { name: 'ld', type: 'symlink', linkname: outside },
      { name: 'ld/', type: 'directory' },
      { name: 'ld/x', data: 'inside' },
      { name: 'orig', data: 'one' },
      { name: 'hard', type: 'link', linkname: 'orig' },
      { name: 'orig', data: 'two' },
      { name: 'twice', data: 'first' },
      { name: 'twice', data: 'second', mode: 0o600 },
    ]);
    const info = await s.apply(null, layer(tarball));
    const dir = top(s, info.chainId);
    assert.equal(readFileSync(path.join(dir, 'f2d/in'), 'utf8'), 'in');
    assert.equal(readFileSync(path.join(dir, 'd2f'), 'utf8'), 'now a file');
    assert.equal(readFileSync(path.join(dir, 'l2f'), 'utf8'), 'not through the link');
    assert.ok((await fsp.lstat(path.join(dir, 'ld'))).isDirectory());
    assert.equal(readFileSync(path.join(dir, 'ld/x'), 'utf8'), 'inside');
    assert.equal(readFileSync(path.join(dir, 'hard'), 'utf8'), 'one');
    assert.equal(readFileSync(path.join(dir, 'orig'), 'utf8'), 'two');
    assert.equal(readFileSync(path.join(dir, 'twice'), 'utf8'), 'second');
    assert.equal((await fsp.stat(path.join(dir, 'twice'))).mode & 0o777, 0o600);
    assert.equal(readFileSync(path.join(outside, 'passwd'), 'utf8'), 'root:x:0:0\n');
    assert.deepEqual(await fsp.readdir(outside), ['passwd']);
  });

  t('whiteouts and opaque dirs give the merged view overlayfs should', async ({ s, root }) => {
    const l1 = await makeTar([
      { name: 'a.txt', data: 'a' },
      { name: 'keep.txt', data: 'k' },
      { name: 'd/', type: 'directory' },
      { name: 'd/old.txt', data: 'old' },
      { name: 'gone/', type: 'directory' },
      { name: 'gone/x', data: 'x' },
      { name: 'remade/', type: 'directory' },
      { name: 'remade/old', data: 'old' },
      { name: 'dev.txt', data: 'dev' },
      { name: 'same/', type: 'directory' },
      { name: 'same/lower', data: 'lower' },
    ]);
    const l2 = await makeTar([
      { name: '.wh.a.txt' },
      { name: 'd/', type: 'directory' },
      { name: 'd/.wh..wh..opq' },
      { name: 'd/new.txt', data: 'new' },
      { name: '.wh.gone' },
      // deleted, then made anew in the same layer: nothing of the lower one may show
      { name: '.wh.remade' },
      { name: 'remade/', type: 'directory' },
      { name: 'remade/new', data: 'new' },
      // overlayfs' own whiteout format
      { name: 'dev.txt', type: 'character-device', devmajor: 0, devminor: 0 },
      // AUFS metadata is not content
      { name: '.wh..wh.plnk/', type: 'directory' },
      { name: '.wh..wh.plnk/123.456', data: 'aufs hardlink' },
      { name: '.wh..wh.aufs', data: '' },
      // a whiteout hides lower layers only: this layer's own directory of that name stays
      { name: 'same/', type: 'directory' },
      { name: 'same/upper', data: 'upper' },
      { name: '.wh.same' },
    ]);
    const i1 = await s.apply(null, layer(l1));
    const i2 = await s.apply(i1.chainId, layer(l2), { expectedDiffId: sha256Digest(l2) });
    assert.equal(i2.chainId, chainIdOf(i1.chainId, sha256Digest(l2)));
    assert.deepEqual(
      s.lowerDirs(i2.chainId),
      [top(s, i2.chainId), top(s, i1.chainId)],
      'lower dirs are listed top first',
    );
    const upper = top(s, i2.chainId);
    for (const w of ['a.txt', 'gone', 'dev.txt']) {
      const st = await fsp.lstat(path.join(upper, w));
      assert.ok(st.isCharacterDevice() && st.rdev === 0, `${w} is a 0/0 char device`);
    }
    assert.equal(native.lgetxattr(path.join(upper, 'd'), 'trusted.overlay.opaque')?.toString(), 'y');
    assert.equal(native.lgetxattr(path.join(upper, 'remade'), 'trusted.overlay.opaque')?.toString(), 'y');
    assert.equal(native.lgetxattr(path.join(upper, 'same'), 'trusted.overlay.opaque')?.toString(), 'y');
    for (const n of await fsp.readdir(upper, { recursive: true }))
      assert.ok(!path.basename(n).startsWith('.wh.'), `no ${n} in the layer`);

    const target = path.join(root, 'mnt');
    const spec = await s.prepare('c1', i2.chainId);
    assert.deepEqual(spec.lowerDirs, s.lowerDirs(i2.chainId));
    await s.mount('c1', target);
    try {
      const ls = async (p: string) => (await fsp.readdir(path.join(target, p))).sort();
      assert.deepEqual(await ls(''), ['d', 'keep.txt', 'remade', 'same']);
      assert.equal(readFileSync(path.join(target, 'keep.txt'), 'utf8'), 'k');
      assert.deepEqual(await ls('d'), ['new.txt']);
      assert.deepEqual(await ls('remade'), ['new']);
      assert.deepEqual(await ls('same'), ['upper']);
      await fsp.writeFile(path.join(target, 'written.txt'), 'w');
      await fsp.rm(path.join(target, 'keep.txt'));
      assert.equal(readFileSync(path.join(spec.upperDir, 'written.txt'), 'utf8'), 'w');
      assert.equal(existsSync(path.join(upper, 'written.txt')), false, 'layers stay read-only');
      assert.equal(readFileSync(path.join(top(s, i1.chainId), 'keep.txt'), 'utf8'), 'k');
    } finally {
      await s.unmount(target);
    }
    await s.unmount(target); // not mounted any more: fine
    assert.deepEqual(await fsp.readdir(target), []);
    await s.removeActive('c1');
    await s.removeActive('c1'); // gone already: fine
  });

  t('a snapshot without a parent mounts an empty, writable root', async ({ s, root }) => {
    const spec = await s.prepare('scratch', null);
    assert.equal(spec.lowerDirs.length, 1);
    const target = path.join(root, 'mnt');
    await s.mount('scratch', target);
    try {
      assert.deepEqual(await fsp.readdir(target), []);
      await fsp.writeFile(path.join(target, 'hello'), 'hi');
      assert.equal(readFileSync(path.join(spec.upperDir, 'hello'), 'utf8'), 'hi');
    } finally {
      await s.unmount(target);
    }
    await s.removeActive('scratch');
  });

  t('prepare is idempotent for the same parent and checks its arguments', async ({ s, root }) => {
    const base = await s.apply(null, layer(await makeTar([{ name: 'f', data: 'x' }])));
    const spec = await s.prepare('c1', base.chainId);
    assert.deepEqual(await s.prepare('c1', base.chainId), spec);
    await assert.rejects(s.prepare('c1', null), isKind('Conflict'));
    const missing = sha256Digest('missing');
    const before = await treeOf(root);
    await assert.rejects(s.prepare('c2', missing), isKind('NotFound'));
    await assert.rejects(s.prepare('../escape', null), isInvalid(/invalid snapshot key/));
    await assert.rejects(s.prepare('', null), isInvalid(/invalid snapshot key/));
    await assert.rejects(s.mount('nope', path.join(root, 'mnt')), isKind('NotFound'));
    assert.deepEqual(await treeOf(root), before);
    await s.removeActive('c1');
  });

  t('stage and commitStaged: unpacked first, placed in a chain later', async ({ s }) => {
    const base = await s.apply(null, layer(await makeTar([{ name: 'base', data: 'b' }])));
    const tarball = await makeTar([{ name: 'f', data: 'x' }]);
    const staged = await s.stage(layer(gzipSync(tarball)));
    assert.equal(staged.diffId, sha256Digest(tarball));
    assert.equal(staged.size, 1);
    assert.equal(s.list().length, 1, 'a staged layer is no layer yet');
    const info = await s.commitStaged(staged, base.chainId);
    assert.equal(info.chainId, chainIdOf(base.chainId, staged.diffId));
    assert.equal(readFileSync(path.join(top(s, info.chainId), 'f'), 'utf8'), 'x');
    await s.discardStaged(staged); // after commit: nothing to do
    const again = await s.stage(layer(tarball));
    assert.deepEqual(await s.commitStaged(again, base.chainId), info, 'an existing chain wins');
    const dropped = await s.stage(layer(tarball));
    await s.discardStaged(dropped);
    await assert.rejects(
      s.commitStaged(await s.stage(layer(tarball)), sha256Digest('no')),
      isKind('NotFound'),
    );
    assert.equal(s.list().length, 2);
  });

  t('concurrent applies of the same layer end in one layer', async ({ s }) => {
    const tarball = await makeTar(
      Array.from({ length: 50 }, (_, i) => ({ name: `d${i % 5}/f${i}`, data: `x${i}` }) as TarEntry),
    );
    const diffId = sha256Digest(tarball);
    const infos = await Promise.all(
      [0, 1, 2, 3, 4, 5].map((i) =>
        s.apply(null, layer(i % 2 ? gzipSync(tarball) : tarball), i < 3 ? { expectedDiffId: diffId } : {}),
      ),
    );
    for (const i of infos) assert.deepEqual(i, infos[0]);
    assert.equal(s.list().length, 1);
    assert.equal((await fsp.readdir(top(s, diffId), { recursive: true })).length, 55);
  });

  t('remove refuses layers with children and forgets removed ones', async ({ s }) => {
    const l1 = await s.apply(null, layer(await makeTar([{ name: 'a', data: 'a' }])));
    const l2 = await s.apply(l1.chainId, layer(await makeTar([{ name: 'b', data: 'b' }])));
    await assert.rejects(s.remove(l1.chainId), isKind('Conflict', /child layer/));
    const dir = top(s, l2.chainId);
    await s.remove(l2.chainId);
    assert.equal(existsSync(dir), false);
    assert.equal(s.has(l2.chainId), false);
    assert.equal(s.get(l2.chainId), undefined);
    assert.throws(() => s.lowerDirs(l2.chainId), isKind('NotFound'));
    await assert.rejects(s.remove(l2.chainId), isKind('NotFound'));
    await s.remove(l1.chainId);
    assert.deepEqual(s.list(), []);
    await assert.rejects(
      s.apply(l1.chainId, layer(await makeTar([{ name: 'c', data: 'c' }]))),
      isKind('NotFound'),
    );
  });

  const unsafe: [string, (outside: string) => TarEntry[], RegExp][] = [
    [
      '.. escaping the root',
      () => [{ name: '../evil', data: 'x' }],
      /"\.\.\/evil": path escapes the layer root/,
    ],
    ['.. in the middle', () => [{ name: 'a/../../evil', data: 'x' }], /path escapes the layer root/],
    [
      'a deep .. escape',
      () => [{ name: 'a/b/../../../../../outside/evil', data: 'x' }],
      /path escapes the layer root/,
    ],
    [
      'writing through an absolute symlink',
      (o) => [
        { name: 'link', type: 'symlink', linkname: o },
        { name: 'link/passwd', data: 'owned' },
      ],
      /"link\/passwd": parent link is a symlink/,
    ],
    [
      'writing through a relative symlink',
      () => [
        { name: 'sub/', type: 'directory' },
        { name: 'link', type: 'symlink', linkname: 'sub' },
        { name: 'link/file', data: 'x' },
      ],
      /parent link is a symlink/,
    ],
    [
      'a directory through a symlink',
      (o) => [
        { name: 'link', type: 'symlink', linkname: o },
        { name: 'link/newdir/', type: 'directory' },
      ],
      /parent link is a symlink/,
    ],
    [
      'a whiteout through a symlink',
      (o) => [{ name: 'link', type: 'symlink', linkname: o }, { name: 'link/.wh.passwd' }],
      /parent link is a symlink/,
    ],
    [
      'an opaque marker through a symlink',
      (o) => [{ name: 'link', type: 'symlink', linkname: o }, { name: 'link/.wh..wh..opq' }],
      /parent link is a symlink/,
    ],
    [
      'a relative symlink escaping',
      () => [{ name: 'a/b', type: 'symlink', linkname: '../../../etc/passwd' }],
      /"a\/b": symlink target "\.\.\/\.\.\/\.\.\/etc\/passwd" escapes the layer/,
    ],
    ['a symlink to ..', () => [{ name: 'up', type: 'symlink', linkname: '..' }], /escapes the layer/],
    ['a symlink without a target', () => [{ name: 'l', type: 'symlink', linkname: '' }], /without a target/],
    [
      'a hardlink outside',
      () => [{ name: 'h', type: 'link', linkname: '../../outside/passwd' }],
      /escapes the layer root/,
    ],
    [
      'a hardlink to an absolute path',
      (o) => [{ name: 'h', type: 'link', linkname: path.join(o, 'passwd') }],
      /is not in the layer/,
    ],
    [
      'a hardlink to a missing file',
      () => [{ name: 'h', type: 'link', linkname: 'etc/shadow' }],
      /"h": hardlink target "etc\/shadow" is not in the layer/,
    ],
    [
      'a hardlink through a symlink',
      (o) => [
        { name: 'l', type: 'symlink', linkname: o },
        { name: 'h', type: 'link', linkname: 'l/passwd' },
      ],
      /is behind symlink l/,
    ],
    [
      'a hardlink to a directory',
      () => [
        { name: 'd/', type: 'directory' },
        { name: 'h', type: 'link', linkname: 'd' },
      ],
      /hardlink to a directory/,
    ],
    [
      'a hardlink to itself',
      () => [{ name: 'ok.txt', type: 'link', linkname: 'ok.txt' }],
      /hardlink to itself/,
    ],
    [
      'a hardlink to a whiteout',
      () => [{ name: '.wh.x' }, { name: 'h', type: 'link', linkname: 'x' }],
      /not in the layer/,
    ],
    [
      'a char device',
      () => [{ name: 'dev/mem', type: 'character-device', devmajor: 1, devminor: 1 }],
      /"dev\/mem": device nodes are not allowed in layers/,
    ],
    [
      'a char device 0/1',
      () => [{ name: 'dev/x', type: 'character-device', devmajor: 0, devminor: 1 }],
      /device nodes/,
    ],
    [
      'a block device',
      () => [{ name: 'dev/sda', type: 'block-device', devmajor: 8, devminor: 0 }],
      /device nodes/,
    ],
    ['an empty whiteout name', () => [{ name: 'd/.wh.' }], /invalid whiteout/],
    ['a whiteout of ..', () => [{ name: 'd/.wh..' }], /invalid whiteout/],
    ['a whiteout used as a directory', () => [{ name: '.wh.d/file', data: 'x' }], /cannot be a directory/],
    [
      'a file used as a directory',
      () => [
        { name: 'f', data: 'x' },
        { name: 'f/g', data: 'y' },
      ],
      /parent f is not a directory/,
    ],
  ];
  for (const [what, entries, re] of unsafe) {
    t(`refuses ${what}, leaving nothing behind`, async ({ s, root, outside }) => {
      await s.apply(null, layer(await makeTar([{ name: 'existing', data: 'e' }])));
      const before = await treeOf(root);
      const layers = s.list();
      const tarball = await makeTar([{ name: 'ok.txt', data: 'fine' }, ...entries(outside)]);
      await assert.rejects(s.apply(null, layer(tarball)), isInvalid(re));
      await assert.rejects(s.apply(null, layer(gzipSync(tarball))), isInvalid(re));
      await assert.rejects(s.stage(layer(tarball)), isInvalid(re));
      assert.deepEqual(s.list(), layers);
      assert.deepEqual(await treeOf(root), before, 'nothing written anywhere');
    });
  }

  const corrupt: [string, () => Promise<Buffer>, RegExp][] = [
    [
      'a truncated gzip stream',
      async () => {
        const gz = gzipSync(await makeTar([{ name: 'f', data: randomBytes(5000) }]));
        return gz.subarray(0, gz.length - 100);
      },
      /invalid gzip stream: unexpected end of file/,
    ],
    [
      'a corrupt gzip stream',
      async () => {
        const gz = gzipSync(await makeTar([{ name: 'f', data: 'x'.repeat(5000) }]));
        return Buffer.concat([gz.subarray(0, 12), Buffer.alloc(200, 7)]);
      },
      /invalid gzip stream/,
    ],
    [
      'a corrupt zstd stream',
      async () => Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), randomBytes(300)]),
      /invalid zstd stream/,
    ],
    [
      'a truncated tar',
      async () => (await makeTar([{ name: 'f', data: 'x'.repeat(5000) }])).subarray(0, 700),
      /invalid layer tar/,
    ],
    ['garbage', async () => Buffer.alloc(2048, 'garbage'), /invalid layer tar/],
    [
      'a tar whose header checksum is wrong',
      async () => {
        const t = await makeTar([{ name: 'f', data: 'x' }]);
        t[0] = 'g'.charCodeAt(0);
        return t;
      },
      /invalid layer tar/,
    ],
  ];
  if (existsSync(ZSTD))
    corrupt.push([
      'a truncated zstd stream',
      async () => {
        const z = zstd(await makeTar([{ name: 'f', data: randomBytes(50_000) }]));
        return z.subarray(0, z.length - 1000);
      },
      /invalid zstd stream/,
    ]);
  for (const [what, make, re] of corrupt) {
    t(`refuses ${what}, leaving nothing behind`, async ({ s, root }) => {
      const before = await treeOf(root);
      await assert.rejects(s.apply(null, layer(await make())), isInvalid(re));
      assert.deepEqual(s.list(), []);
      assert.deepEqual(await treeOf(root), before);
    });
  }

  t('refuses a diff id mismatch, leaving nothing behind', async ({ s, root }) => {
    const before = await treeOf(root);
    const tarball = await makeTar([{ name: 'f', data: 'x' }]);
    const wrong = sha256Digest('other');
    await assert.rejects(
      s.apply(null, layer(gzipSync(tarball)), { expectedDiffId: wrong }),
      isInvalid(new RegExp(`layer diff id mismatch: expected ${wrong}, got ${sha256Digest(tarball)}`)),
    );
    await assert.rejects(
      s.apply(null, layer(tarball), { expectedDiffId: 'sha256:nothex' as Digest }),
      isInvalid(/invalid layer diff id/),
    );
    assert.deepEqual(s.list(), []);
    assert.deepEqual(await treeOf(root), before);
  });

  t('an input stream that fails fails the apply, leaving nothing behind', async ({ s, root }) => {
    const before = await treeOf(root);
    const tarball = await makeTar([{ name: 'f', data: randomBytes(100_000) }]);
    const failing = new Readable({
      read() {
        this.push(tarball.subarray(0, 20_000));
        this.destroy(Object.assign(new Error('disk on fire'), { code: 'EIO' }));
      },
    });
    await assert.rejects(s.apply(null, failing), /disk on fire/);
    assert.deepEqual(s.list(), []);
    assert.deepEqual(await treeOf(root), before);
  });
}

/** Splits a buffer into chunks of `size` bytes, as a network stream would deliver it. */
export function chunks(buf: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) out.push(buf.subarray(i, i + size));
  return out;
}

import assert from 'node:assert/strict';
import { mkdtempSync, promises as fsp, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { BerthError } from '../../src/common/errors.js';
import { native } from '../../src/common/native.js';
import { cleanEntryName, extractLayer } from '../../src/common/safetar.js';
import { makeTar, type TarEntry } from '../helpers/tar.js';

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-safetar-'));
  try {
    await fn(dir);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

const extract = async (entries: TarEntry[] | Buffer, dir: string) =>
  extractLayer(Readable.from([Buffer.isBuffer(entries) ? entries : await makeTar(entries)]), dir);

test('cleanEntryName drops leading slashes and dots and refuses climbing above the root', () => {
  assert.equal(cleanEntryName('/etc/passwd'), 'etc/passwd');
  assert.equal(cleanEntryName('./etc//x/'), 'etc/x');
  assert.equal(cleanEntryName('a/b/../c'), 'a/c');
  assert.equal(cleanEntryName('./'), '');
  assert.equal(cleanEntryName('..a/b..'), '..a/b..');
  for (const bad of ['..', '../x', 'a/../../x', '/../x', 'a/b/../../../x']) {
    assert.throws(
      () => cleanEntryName(bad),
      (e: unknown) =>
        e instanceof BerthError &&
        e.kind === 'InvalidArgument' &&
        e.message === `invalid tar entry ${JSON.stringify(bad)}: path escapes the layer root`,
    );
  }
});

test('extractLayer counts entries and file bytes', () =>
  withDir(async (dir) => {
    const r = await extract(
      [
        { name: './', type: 'directory' },
        { name: 'a', data: 'abc' },
        { name: 'b/', type: 'directory' },
        { name: 'b/c', data: 'de' },
        { name: 'h', type: 'link', linkname: 'a' },
      ],
      dir,
    );
    assert.deepEqual(r, { size: 5, entries: 5 });
  }));

test('binary xattr values survive byte for byte; overlay xattrs are never taken from a layer', () =>
  withDir(async (dir) => {
    const placeholder = 'PLACEHOLDER!';
    const tarball = await makeTar([
      {
        name: 'f',
        data: 'x',
        pax: {
          'SCHILY.xattr.user.bin': placeholder,
          'SCHILY.xattr.user.text': 'ünïcödé',
          'SCHILY.xattr.trusted.overlay.redirect': '/elsewhere',
          'SCHILY.xattr.trusted.overlay.opaque': 'y',
        },
      },
    ]);
    // tar-stream writes values as UTF-8 text; put raw bytes in place of the placeholder.
    const binary = Buffer.from([0x00, 0x80, 0xff, 0xfe, 0x01, 0x02, 0xc3, 0x28, 0x0a, 0x3d, 0x20, 0x7f]);
    const at = tarball.indexOf(placeholder);
    assert.ok(at > 0);
    binary.copy(tarball, at);
    await extract(tarball, dir);
    const f = path.join(dir, 'f');
    assert.deepEqual(native.lgetxattr(f, 'user.bin'), binary);
    assert.equal(native.lgetxattr(f, 'user.text')?.toString('utf8'), 'ünïcödé');
    assert.equal(native.lgetxattr(f, 'trusted.overlay.redirect'), null);
    assert.equal(native.lgetxattr(f, 'trusted.overlay.opaque'), null);
  }));

test('xattrs on directories, symlinks are set or skipped as the file system allows', () =>
  withDir(async (dir) => {
    await extract(
      [
        { name: 'd/', type: 'directory', pax: { 'SCHILY.xattr.user.d': 'dir' } },
        // user.* xattrs are not allowed on symlinks (EPERM): skipped, as Docker does
        { name: 'l', type: 'symlink', linkname: 'd', pax: { 'SCHILY.xattr.user.l': 'link' } },
        { name: 'f', data: '', pax: { 'SCHILY.xattr.trusted.berth': 'ok' } },
      ],
      dir,
    );
    assert.equal(native.lgetxattr(path.join(dir, 'd'), 'user.d')?.toString(), 'dir');
    assert.equal(native.lgetxattr(path.join(dir, 'f'), 'trusted.berth')?.toString(), 'ok');
  }));

test('PAX ids and times win over the header fields', () =>
  withDir(async (dir) => {
    await extract(
      [
        {
          name: 'f',
          data: 'x',
          uid: 1,
          gid: 2,
          pax: { uid: '3000000', gid: '3000001', mtime: '1600000000.25' },
        },
      ],
      dir,
    );
    const st = await fsp.stat(path.join(dir, 'f'));
    assert.deepEqual([st.uid, st.gid], [3000000, 3000001]);
    assert.equal(st.mtimeMs, 1600000000250);
  }));

test('directory times are set after everything inside is written', () =>
  withDir(async (dir) => {
    await extract(
      [
        { name: 'a/', type: 'directory' },
        { name: 'a/b/', type: 'directory' },
        { name: 'a/b/c', data: 'c' },
        { name: 'a/b/.wh.gone' },
        { name: 'a/d', data: 'd' },
        { name: 'a/d', data: 'd again' },
      ],
      dir,
    );
    for (const d of ['a', 'a/b'])
      assert.equal((await fsp.stat(path.join(dir, d))).mtimeMs, 1_700_000_000_000);
  }));

test('a hardlink may name a symlink of the layer; the link is not followed', () =>
  withDir(async (dir) => {
    await extract(
      [
        { name: 'sym', type: 'symlink', linkname: '/etc/passwd' },
        { name: 'hard', type: 'link', linkname: 'sym' },
      ],
      dir,
    );
    const a = await fsp.lstat(path.join(dir, 'sym'));
    const b = await fsp.lstat(path.join(dir, 'hard'));
    assert.ok(b.isSymbolicLink());
    assert.equal(a.ino, b.ino);
  }));

test('whiteouts: a parent that was whited out becomes an opaque directory', () =>
  withDir(async (dir) => {
    await extract(
      [
        { name: '.wh.d' },
        { name: 'd/new', data: 'new' },
        { name: 'f', data: 'this layer' },
        { name: '.wh.f' },
        { name: 'x', data: 'replaced' },
        { name: 'x', type: 'character-device', devmajor: 0, devminor: 0 },
      ],
      dir,
    );
    assert.equal(native.lgetxattr(path.join(dir, 'd'), 'trusted.overlay.opaque')?.toString(), 'y');
    assert.equal(readFileSync(path.join(dir, 'd/new'), 'utf8'), 'new');
    assert.equal(
      readFileSync(path.join(dir, 'f'), 'utf8'),
      'this layer',
      'a whiteout hides lower layers only',
    );
    const x = await fsp.lstat(path.join(dir, 'x'));
    assert.ok(x.isCharacterDevice() && x.rdev === 0);
  }));

test('an opaque marker at the root marks the layer root', () =>
  withDir(async (dir) => {
    await extract([{ name: '.wh..wh..opq' }, { name: 'f', data: 'x' }], dir);
    assert.equal(native.lgetxattr(dir, 'trusted.overlay.opaque')?.toString(), 'y');
    assert.deepEqual(await fsp.readdir(dir), ['f']);
  }));

test('error messages name the entry and the reason', () =>
  withDir(async (dir) => {
    await assert.rejects(
      extract([{ name: 'dev/kmsg', type: 'character-device', devmajor: 1, devminor: 11 }], dir),
      (e: unknown) =>
        e instanceof BerthError &&
        e.kind === 'InvalidArgument' &&
        e.message === 'invalid tar entry "dev/kmsg": device nodes are not allowed in layers',
    );
  }));

test('an empty input and an empty archive are empty layers', () =>
  withDir(async (dir) => {
    assert.deepEqual(await extractLayer(Readable.from([]), dir), { size: 0, entries: 0 });
    assert.deepEqual(await extract(Buffer.alloc(1024), dir), { size: 0, entries: 0 });
    assert.deepEqual(await fsp.readdir(dir), []);
  }));

test('an archive without its end blocks still finishes its last entry, or fails on it', () =>
  withDir(async (dir) => {
    const withoutEnd = async (entries: TarEntry[]) => {
      const t = await makeTar(entries);
      assert.ok(t.subarray(t.length - 1024).every((b) => b === 0));
      return t.subarray(0, t.length - 1024);
    };
    const big = Buffer.alloc(3 * 1024 * 1024, 'z');
    const good = await withoutEnd([{ name: 'big', data: big, mode: 0o600, uid: 42 }]);
    await extractLayer(Readable.from([good]), dir);
    const st = await fsp.stat(path.join(dir, 'big'));
    assert.deepEqual([st.size, st.mode & 0o777, st.uid], [big.length, 0o600, 42]);
    const bad = await withoutEnd([
      { name: 'l', type: 'symlink', linkname: '/etc' },
      { name: 'l/passwd', data: 'x' },
    ]);
    const other = path.join(dir, 'other');
    await fsp.mkdir(other);
    await assert.rejects(extractLayer(Readable.from([bad]), other), /parent l is a symlink/);
  }));

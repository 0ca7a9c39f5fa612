import assert from 'node:assert/strict';
import { existsSync, promises as fsp, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { type Digest, digestHex, sha256Digest } from '../../src/common/digest.js';
import { OverlaySnapshotter } from '../../src/engine/snapshots/overlay.js';
import type { LayerInfo } from '../../src/engine/snapshots/snapshots.js';
import { makeTar } from '../helpers/tar.js';
import { snapshotterSuite, treeOf, withSnapshotter } from './suite.js';

const overlay = async (root: string) => {
  const s = new OverlaySnapshotter(root);
  await s.init();
  return s;
};

snapshotterSuite('overlay', overlay);

const layer = (buf: Buffer) => Readable.from([buf]);

test('overlay: on-disk layout: layers/<chain>/{fs,meta.json} and a short link', () =>
  withSnapshotter(overlay, async ({ s, store }) => {
    const base = await s.apply(null, layer(await makeTar([{ name: 'f', data: 'x' }])));
    const info = await s.apply(base.chainId, layer(await makeTar([{ name: 'g', data: 'yy' }])));
    const dir = path.join(store, 'layers', digestHex(info.chainId));
    assert.deepEqual((await fsp.readdir(dir)).sort(), ['fs', 'meta.json']);
    assert.deepEqual(JSON.parse(readFileSync(path.join(dir, 'meta.json'), 'utf8')), info);
    assert.deepEqual(info, { chainId: info.chainId, parent: base.chainId, diffId: info.diffId, size: 2 });
    assert.equal(s.lowerDirs(info.chainId)[0], path.join(dir, 'fs'));
    const link = path.join(store, 'l', digestHex(info.chainId).slice(0, 16));
    assert.equal(await fsp.realpath(link), path.join(dir, 'fs'));
    assert.deepEqual(await fsp.readdir(path.join(store, 'tmp')), []);
    await s.remove(info.chainId);
    assert.equal(existsSync(link), false);
    assert.equal(existsSync(dir), false);
    assert.deepEqual(await fsp.readdir(path.join(store, 'tmp')), []);
  }));

test('overlay: init loads the index, drops crash debris and unreadable layers', () =>
  withSnapshotter(overlay, async ({ s, store }) => {
    const info = await s.apply(null, layer(await makeTar([{ name: 'f', data: 'x' }])));
    await s.prepare('c1', info.chainId);
    // A crash mid-unpack, mid-delete and mid-prepare leaves debris in tmp/ only.
    await fsp.mkdir(path.join(store, 'tmp', 'half', 'fs', 'etc'), { recursive: true });
    await fsp.writeFile(path.join(store, 'tmp', 'half', 'fs', 'etc', 'x'), 'x');
    await fsp.mkdir(path.join(store, 'tmp', 'rm-123', 'fs'), { recursive: true });
    // A layer directory whose meta.json never got written, and one that lies about its chain.
    const bogus = sha256Digest('bogus');
    await fsp.mkdir(path.join(store, 'layers', digestHex(bogus), 'fs'), { recursive: true });
    const liar = sha256Digest('liar');
    await fsp.mkdir(path.join(store, 'layers', digestHex(liar), 'fs'), { recursive: true });
    await fsp.writeFile(
      path.join(store, 'layers', digestHex(liar), 'meta.json'),
      JSON.stringify({ chainId: liar, parent: null, diffId: info.diffId, size: 1 }),
    );
    // A lost short link.
    await fsp.rm(path.join(store, 'l', digestHex(info.chainId).slice(0, 16)));

    const again = await overlay(store);
    assert.deepEqual(await fsp.readdir(path.join(store, 'tmp')), []);
    assert.deepEqual(again.list(), [info]);
    assert.deepEqual(again.get(info.chainId), info);
    assert.deepEqual(await fsp.readdir(path.join(store, 'layers')), [digestHex(info.chainId)]);
    assert.deepEqual(await fsp.readdir(path.join(store, 'l')), [digestHex(info.chainId).slice(0, 16)]);
    // The prepared snapshot survives too.
    assert.deepEqual(await again.prepare('c1', info.chainId), await s.prepare('c1', info.chainId));
    await assert.rejects(again.prepare('c1', null), /already exists/);
  }));

test('overlay: a known chain is verified without unpacking it again', () =>
  withSnapshotter(overlay, async ({ s, store }) => {
    const tarball = await makeTar([{ name: 'f', data: 'x' }]);
    const info = await s.apply(null, layer(tarball));
    // With tmp/ unusable, any unpack would fail.
    const tmp = path.join(store, 'tmp');
    await fsp.rm(tmp, { recursive: true });
    await fsp.writeFile(tmp, 'not a directory');
    try {
      assert.deepEqual(await s.apply(null, layer(gzipSync(tarball)), { expectedDiffId: info.diffId }), info);
      await assert.rejects(s.apply(null, layer(tarball)), /ENOTDIR/);
    } finally {
      await fsp.rm(tmp);
      await fsp.mkdir(tmp);
    }
  }));

test('overlay: two commits of the same chain racing leave one layer and no debris', () =>
  withSnapshotter(overlay, async ({ s, store }) => {
    const tarball = await makeTar([{ name: 'f', data: 'x' }]);
    const staged = await Promise.all([1, 2, 3].map(() => s.stage(layer(tarball))));
    assert.equal((await fsp.readdir(path.join(store, 'tmp'))).length, 3);
    const infos = await Promise.all(staged.map((st) => s.commitStaged(st, null)));
    for (const i of infos) assert.deepEqual(i, infos[0]);
    assert.deepEqual(await fsp.readdir(path.join(store, 'tmp')), []);
    assert.deepEqual(await fsp.readdir(path.join(store, 'layers')), [digestHex(infos[0].chainId)]);
    // And a second store opened on the same files after the race agrees.
    assert.deepEqual((await overlay(store)).list(), [infos[0]]);
  }));

test('overlay: deep chains mount through short links when the options pass a page', () =>
  withSnapshotter(overlay, async ({ root }) => {
    // A long root makes the full paths too long for one page; the short links still fit.
    const store = path.join(root, 'x'.repeat(60), 'store');
    const s = await overlay(store);
    let parent: Digest | null = null;
    const infos: LayerInfo[] = [];
    for (let i = 0; i < 30; i++) {
      const info: LayerInfo = await s.apply(
        parent,
        layer(
          await makeTar([
            { name: `layer${i}`, data: `${i}` },
            { name: 'top', data: `${i}` },
          ]),
        ),
      );
      infos.push(info);
      parent = info.chainId;
    }
    const full = s.lowerDirs(parent!).join(':');
    assert.ok(full.length > 4096, `lowerdir alone is ${full.length} bytes`);
    await s.prepare('deep', parent);
    const target = path.join(root, 'mnt');
    await s.mount('deep', target);
    try {
      assert.equal(readFileSync(path.join(target, 'layer0'), 'utf8'), '0');
      assert.equal(readFileSync(path.join(target, 'layer29'), 'utf8'), '29');
      assert.equal(readFileSync(path.join(target, 'top'), 'utf8'), '29');
    } finally {
      await s.unmount(target);
    }
  }));

test('overlay: a root with commas and colons in its path still mounts', () =>
  withSnapshotter(overlay, async ({ root }) => {
    const s = await overlay(path.join(root, 'a,b:c', 'store'));
    const info = await s.apply(null, layer(await makeTar([{ name: 'f', data: 'x' }])));
    await s.prepare('c1', info.chainId);
    const target = path.join(root, 'mnt');
    await s.mount('c1', target);
    try {
      assert.equal(readFileSync(path.join(target, 'f'), 'utf8'), 'x');
    } finally {
      await s.unmount(target);
    }
  }));

test('overlay: a failed apply leaves the store exactly as it was', () =>
  withSnapshotter(overlay, async ({ s, root }) => {
    await s.apply(null, layer(await makeTar([{ name: 'f', data: 'x' }])));
    const before = await treeOf(root);
    const bad = await makeTar([
      { name: 'many/a', data: 'a'.repeat(100_000) },
      { name: 'many/b', data: 'b' },
      { name: 'evil', type: 'link', linkname: '../../x' },
    ]);
    await assert.rejects(s.apply(null, layer(bad)), /escapes the layer root/);
    assert.deepEqual(await treeOf(root), before);
  }));

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { after, test } from 'node:test';
import tar from 'tar-stream';
import { receiveContext } from '../../src/engine/build/context.js';
import { checksumInto, resolveSources } from '../../src/engine/build/copy.js';

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await fsp.rm(d, { recursive: true, force: true });
});

type Entry = [Partial<tar.Header> & { name: string }, string | Buffer | undefined];

async function tarOf(entries: Entry[]): Promise<Buffer> {
  const pack = tar.pack();
  for (const [h, body] of entries) pack.entry(h as tar.Header, body ?? '');
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack as unknown as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

async function tmp(): Promise<string> {
  const d = await fsp.mkdtemp(path.join(os.tmpdir(), 'berth-ctxidx-'));
  dirs.push(d);
  return path.join(d, 'ctx');
}

const big = Buffer.alloc(3 * 1024 * 1024, 7);
const ENTRIES: Entry[] = [
  [{ name: 'Dockerfile' }, 'FROM scratch\n'],
  [{ name: 'app/', type: 'directory', mode: 0o750 }, undefined],
  [{ name: 'app/a.txt', mode: 0o600 }, 'a\n'],
  [{ name: 'app/big.bin' }, big],
  [{ name: 'app/link', type: 'symlink', linkname: 'a.txt' }, undefined],
  [{ name: 'app/hard', type: 'link', linkname: 'app/a.txt' }, undefined],
  [{ name: 'implicit/deep/file.sh', mode: 0o755 }, '#!/bin/sh\n'],
  [{ name: 'up', type: 'symlink', linkname: '/app' }, undefined],
];

for (const memory of [true, false]) {
  test(`the context index checksums sources as copy.ts does on the unpacked files (${memory ? 'in memory' : 'spooled to a file'})`, async () => {
    const body = await tarOf(ENTRIES);
    const ctx = await receiveContext(Readable.from([body]), await tmp(), memory ? undefined : 1024 * 1024);
    try {
      assert.equal((await ctx.readFile('Dockerfile'))?.toString(), 'FROM scratch\n');
      assert.equal((await ctx.readFile('up/big.bin'))?.length, big.length);
      const root = await ctx.root();
      for (const patterns of [['app'], ['.'], ['app/*'], ['up/link'], ['implicit/*/file.sh', 'app/hard'], ['*']]) {
        const fromIndex = createHash('sha256');
        for (const s of ctx.sources(patterns)) ctx.checksum(fromIndex, s);
        const fromDisk = createHash('sha256');
        await checksumInto(fromDisk, await resolveSources(root, patterns, 'build context'));
        assert.equal(fromIndex.digest('hex'), fromDisk.digest('hex'), patterns.join(' '));
      }
      assert.throws(() => ctx.sources(['missing']), /file not found in build context/);
      assert.throws(() => ctx.sources(['../x']), /forbidden path outside the build context/);
      assert.throws(() => ctx.sources(['nothing*']), /no source files were specified/);
    } finally {
      await ctx.remove();
    }
  });
}

test('the context index refuses what the layer extractor refuses, before any step', async () => {
  const cases: [Entry[], RegExp][] = [
    [[[{ name: '../../evil' }, 'x']], /escapes the layer root/],
    [[[{ name: 'l', type: 'symlink', linkname: '../../etc' }, undefined]], /symlink target "..\/..\/etc" escapes/],
    [
      [
        [{ name: 'l', type: 'symlink', linkname: '/etc' }, undefined],
        [{ name: 'l/passwd' }, 'x'],
      ],
      /parent l is a symlink/,
    ],
    [[[{ name: 'h', type: 'link', linkname: 'nowhere' }, undefined]], /is not in the layer/],
    [[[{ name: 'dev', type: 'block-device', devmajor: 8, devminor: 0 }, undefined]], /device nodes/],
  ];
  for (const [entries, want] of cases) {
    const dir = await tmp();
    await assert.rejects(receiveContext(Readable.from([await tarOf(entries)]), dir), want);
  }
});

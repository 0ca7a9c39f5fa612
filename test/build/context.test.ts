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

/** A tar with a header field rewritten and its checksum made right again. */
function patchHeader(body: Buffer, at: number, field: number, value: string): Buffer {
  const b = Buffer.from(body);
  b.write(value, at + field, 'latin1');
  b.fill(0x20, at + 148, at + 156);
  let sum = 0;
  for (let i = at; i < at + 512; i++) sum += b[i];
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, at + 148, 'latin1');
  return b;
}

test('the context reader reads long names and refuses malformed tars as the layer extractor does', async () => {
  const longName = `${'deep/'.repeat(30)}file.txt`;
  const named = await tarOf([
    [{ name: 'Dockerfile' }, 'FROM scratch\n'],
    [{ name: 'x', pax: { path: longName } }, 'pax\n'],
    [{ name: `${'gnu/'.repeat(40)}f` }, 'gnu\n'],
  ]);
  // Another archive after the end blocks is read on, as tar-stream (hence the extractor) does.
  const body = Buffer.concat([named, await tarOf([[{ name: 'after.txt' }, 'after\n']])]);
  for (const memoryLimit of [undefined, 1024]) {
    // One byte at a time too: headers, long headers and content cross chunk boundaries.
    for (const chunks of [[body], [...body].map((b) => Buffer.from([b]))]) {
      const ctx = await receiveContext(Readable.from(chunks), await tmp(), memoryLimit);
      try {
        assert.equal((await ctx.readFile(longName))?.toString(), 'pax\n');
        assert.equal((await ctx.readFile(`${'gnu/'.repeat(40)}f`))?.toString(), 'gnu\n');
        assert.equal((await ctx.readFile('after.txt'))?.toString(), 'after\n');
        const root = await ctx.root();
        assert.equal(await fsp.readFile(path.join(root, longName), 'utf8'), 'pax\n');
        assert.equal(await fsp.readFile(path.join(root, 'after.txt'), 'utf8'), 'after\n');
      } finally {
        await ctx.remove();
      }
    }
  }

  const base = await tarOf([
    [{ name: 'Dockerfile' }, 'FROM scratch\n'],
    [{ name: 'data.bin' }, Buffer.alloc(5000, 3)],
  ]);
  const second = 1024; // the second header
  const corrupt = Buffer.from(base);
  corrupt[second + 10] ^= 1;
  const cases: [string, Buffer, RegExp][] = [
    ['a bad checksum', corrupt, /invalid layer tar: Invalid tar header. Maybe the tar is corrupted/],
    ['an unknown format', patchHeader(base, second, 257, 'xxxxx\0'), /invalid layer tar: Invalid tar header: unknown format/],
    ['a size that is no number', patchHeader(base, second, 124, 'zzzzzzzzzzz'), /invalid layer tar: Invalid header/],
    ['a negative size', patchHeader(base, second, 124, '-0000000001'), /invalid layer tar: Invalid header/],
    ['an unreadable base-256 size', patchHeader(base, second, 124, '\x81'), /invalid layer tar: Invalid header/],
    ['data cut short', base.subarray(0, second + 512 + 2000), /invalid layer tar: Unexpected end of data/],
    ['a header cut short', base.subarray(0, second + 300), /invalid layer tar: Invalid tar header/],
    [
      'a PAX header over 4 MiB',
      await tarOf([[{ name: 'a', pax: { comment: 'x'.repeat(5 * 1024 * 1024) } }, 'a']]),
      /invalid layer tar: Header exceeds max size/,
    ],
  ];
  for (const [what, tarBody, want] of cases)
    await assert.rejects(receiveContext(Readable.from([tarBody]), await tmp()), want, what);

  // The docker CLI's `-f -` context stops right after the last entry's data: that is a whole context.
  const unpadded = await receiveContext(Readable.from([base.subarray(0, second + 512 + 5000)]), await tmp());
  try {
    assert.equal((await unpadded.readFile('data.bin'))?.length, 5000);
  } finally {
    await unpadded.remove();
  }
});

/**
 * The build context's tar reader (common/tarreader.ts) decides cache keys, while the files a COPY
 * takes come from the layer extractor, which reads the same bytes with tar-stream. Whatever the
 * reader accepts, tar-stream must read as the same entries with the same content, or a cache hit
 * could stand for other bytes. Checked on damaged variants of a real archive (a fixed seed: the
 * same cases every run).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import tar from 'tar-stream';
import { TarReader } from '../../src/common/tarreader.js';

interface Seen {
  name: string;
  type: string | null;
  size: number;
  linkname: string | null;
  sha: string;
}

async function pack(): Promise<Buffer> {
  const p = tar.pack();
  const chunks: Buffer[] = [];
  p.on('data', (c) => chunks.push(c as Buffer));
  const done = new Promise<void>((r) => p.on('end', () => r()));
  p.entry({ name: 'Dockerfile' }, 'FROM scratch\nCOPY . /\n');
  p.entry({ name: 'dir', type: 'directory' });
  p.entry({ name: 'dir/data.bin' }, Buffer.alloc(1500, 7));
  p.entry({ name: 'link', type: 'symlink', linkname: 'dir/data.bin' });
  p.entry({ name: `${'long/'.repeat(25)}name.txt` }, 'long\n'); // a PAX path
  p.entry({ name: 'hard', type: 'link', linkname: 'Dockerfile' });
  p.entry({ name: 'tail.txt' }, 'tail\n');
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}

function viaReader(body: Buffer, chunk: number): Seen[] | Error {
  const seen: Seen[] = [];
  const r = new TarReader((h) => {
    const hash = createHash('sha256');
    const entry: Seen = { name: h.name, type: h.type, size: h.size, linkname: h.linkname, sha: '' };
    seen.push(entry);
    return { data: (c) => hash.update(c), end: () => (entry.sha = hash.digest('hex')) };
  });
  try {
    for (let off = 0; off < body.length; off += chunk) r.write(body.subarray(off, off + chunk));
    r.end();
  } catch (err) {
    return err as Error;
  }
  return seen;
}

function viaTarStream(body: Buffer): Promise<Seen[] | Error> {
  return new Promise((resolve) => {
    const seen: Seen[] = [];
    const x = tar.extract();
    x.on('entry', (h, stream, next) => {
      const hash = createHash('sha256');
      stream.on('data', (c) => hash.update(c as Buffer));
      stream.on('end', () => {
        seen.push({
          name: h.name,
          type: h.type ?? null,
          size: h.size ?? 0,
          linkname: h.linkname ?? null,
          sha: hash.digest('hex'),
        });
        next();
      });
      stream.on('error', () => undefined);
    });
    x.on('finish', () => resolve(seen));
    x.on('error', (err: Error) => resolve(err));
    Readable.from([body]).pipe(x);
  });
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

test('what the context reader accepts, tar-stream reads as the same entries and bytes', async () => {
  const good = await pack();
  const reference = viaReader(good, good.length);
  assert.ok(Array.isArray(reference));
  assert.deepEqual(reference, await viaTarStream(good));

  const random = rng(20261202);
  let accepted = 0;
  let refused = 0;
  for (let i = 0; i < 400; i++) {
    const body = Buffer.from(good);
    // damage one to three bytes of the header blocks, now and then cut the archive short
    const headerStarts: number[] = [];
    for (let off = 0; off < body.length; off += 512)
      if (body.subarray(off, off + 512).some((b) => b !== 0)) headerStarts.push(off);
    for (let k = 1 + Math.floor(random() * 3); k > 0; k--) {
      const at = headerStarts[Math.floor(random() * headerStarts.length)] + Math.floor(random() * 512);
      body[at] = Math.floor(random() * 256);
    }
    const cut = random() < 0.15 ? Math.floor(random() * body.length) : body.length;
    const input = body.subarray(0, cut);
    const chunk = 1 + Math.floor(random() * 700);
    const ours = viaReader(input, chunk);
    if (ours instanceof Error) {
      refused++;
      continue;
    }
    accepted++;
    const theirs = await viaTarStream(input);
    assert.ok(
      !(theirs instanceof Error),
      `case ${i}: accepted here, refused by tar-stream: ${String(theirs)}`,
    );
    assert.deepEqual(ours, theirs, `case ${i}`);
  }
  // both kinds of case were exercised
  assert.ok(accepted > 20 && refused > 20, `${accepted} accepted, ${refused} refused`);
});

/**
 * peekStream on streams in every state: a stream that failed or was destroyed before the peek
 * (a download failing while its consumer was still setting up) is an error, never a wait for ever.
 */
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { peekStream } from '../../src/common/decompress.js';

const tick = () => new Promise((r) => setTimeout(r, 5));

test('peekStream: head and whole stream; an already failed or destroyed input rejects', async () => {
  const ok = new PassThrough();
  ok.end(Buffer.from('hello world'));
  const { head, stream } = await peekStream(ok, 4);
  assert.ok(head.length >= 4);
  const all: Buffer[] = [];
  for await (const c of stream) all.push(c as Buffer);
  assert.equal(Buffer.concat(all).toString(), 'hello world');

  const failed = new PassThrough();
  failed.on('error', () => undefined);
  failed.destroy(new Error('boom'));
  await tick();
  await assert.rejects(peekStream(failed, 4), /boom/);

  const destroyed = new PassThrough();
  destroyed.destroy();
  await tick();
  await assert.rejects(peekStream(destroyed, 4), { code: 'ERR_STREAM_PREMATURE_CLOSE' });

  // Destroyed while the peek waits for its bytes.
  const midway = new PassThrough();
  const peeking = peekStream(midway, 4);
  midway.write(Buffer.from('ab'));
  await tick();
  midway.destroy();
  await assert.rejects(peeking, { code: 'ERR_STREAM_PREMATURE_CLOSE' });
});

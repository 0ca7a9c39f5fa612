import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { berth, FIXTURES, request, startDaemon, type TestDaemon } from '../helpers/daemon.js';

const BB = 'busybox:1.38.0-musl';
const BYTES = 2_000_000;
const RATE = 8_000_000; // 8mbit = 1 MB/s
let d: TestDaemon;
let gateway = '';

before(async () => {
  d = await startDaemon();
  gateway = (JSON.parse(readFileSync(path.join(d.dir, 'daemon.json'), 'utf8')) as { bip: string }).bip.split(
    '/',
  )[0];
  const r = await berth(d, ['load', '-i', path.join(FIXTURES, 'busybox-1.38.0-musl-docker-archive.tar')]);
  assert.equal(r.code, 0, r.stderr);
});
after(async () => {
  await d.stop();
});

/** Seconds the container takes to send BYTES to a listener of ours on the bridge's address. */
async function egressSeconds(container: string): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, gateway, () => r()));
  const port = (srv.address() as net.AddressInfo).port;
  const done = new Promise<number>((resolve, reject) => {
    srv.on('connection', (sock) => {
      let got = 0;
      let start = 0;
      sock.on('data', (c: Buffer) => {
        if (!start) start = performance.now();
        got += c.length;
        if (got >= BYTES) {
          resolve((performance.now() - start) / 1000);
          sock.destroy();
        }
      });
      sock.on('error', () => undefined);
    });
    setTimeout(() => reject(new Error('egress transfer timed out')), 30_000).unref();
  });
  const send = berth(d, [
    'exec',
    container,
    'sh',
    '-c',
    `head -c ${BYTES} /dev/zero | nc ${gateway} ${port}`,
  ]);
  try {
    return await done;
  } finally {
    srv.close();
    await send;
  }
}

/**
 * Seconds to push BYTES into the container, until its reader has them all: busybox nc does not end
 * on EOF, so the reader stops after BYTES and a little more is sent to make nc exit and close.
 */
async function ingressSeconds(container: string, ip: string): Promise<number> {
  const listen = berth(d, [
    'exec',
    container,
    'sh',
    '-c',
    `rm -f /f; mkfifo /f; nc -l -p 5001 <>/f | head -c ${BYTES} | wc -c`,
  ]);
  let sock: net.Socket | undefined;
  for (let i = 0; i < 50 && !sock; i++) {
    sock = await new Promise<net.Socket | undefined>((resolve) => {
      const s = net.connect({ host: ip, port: 5001 });
      s.once('connect', () => resolve(s));
      s.once('error', () => resolve(undefined));
    });
    if (!sock) await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(sock, 'connected to the container');
  const start = performance.now();
  let closed = false;
  const done = new Promise<void>((r) =>
    sock.once('close', () => {
      closed = true;
      r();
    }),
  );
  sock.on('error', () => undefined);
  const chunk = Buffer.alloc(64 * 1024);
  for (let sent = 0; !closed && sent < BYTES + 4 * 1024 * 1024; sent += chunk.length)
    if (!sock.write(chunk)) await Promise.race([new Promise((r) => sock.once('drain', r)), done]);
  await done;
  const secs = (performance.now() - start) / 1000;
  const got = await listen;
  assert.equal(got.stdout.trim(), String(BYTES), got.stderr);
  return secs;
}

test('--network-rate limits egress and ingress with tc; inspect shows it; update changes it', async () => {
  const r = await berth(d, ['run', '-d', '--name', 'slow', '--network-rate', '8mbit', BB, 'sleep', '300']);
  assert.equal(r.code, 0, r.stderr);
  try {
    const ins = JSON.parse((await request(d, 'GET', '/containers/slow/json')).body.toString()) as {
      HostConfig: { NetworkRate: string };
      NetworkSettings: { IPAddress: string };
    };
    assert.equal(ins.HostConfig.NetworkRate, '8mbit');
    const ideal = (BYTES * 8) / RATE; // 2 s
    const out = await egressSeconds('slow');
    assert.ok(
      out > ideal * 0.7 && out < ideal * 3,
      `egress took ${out.toFixed(2)} s, expected about ${ideal} s`,
    );
    const inn = await ingressSeconds('slow', ins.NetworkSettings.IPAddress);
    assert.ok(
      inn > ideal * 0.7 && inn < ideal * 3,
      `ingress took ${inn.toFixed(2)} s, expected about ${ideal} s`,
    );
    // lifted: the same transfer is much faster
    const up = await request(d, 'POST', '/containers/slow/update', JSON.stringify({ NetworkRate: '' }), {
      'Content-Type': 'application/json',
    });
    assert.equal(up.status, 200, up.body.toString());
    const fast = await egressSeconds('slow');
    assert.ok(fast < ideal / 3, `unlimited egress took ${fast.toFixed(2)} s`);
    const bad = await request(d, 'POST', '/containers/slow/update', JSON.stringify({ NetworkRate: 'fast' }), {
      'Content-Type': 'application/json',
    });
    assert.equal(bad.status, 400);
    const again = await request(
      d,
      'POST',
      '/containers/slow/update',
      JSON.stringify({ NetworkRate: '8mbit' }),
      {
        'Content-Type': 'application/json',
      },
    );
    assert.equal(again.status, 200);
    const slowAgain = await egressSeconds('slow');
    assert.ok(slowAgain > ideal * 0.7, `re-limited egress took ${slowAgain.toFixed(2)} s`);
  } finally {
    await berth(d, ['rm', '-f', 'slow']);
  }
});

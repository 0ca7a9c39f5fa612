import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { docker, ROOT, run, startDaemon, type TestDaemon } from '../helpers/daemon.js';

let d: TestDaemon;

/**
 * A redis image from Debian's redis-server: the binary and the libraries ldd lists, as a root
 * file system tar, made once per redis-server build and kept in .cache.
 */
function redisRootfs(): string {
  const bin = '/usr/bin/redis-server';
  const libs = execFileSync('ldd', [bin], { encoding: 'utf8' })
    .split('\n')
    .map((l) => /(\/\S+) \(0x/.exec(l)?.[1])
    .filter((p): p is string => !!p);
  const files = [bin, ...libs].map((p) => p.slice(1));
  const key = createHash('sha256')
    .update(readFileSync(bin))
    .update(files.join('\n'))
    .digest('hex')
    .slice(0, 16);
  const dir = path.join(ROOT, '.cache', 'network');
  const out = path.join(dir, `redis-rootfs-${key}.tar`);
  if (existsSync(out)) return out;
  mkdirSync(dir, { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  execFileSync('tar', ['-chf', tmp, '-C', '/', ...files]);
  renameSync(tmp, out);
  return out;
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

before(async () => {
  d = await startDaemon();
});
after(async () => {
  await d.stop();
});

test('docker CLI: run -d -p 127.0.0.1:HOST:6379 redis, then redis-cli PING through the published port', async () => {
  const imp = await docker(d, [
    'import',
    '-c',
    'CMD ["/usr/bin/redis-server", "--protected-mode", "no", "--save", ""]',
    '-c',
    'EXPOSE 6379',
    redisRootfs(),
    'redis',
  ]);
  assert.equal(imp.code, 0, imp.stderr);
  const port = await freePort();
  const r = await docker(d, ['run', '-d', '--name', 'cache', '-p', `127.0.0.1:${port}:6379`, 'redis']);
  assert.equal(r.code, 0, r.stderr);
  try {
    let pong = '';
    for (let i = 0; i < 50 && pong !== 'PONG'; i++) {
      const p = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), 'PING'], { timeoutMs: 5000 });
      pong = p.stdout.trim();
      if (pong !== 'PONG') await new Promise((res) => setTimeout(res, 100));
    }
    assert.equal(pong, 'PONG');
    const set = await run('redis-cli', ['-p', String(port), 'SET', 'k', 'berth']);
    assert.equal(set.stdout.trim(), 'OK');
    const get = await run('redis-cli', ['-p', String(port), 'GET', 'k']);
    assert.equal(get.stdout.trim(), 'berth');
    const ps = await docker(d, ['port', 'cache']);
    assert.equal(ps.stdout, `6379/tcp -> 127.0.0.1:${port}\n`);
  } finally {
    await docker(d, ['rm', '-f', 'cache']);
  }
});

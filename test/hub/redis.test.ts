import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import * as net from 'node:net';
import { test } from 'node:test';
import { DEFAULT_CACHE } from '../../src/hub/debian.js';
import { BERTH, berth, run, startDaemon } from '../helpers/daemon.js';
import { startTestHub } from './hubtest.js';

// Like the debian seed test: runs once debian's layer is cached (debootstrap takes minutes). The
// redis build itself needs Debian's package mirror (apt-get in RUN): the test says so when it is
// unreachable.
const cached =
  existsSync(DEFAULT_CACHE) &&
  readdirSync(DEFAULT_CACHE).some((f) => /^debian-bookworm-[0-9a-f]{64}\.json$/.test(f));
const mirror = spawnSync('getent', ['hosts', 'deb.debian.org']).status === 0;

function ping(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write('PING\r\n'));
    let data = '';
    s.on('data', (c: Buffer) => {
      data += c.toString();
      if (data.includes('\r\n')) {
        s.end();
        resolve(data);
      }
    });
    s.on('error', reject);
    s.setTimeout(5000, () => reject(new Error('no answer')));
  });
}

test(
  "the brief's redis: seed --with debian,redis builds and pushes library/redis; a fresh daemon pulls it, runs it, and it answers PING",
  {
    skip:
      (!cached && `no cached debian build in ${DEFAULT_CACHE}`) ||
      (!mirror && "Debian's mirror (deb.debian.org) is unreachable: apt-get cannot run"),
  },
  async () => {
    const hub = await startTestHub();
    const builder = await startDaemon();
    try {
      const seed = await run(process.execPath, [
        BERTH,
        '-H',
        builder.host,
        'hub',
        'seed',
        '--registry',
        hub.addr,
        '--no-busybox',
        '--with',
        'debian,redis',
      ]);
      assert.equal(seed.code, 0, seed.stderr);
      assert.match(seed.stdout, /library\/redis:latest: digest: sha256:[0-9a-f]{64}/);
      assert.match(seed.stderr, /Step 2\/6 : RUN apt-get update/);

      const d = await startDaemon([], { 'registry-mirrors': [hub.url] });
      try {
        const port = 20000 + (process.pid % 20000);
        const r = await berth(d, ['run', '-d', '--name', 'redis1', '-p', `127.0.0.1:${port}:6379`, 'redis']);
        assert.equal(r.code, 0, r.stderr);
        let answer = '';
        for (let i = 0; i < 50 && !answer; i++) {
          answer = await ping(port).catch(() => '');
          if (!answer) await new Promise((res) => setTimeout(res, 200));
        }
        assert.equal(answer, '+PONG\r\n');
        const logs = await berth(d, ['logs', 'redis1']);
        assert.match(logs.stdout, /Ready to accept connections/);
        const cfg = await berth(d, ['inspect', '--format', '{{json .Config.ExposedPorts}}', 'redis']);
        assert.equal(cfg.stdout.trim(), '{"6379/tcp":{}}');
        assert.equal((await berth(d, ['rm', '-f', 'redis1'])).code, 0);
      } finally {
        await d.stop();
      }
    } finally {
      await builder.stop();
      await hub.stop();
    }
  },
);

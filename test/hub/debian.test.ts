import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { test } from 'node:test';
import { DEFAULT_CACHE } from '../../src/hub/debian.js';
import { BERTH, berth, run, startDaemon } from '../helpers/daemon.js';
import { startTestHub } from './hubtest.js';

// debootstrap takes minutes, so this test runs only once the layer is cached (built by
// `berth hub seed --with debian` or `BERTH_SEED_DEBIAN=1 scripts/setup.sh`); from the cache a seed
// takes seconds.
const cached =
  existsSync(DEFAULT_CACHE) &&
  readdirSync(DEFAULT_CACHE).some((f) => /^debian-bookworm-[0-9a-f]{64}\.json$/.test(f));

test(
  'seed --with debian: bookworm-slim from the cache, same digest every time, runs bash in berthd',
  { skip: !cached && `no cached debian build in ${DEFAULT_CACHE}` },
  async () => {
    const hub = await startTestHub();
    try {
      const t0 = Date.now();
      const seed = await run(process.execPath, [
        BERTH,
        'hub',
        'seed',
        '--registry',
        hub.addr,
        '--no-busybox',
        '--with',
        'debian',
      ]);
      assert.equal(seed.code, 0, seed.stderr);
      assert.ok(Date.now() - t0 < 60_000, `seeding from the cache took ${Date.now() - t0} ms`);
      const digest = /library\/debian:bookworm-slim: digest: (sha256:[0-9a-f]{64})/.exec(seed.stdout)?.[1];
      assert.ok(digest, seed.stdout);
      const again = await run(process.execPath, [
        BERTH,
        'hub',
        'seed',
        '--registry',
        hub.addr,
        '--no-busybox',
        '--with',
        'debian',
      ]);
      assert.ok(again.stdout.includes(`library/debian:bookworm-slim: digest: ${digest}`));

      const d = await startDaemon([], { 'registry-mirrors': [hub.url] });
      try {
        const r = await berth(d, [
          'run',
          '--rm',
          '--network',
          'none',
          'debian:bookworm-slim',
          'bash',
          '-c',
          'cat /etc/debian_version; echo $PATH; test -d /usr/share/man/man1 || echo no-man; ls /usr/share/doc/bash; dpkg -s bash | grep ^Status',
        ]);
        assert.equal(r.code, 0, r.stderr);
        const lines = r.stdout.trim().split('\n');
        assert.match(lines[0], /^12\.\d+$/);
        assert.equal(lines[1], '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
        assert.equal(lines[2], 'no-man');
        assert.equal(lines[3], 'copyright');
        assert.equal(lines[4], 'Status: install ok installed');
        const cmd = await berth(d, [
          'image',
          'inspect',
          '-f',
          '{{json .Config.Cmd}}',
          'debian:bookworm-slim',
        ]);
        assert.equal(cmd.stdout.trim(), '["bash"]');
      } finally {
        await d.stop();
      }
    } finally {
      await hub.stop();
    }
  },
);

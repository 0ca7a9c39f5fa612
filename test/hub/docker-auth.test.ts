import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { BERTH, docker, DOCKER_CLI, run, startDaemon } from '../helpers/daemon.js';

async function freePort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

test(
  'the real docker CLI against an auth hub embedded in berthd: login, anonymous pull, push to own namespace, denied elsewhere, search',
  { skip: !existsSync(DOCKER_CLI) && 'no docker CLI' },
  async () => {
    const root = mkdtempSync(path.join(os.tmpdir(), 'berth-authhub-'));
    const addr = `127.0.0.1:${await freePort()}`;
    try {
      const seed = await run(process.execPath, [BERTH, 'hub', 'seed', '--root', root]);
      assert.equal(seed.code, 0, seed.stderr);
      writeFileSync(path.join(root, 'config.json'), JSON.stringify({ auth: true }));
      const add = await run(process.execPath, [BERTH, 'hub', 'user', 'add', 'alice', '--root', root], {
        input: 'alice-secret\n',
      });
      assert.equal(add.code, 0, add.stderr);
      const d = await startDaemon([], { 'hub-listen': addr, 'hub-root': root });
      try {
        const anon = await docker(d, ['pull', `${addr}/library/busybox`]);
        assert.equal(anon.code, 0, anon.stderr);
        const bad = await docker(d, ['login', addr, '-u', 'alice', '--password-stdin'], { input: 'wrong\n' });
        assert.notEqual(bad.code, 0);
        const login = await docker(d, ['login', addr, '-u', 'alice', '--password-stdin'], {
          input: 'alice-secret\n',
        });
        assert.equal(login.code, 0, login.stderr);
        assert.match(login.stdout, /Login Succeeded/);
        assert.equal((await docker(d, ['tag', `${addr}/library/busybox`, `${addr}/alice/bb:1`])).code, 0);
        const push = await docker(d, ['push', `${addr}/alice/bb:1`]);
        assert.equal(push.code, 0, push.stderr + push.stdout);
        assert.match(push.stdout, /1: digest: sha256:[0-9a-f]{64}/);
        assert.equal((await docker(d, ['tag', `${addr}/library/busybox`, `${addr}/library/mine:1`])).code, 0);
        const denied = await docker(d, ['push', `${addr}/library/mine:1`]);
        assert.notEqual(denied.code, 0);
        assert.match(denied.stderr + denied.stdout, /denied/);
        const search = await docker(d, ['search', '--format', '{{.Name}}', `${addr}/bb`]);
        assert.equal(search.code, 0, search.stderr);
        assert.equal(search.stdout, 'alice/bb\n');
      } finally {
        await d.stop();
      }
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  },
);

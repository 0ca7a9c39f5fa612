import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { BERTH, berth, cleanupDir, FIXTURES, run, startDaemon, type TestDaemon } from '../helpers/daemon.js';

let d: TestDaemon;
before(async () => {
  d = await startDaemon();
  const r = await berth(d, ['load', '-i', path.join(FIXTURES, 'busybox-1.38.0-musl-docker-archive.tar')]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Loaded image: busybox:1.38.0-musl/);
});
after(async () => {
  await d.stop();
});

test('berth images: table, -q, --no-trunc, --format, json, --digests', async () => {
  const t = await berth(d, ['images']);
  assert.equal(t.code, 0, t.stderr);
  const lines = t.stdout.trimEnd().split('\n');
  assert.match(lines[0], /^REPOSITORY {3,}TAG {3,}IMAGE ID {3,}CREATED {3,}SIZE$/);
  assert.match(lines[1], /^busybox {3,}1\.38\.0-musl {3,}654fc8fd[0-9a-f]{4} {3,}\S.* {3,}\d/);
  const q = await berth(d, ['images', '-q']);
  assert.match(q.stdout, /^[0-9a-f]{12}\n$/);
  const nt = await berth(d, ['images', '-q', '--no-trunc']);
  assert.match(nt.stdout, /^sha256:[0-9a-f]{64}\n$/);
  const f = await berth(d, ['images', '--format', '{{.Repository}}:{{.Tag}} {{.ID}}']);
  assert.match(f.stdout, /^busybox:1\.38\.0-musl [0-9a-f]{12}\n$/);
  const j = await berth(d, ['images', '--format', 'json']);
  const obj = JSON.parse(j.stdout);
  assert.equal(obj.Repository, 'busybox');
  assert.equal(obj.Tag, '1.38.0-musl');
  const tbl = await berth(d, ['images', '--format', 'table {{.Repository}}\t{{.Tag}}']);
  assert.match(tbl.stdout, /^REPOSITORY {3,}TAG\nbusybox {3,}1\.38\.0-musl\n$/);
  const dg = await berth(d, ['images', '--digests']);
  assert.match(dg.stdout.split('\n')[0], /DIGEST/);
  const bad = await berth(d, ['images', '--format', '{{.Nope}}']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /Nope/);
});

test('berth tag / image inspect -f / history / rmi / exit codes', async () => {
  assert.equal((await berth(d, ['tag', 'busybox:1.38.0-musl', 'mine:1'])).code, 0);
  const i = await berth(d, ['image', 'inspect', '-f', '{{.Os}} {{index .RepoTags 0}}', 'mine:1']);
  assert.equal(i.code, 0, i.stderr);
  assert.match(i.stdout, /^linux (busybox:1\.38\.0-musl|mine:1)\n$/);
  const h = await berth(d, ['history', 'mine:1']);
  assert.match(h.stdout, /^IMAGE {3,}CREATED {3,}CREATED BY {3,}SIZE {3,}COMMENT/);
  const rm = await berth(d, ['rmi', 'mine:1']);
  assert.equal(rm.stdout, 'Untagged: mine:1\n');
  const missing = await berth(d, ['rmi', 'nosuch:1']);
  assert.equal(missing.code, 1);
  assert.equal(missing.stderr, 'Error response from daemon: No such image: nosuch:1\n');
  const insp = await berth(d, ['inspect', 'nosuch']);
  assert.equal(insp.code, 1);
  assert.match(insp.stderr, /No such object: nosuch/);
  const flag = await berth(d, ['images', '--bogus']);
  assert.equal(flag.code, 125);
  const ref = await berth(d, ['tag', 'busybox:1.38.0-musl', 'Bad/Name']);
  assert.equal(ref.code, 1);
  assert.match(ref.stderr, /invalid reference format/);
});

test('berth save | berth load round trip and import from stdin', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-cli-'));
  try {
    const out = path.join(dir, 'bb.tar');
    const s = await berth(d, ['save', '-o', out, 'busybox:1.38.0-musl']);
    assert.equal(s.code, 0, s.stderr);
    const d2 = await startDaemon();
    try {
      const l = await berth(d2, ['load'], { input: readFileSync(out) });
      assert.equal(l.code, 0, l.stderr);
      assert.match(l.stdout, /Loaded image: busybox:1.38.0-musl/);
      const imp = await berth(d2, ['import', '-', 'alp:1', '-c', 'CMD ["/bin/sh"]'], {
        input: readFileSync(path.join(FIXTURES, 'alpine-minirootfs-3.20.3-x86_64.tar.gz')),
      });
      assert.equal(imp.code, 0, imp.stderr);
      assert.match(imp.stdout, /^sha256:[0-9a-f]{64}\n$/);
    } finally {
      await d2.stop();
    }
  } finally {
    await cleanupDir(dir);
  }
});

test('the CLI starts berthd itself when the default socket does not answer', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-autostart-'));
  const env = {
    BERTH_EXEC_ROOT: path.join(dir, 'run'),
    BERTH_DATA_ROOT: path.join(dir, 'data'),
    BERTH_HOST: '',
    DOCKER_HOST: '',
  };
  try {
    const r = await run(process.execPath, [BERTH, 'images', '-q'], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /Starting berthd in the background/);
    const st = await run(process.execPath, [BERTH, 'daemon', 'status'], { env });
    assert.equal(st.code, 0, st.stdout + st.stderr);
    assert.match(st.stdout, /berthd is running \(pid \d+/);
    const again = await run(process.execPath, [BERTH, 'images', '-q'], { env });
    assert.doesNotMatch(again.stderr, /Starting berthd/);
    const stop = await run(process.execPath, [BERTH, 'daemon', 'stop'], { env });
    assert.equal(stop.code, 0, stop.stderr);
    assert.match(stop.stdout, /berthd stopped/);
    const st2 = await run(process.execPath, [BERTH, 'daemon', 'status'], { env });
    assert.equal(st2.code, 3);
  } finally {
    const pidFile = path.join(dir, 'run', 'berthd.pid');
    if (existsSync(pidFile)) spawnSync('kill', [readFileSync(pidFile, 'utf8').trim()]);
    await cleanupDir(dir);
  }
});

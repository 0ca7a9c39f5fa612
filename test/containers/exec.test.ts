import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { PassThrough } from 'node:stream';
import { after, before, test } from 'node:test';
import Docker from 'dockerode';
import {
  berth,
  DOCKER_CLI,
  docker,
  FIXTURES,
  request,
  startDaemon,
  type TestDaemon,
} from '../helpers/daemon.js';

const BB = 'busybox:1.38.0-musl';
let d: TestDaemon;

before(async () => {
  d = await startDaemon();
  assert.equal(
    (await berth(d, ['load', '-i', path.join(FIXTURES, 'busybox-1.38.0-musl-docker-archive.tar')])).code,
    0,
  );
  assert.equal((await berth(d, ['run', '-d', '--name', 'ex', BB, 'sleep', '120'])).code, 0);
});
after(async () => {
  await d.stop();
});

test('berth exec: output apart, exit code, stdin, env, workdir, user', async () => {
  const r = await berth(d, [
    'exec',
    '-e',
    'X=1',
    '-w',
    '/tmp',
    '-u',
    'nobody',
    'ex',
    'sh',
    '-c',
    'echo $X $(pwd) $(id -u); echo err >&2; exit 42',
  ]);
  assert.equal(r.code, 42);
  assert.equal(r.stdout, '1 /tmp 65534\n');
  assert.equal(r.stderr, 'err\n');
  const i = await berth(d, ['exec', '-i', 'ex', 'cat'], { input: 'through stdin\n' });
  assert.equal(i.stdout, 'through stdin\n');
  const nf = await berth(d, ['exec', 'ex', 'nosuch']);
  assert.equal(nf.code, 126);
  assert.match(nf.stdout, /executable file not found/);
});

test('exec into a stopped container is a 409', async () => {
  assert.equal((await berth(d, ['create', '--name', 'stopped', BB, 'true'])).code, 0);
  const r = await request(d, 'POST', '/containers/stopped/exec', JSON.stringify({ Cmd: ['true'] }), {
    'Content-Type': 'application/json',
  });
  assert.equal(r.status, 409);
  assert.match(JSON.parse(r.body.toString()).message, /is not running/);
  const bad = await request(d, 'POST', '/containers/ex/exec', JSON.stringify({ Cmd: [] }), {
    'Content-Type': 'application/json',
  });
  assert.equal(bad.status, 400);
});

test('dockerode: create/start/wait/logs and a demuxed exec', async () => {
  const client = new Docker({ socketPath: d.socket });
  const c = await client.createContainer({ Image: BB, Cmd: ['sh', '-c', 'echo from-dockerode'] });
  await c.start();
  const w = (await c.wait()) as { StatusCode: number };
  assert.equal(w.StatusCode, 0);
  const logs = (await c.logs({ stdout: true, stderr: true })) as unknown as Buffer;
  assert.match(logs.toString(), /from-dockerode/);
  await c.remove();
  const ex = await client
    .getContainer('ex')
    .exec({ Cmd: ['sh', '-c', 'echo o; echo e >&2'], AttachStdout: true, AttachStderr: true });
  const stream = await ex.start({ hijack: true, stdin: false });
  const out = new PassThrough();
  const err = new PassThrough();
  let o = '';
  let e = '';
  out.on('data', (c: Buffer) => (o += c.toString()));
  err.on('data', (c: Buffer) => (e += c.toString()));
  client.modem.demuxStream(stream, out, err);
  await new Promise((r) => stream.on('end', r));
  assert.equal(o, 'o\n');
  assert.equal(e, 'e\n');
  const info = await ex.inspect();
  assert.equal(info.ExitCode, 0);
});

test(
  'the real docker CLI: exec and exec -it',
  { skip: !existsSync(DOCKER_CLI) && 'no docker CLI' },
  async () => {
    const r = await docker(d, ['exec', 'ex', 'sh', '-c', 'echo hi; exit 3']);
    assert.equal(r.code, 3);
    assert.equal(r.stdout, 'hi\n');
    if (!existsSync('/usr/bin/tmux')) return;
    const session = `berth-exec-${process.pid}`;
    spawnSync('tmux', [
      'new-session',
      '-d',
      '-s',
      session,
      '-x',
      '80',
      '-y',
      '24',
      `DOCKER_HOST=${d.host} ${DOCKER_CLI} exec -it ex sh`,
    ]);
    try {
      let screen = '';
      for (let i = 0; i < 50 && !screen.includes('/ #'); i++) {
        await new Promise((res) => setTimeout(res, 100));
        screen = spawnSync('tmux', ['capture-pane', '-t', session, '-p']).stdout.toString();
      }
      spawnSync('tmux', ['send-keys', '-t', session, 'echo $((6*7)); stty size', 'Enter']);
      for (let i = 0; i < 50 && !/^24 80$/m.test(screen); i++) {
        await new Promise((res) => setTimeout(res, 100));
        screen = spawnSync('tmux', ['capture-pane', '-t', session, '-p']).stdout.toString();
      }
      assert.match(screen, /^42$/m);
      assert.match(screen, /^24 80$/m);
    } finally {
      spawnSync('tmux', ['kill-session', '-t', session]);
    }
  },
);

test('stats and top: from the cgroup, through berth and the real docker CLI', async () => {
  const run = await berth(d, [
    'run',
    '-d',
    '--name',
    'busy',
    '-m',
    '64m',
    BB,
    'sh',
    '-c',
    'while true; do :; done',
  ]);
  assert.equal(run.code, 0, run.stderr);
  const s = await berth(d, [
    'stats',
    '--no-stream',
    '--format',
    '{{.Name}} {{.CPUPerc}} {{.MemUsage}} {{.PIDs}}',
    'busy',
  ]);
  assert.equal(s.code, 0, s.stderr);
  const m = /^busy (\d+\.\d\d)% \S+ \/ 64MiB 1\n$/.exec(s.stdout);
  assert.ok(m, s.stdout);
  assert.ok(Number(m[1]) > 10, `a busy loop uses CPU: ${m[1]}%`);
  const top = await berth(d, ['top', 'busy']);
  assert.match(top.stdout, /^UID\s+PID\s+PPID/);
  assert.match(top.stdout, /sh -c while true; do :; done/);
  if (existsSync(DOCKER_CLI)) {
    const ds = await docker(d, ['stats', '--no-stream', 'busy']);
    assert.equal(ds.code, 0, ds.stderr);
    assert.match(ds.stdout, /busy\s+\d+\.\d\d%\s+\S+ \/ 64MiB/);
    const dt = await docker(d, ['top', 'busy']);
    assert.match(dt.stdout, /while true/);
  }
  assert.equal((await berth(d, ['rm', '-f', 'busy'])).code, 0);
});

test('events: history with --since/--until and filters, through berth and the docker CLI', async () => {
  const t0 = (Date.now() / 1000 - 1).toFixed(3);
  assert.equal((await berth(d, ['run', '--rm', '--name', 'evt', '-l', 'k=v', BB, 'true'])).code, 0);
  const until = (Date.now() / 1000 + 0.5).toFixed(3);
  const all = await berth(d, [
    'events',
    '--since',
    t0,
    '--until',
    until,
    '--filter',
    'container=evt',
    '--format',
    '{{.Action}}',
  ]);
  assert.equal(all.code, 0, all.stderr);
  const actions = all.stdout.trim().split('\n');
  for (const a of ['create', 'start', 'die', 'destroy']) assert.ok(actions.includes(a), `${a} in ${actions}`);
  const die = await berth(d, [
    'events',
    '--since',
    t0,
    '--until',
    until,
    '--filter',
    'event=die',
    '--filter',
    'label=k=v',
  ]);
  assert.match(die.stdout, /container die [0-9a-f]{64} \(.*exitCode=0.*name=evt/);
  const bad = await request(d, 'GET', `/events?filters=${encodeURIComponent('{"nope":["x"]}')}`);
  assert.equal(bad.status, 400);
  if (existsSync(DOCKER_CLI)) {
    const de = await docker(d, [
      'events',
      '--since',
      t0,
      '--until',
      until,
      '--filter',
      'container=evt',
      '--format',
      '{{.Status}}',
    ]);
    assert.equal(de.code, 0, de.stderr);
    assert.match(de.stdout, /^create$/m);
    assert.match(de.stdout, /^destroy$/m);
  }
});

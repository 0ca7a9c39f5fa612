import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { buildHelloWorld, writeOciLayout } from '../../src/hello/image.js';
import { GREETING } from '../../src/hello/greeting.js';
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
  const r = await berth(d, ['load', '-i', path.join(FIXTURES, 'busybox-1.38.0-musl-docker-archive.tar')]);
  assert.equal(r.code, 0, r.stderr);
});
after(async () => {
  await d.stop();
});

const json = (b: Buffer) => JSON.parse(b.toString());

test('run --rm: output, stdout and stderr kept apart, exit code, container gone', async () => {
  const r = await berth(d, ['run', '--rm', BB, 'sh', '-c', 'echo out; echo err >&2; exit 3']);
  assert.equal(r.code, 3);
  assert.equal(r.stdout, 'out\n');
  assert.equal(r.stderr, 'err\n');
  const ps = await berth(d, ['ps', '-aq']);
  assert.equal(ps.stdout, '');
});

test('run -i streams stdin and closes it on EOF', async () => {
  const r = await berth(d, ['run', '--rm', '-i', BB, 'sh', '-c', 'cat; echo done'], {
    input: 'line1\nline2\n',
  });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'line1\nline2\ndone\n');
});

test('isolation: namespaces, hostname, default capabilities, masked /proc, cgroup limits', async () => {
  const r = await berth(d, [
    'run',
    '--rm',
    '--hostname',
    'boxy',
    '-m',
    '64m',
    '--pids-limit',
    '33',
    BB,
    'sh',
    '-c',
    'hostname; grep CapBnd /proc/self/status; cat /sys/fs/cgroup/memory/memory.limit_in_bytes; cat /sys/fs/cgroup/pids/pids.max; echo $$; cat /proc/timer_list | wc -c; awk \'$5=="/proc/sys"{print substr($6,1,3)}\' /proc/self/mountinfo',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines[0], 'boxy');
  assert.match(lines[1], /CapBnd:\s+00000000a80425fb/);
  assert.equal(lines[2], String(64 * 1024 * 1024));
  assert.equal(lines[3], '33');
  assert.equal(lines[4], '1', 'the command is PID 1 in its own pid namespace');
  assert.equal(lines[5], '0', '/proc/timer_list is masked');
  assert.equal(lines[6], 'ro,', '/proc/sys is read-only');
});

test('the OOM killer acts on --memory', async () => {
  const r = await berth(d, [
    'run',
    '--name',
    'oomer',
    '-m',
    '20m',
    '--memory-swap',
    '20m',
    BB,
    'sh',
    '-c',
    'x=$(head -c 100000000 /dev/zero | tr "\\0" a); echo survived',
  ]);
  assert.equal(r.code, 137, r.stdout + r.stderr);
  const i = await berth(d, ['inspect', '-f', '{{.State.OOMKilled}} {{.State.ExitCode}}', 'oomer']);
  assert.equal(i.stdout.trim(), 'true 137');
  assert.equal((await berth(d, ['rm', 'oomer'])).code, 0);
});

test('exit codes: 127 no such command, 126 a directory, 125 bad flags and unknown image', async () => {
  const nf = await berth(d, ['run', '--rm', BB, 'nosuchcommand']);
  assert.equal(nf.code, 127, nf.stderr);
  assert.match(nf.stderr, /executable file not found/);
  const dir = await berth(d, ['run', '--rm', BB, '/etc']);
  assert.equal(dir.code, 126, dir.stderr);
  const mem = await berth(d, ['run', '--rm', '--memory', '1x', BB, 'true']);
  assert.equal(mem.code, 125);
  assert.match(mem.stderr, /invalid argument "1x" for "-m, --memory" flag/);
  const cpus = await berth(d, ['run', '--rm', '--cpus', '-1', BB, 'true']);
  assert.equal(cpus.code, 125);
  const img = await berth(d, ['run', '--rm', 'nosuchimage:1', 'true']);
  assert.equal(img.code, 125);
  assert.match(img.stderr, /Unable to find image 'nosuchimage:1' locally/);
  await berth(d, ['container', 'prune', '-f']);
});

test('detached: logs, ps filters, name conflicts, stop with timeout, rm rules, no leftovers', async () => {
  const run = await berth(d, [
    'run',
    '-d',
    '--name',
    'det',
    '-l',
    'team=a',
    BB,
    'sh',
    '-c',
    'echo a; echo b >&2; sleep 60',
  ]);
  assert.equal(run.code, 0, run.stderr);
  const id = run.stdout.trim();
  assert.match(id, /^[0-9a-f]{64}$/);
  const dup = await berth(d, ['run', '-d', '--name', 'det', BB, 'true']);
  assert.equal(dup.code, 125);
  assert.match(dup.stderr, /Conflict. The container name "\/det" is already in use/);
  for (let i = 0; i < 50 && !(await berth(d, ['logs', 'det'])).stdout.includes('a'); i++)
    await new Promise((r) => setTimeout(r, 100));
  const logs = await berth(d, ['logs', 'det']);
  assert.equal(logs.stdout, 'a\n');
  assert.equal(logs.stderr, 'b\n');
  const ts = await berth(d, ['logs', '-t', '--tail', '1', 'det']);
  assert.match(ts.stdout + ts.stderr, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z b\n$/);
  const ps = await berth(d, ['ps', '--filter', 'label=team=a', '--format', '{{.Names}} {{.State}}']);
  assert.equal(ps.stdout, 'det running\n');
  const rmRunning = await berth(d, ['rm', 'det']);
  assert.equal(rmRunning.code, 1);
  assert.match(rmRunning.stderr, /You cannot remove a running container/);
  const rmi = await request(d, 'DELETE', `/images/${BB}`);
  assert.equal(rmi.status, 409, 'an image in use is not removed');
  const t0 = Date.now();
  assert.equal((await berth(d, ['stop', '-t', '1', 'det'])).code, 0);
  assert.ok(Date.now() - t0 < 8000);
  const st = await berth(d, ['inspect', '-f', '{{.State.Status}} {{.State.ExitCode}}', 'det']);
  assert.equal(st.stdout.trim(), 'exited 137');
  assert.equal((await berth(d, ['rm', 'det'])).code, 0);
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8');
  assert.ok(!mounts.includes(id), 'no mount of the container remains');
  assert.ok(!existsSync(`/sys/fs/cgroup/memory/berth/${id}`), 'no cgroup of the container remains');
  assert.ok(!existsSync(path.join(d.execRoot, 'containers', id)));
  assert.ok(!existsSync(path.join(d.dataRoot, 'containers', id)));
});

test('bad API bodies are 400s', async () => {
  const notJson = await request(d, 'POST', '/containers/create', '{nope', {
    'Content-Type': 'application/json',
  });
  assert.equal(notJson.status, 400);
  const wrongType = await request(d, 'POST', '/containers/create', JSON.stringify({ Image: BB, Cmd: 5 }), {
    'Content-Type': 'application/json',
  });
  assert.equal(wrongType.status, 400);
  assert.match(json(wrongType.body).message, /cannot unmarshal number into Go struct field .*Cmd/);
  const badName = await request(
    d,
    'POST',
    '/containers/create?name=bad%20name',
    JSON.stringify({ Image: BB }),
    { 'Content-Type': 'application/json' },
  );
  assert.equal(badName.status, 400);
  const missing = await request(d, 'POST', '/containers/nosuch/start');
  assert.equal(missing.status, 404);
  assert.deepEqual(json(missing.body), { message: 'No such container: nosuch' });
});

test('containers outlive a killed daemon and are found again', async () => {
  const d2 = await startDaemon();
  try {
    await berth(d2, ['load', '-i', path.join(FIXTURES, 'busybox-1.38.0-musl-docker-archive.tar')]);
    const run = await berth(d2, [
      'run',
      '-d',
      '--name',
      'survivor',
      BB,
      'sh',
      '-c',
      'i=0; while [ $i -lt 100 ]; do echo tick $i; i=$((i+1)); sleep 0.05; done; exit 4',
    ]);
    assert.equal(run.code, 0, run.stderr);
    d2.proc.kill('SIGKILL');
    await new Promise((r) => d2.proc.once('exit', r));
    await new Promise((r) => setTimeout(r, 300));
    const d3 = await startDaemon([], {}, { dir: d2.dir });
    try {
      const w = await berth(d3, ['wait', 'survivor']);
      assert.equal(w.stdout.trim(), '4');
      const logs = await berth(d3, ['logs', 'survivor']);
      const lines = logs.stdout.trim().split('\n');
      assert.equal(lines.length, 100, 'no log line lost');
      assert.equal(lines[99], 'tick 99');
    } finally {
      await d3.stop();
    }
  } finally {
    await d2.stop();
  }
});

test('berth run hello-world prints the greeting', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-hello-run-'));
  try {
    await writeOciLayout(buildHelloWorld(), path.join(dir, 'layout'));
    execFileSync('tar', ['-cf', path.join(dir, 'hello.tar'), '-C', path.join(dir, 'layout'), '.']);
    assert.equal((await berth(d, ['load', '-i', path.join(dir, 'hello.tar')])).code, 0);
    const r = await berth(d, ['run', '--rm', 'hello-world']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, GREETING);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const noDocker = !existsSync(DOCKER_CLI) && 'the real docker CLI is not installed';

test(
  'the real docker CLI: run, exit codes, -d + logs -f, inspect -f, wait, kill, stop -t',
  { skip: noDocker },
  async () => {
    const hi = await docker(d, ['run', '--rm', BB, 'echo', 'hi']);
    assert.equal(hi.code, 0, hi.stderr);
    assert.equal(hi.stdout, 'hi\n');
    assert.equal((await docker(d, ['run', '--rm', BB, 'sh', '-c', 'exit 9'])).code, 9);
    const det = await docker(d, [
      'run',
      '-d',
      '--name',
      'dk',
      BB,
      'sh',
      '-c',
      'echo one; sleep 0.3; echo two',
    ]);
    assert.equal(det.code, 0, det.stderr);
    const f = await docker(d, ['logs', '-f', 'dk']);
    assert.equal(f.stdout, 'one\ntwo\n');
    const w = await docker(d, ['wait', 'dk']);
    assert.equal(w.stdout.trim(), '0');
    const i = await docker(d, ['inspect', '-f', '{{.State.ExitCode}} {{.Name}}', 'dk']);
    assert.equal(i.stdout.trim(), '0 /dk');
    await docker(d, ['rm', 'dk']);
    const k = await docker(d, ['run', '-d', '--name', 'dk2', BB, 'sleep', '60']);
    assert.equal(k.code, 0, k.stderr);
    assert.equal((await docker(d, ['kill', 'dk2'])).code, 0);
    assert.equal((await docker(d, ['wait', 'dk2'])).stdout.trim(), '137');
    assert.equal((await docker(d, ['rm', 'dk2'])).code, 0);
  },
);

test(
  'the real docker CLI: run -it through a terminal',
  { skip: (noDocker || !existsSync('/usr/bin/tmux')) && 'needs docker CLI and tmux' },
  async () => {
    const session = `berth-it-${process.pid}`;
    spawnSync('tmux', [
      'new-session',
      '-d',
      '-s',
      session,
      '-x',
      '100',
      '-y',
      '30',
      `DOCKER_HOST=${d.host} ${DOCKER_CLI} run -it --rm ${BB} sh`,
    ]);
    try {
      let screen = '';
      for (let i = 0; i < 50 && !screen.includes('/ #'); i++) {
        await new Promise((r) => setTimeout(r, 100));
        screen = spawnSync('tmux', ['capture-pane', '-t', session, '-p']).stdout.toString();
      }
      spawnSync('tmux', ['send-keys', '-t', session, 'echo $((6*7)); stty size', 'Enter']);
      for (let i = 0; i < 50 && !/^42$/m.test(screen); i++) {
        await new Promise((r) => setTimeout(r, 100));
        screen = spawnSync('tmux', ['capture-pane', '-t', session, '-p']).stdout.toString();
      }
      assert.match(screen, /^42$/m);
      assert.match(screen, /^30 100$/m);
      spawnSync('tmux', ['send-keys', '-t', session, 'exit', 'Enter']);
    } finally {
      spawnSync('tmux', ['kill-session', '-t', session]);
    }
  },
);

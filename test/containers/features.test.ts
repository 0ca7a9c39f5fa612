/* eslint-disable @typescript-eslint/no-explicit-any -- inspect JSON is read field by field in assertions */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { BERTH, berth, docker, FIXTURES, request, startDaemon, type TestDaemon } from '../helpers/daemon.js';

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

const JSON_HEADERS = { 'Content-Type': 'application/json' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function inspect(id: string): Promise<Record<string, any>> {
  const r = await request(d, 'GET', `/containers/${id}/json`);
  assert.equal(r.status, 200, r.body.toString());
  return JSON.parse(r.body.toString()) as Record<string, any>;
}

/** Polls (bounded) until `pred` holds on the container's inspect. */
async function until(
  id: string,
  pred: (c: Record<string, any>) => boolean,
  tries = 100,
): Promise<Record<string, any>> {
  let c = await inspect(id);
  for (let i = 0; i < tries && !pred(c); i++) {
    await sleep(100);
    c = await inspect(id);
  }
  return c;
}

/** The host's first block device (e.g. /dev/vda), for blkio throttling. */
function blockDevice(): string {
  const names = readFileSync('/proc/partitions', 'utf8')
    .split('\n')
    .slice(2)
    .map((l) => l.trim().split(/\s+/)[3])
    .filter((n) => n && existsSync(`/dev/${n}`));
  assert.ok(names.length, 'a block device');
  return `/dev/${names[0]}`;
}

function cgroupV1(controller: string, id: string, file: string): string {
  return readFileSync(`/sys/fs/cgroup/${controller}/berth/${id}/${file}`, 'utf8').trim();
}

test('update: new limits reach the running cgroup and inspect; restart policy too; bad values are 400s', async () => {
  const r = await berth(d, ['run', '-d', '-m', '64m', '--cpus', '1', BB, 'sleep', '300']);
  assert.equal(r.code, 0, r.stderr);
  const id = r.stdout.trim();
  assert.equal(cgroupV1('memory', id, 'memory.limit_in_bytes'), String(64 * 1024 * 1024));
  const u = await berth(d, [
    'update',
    '-m',
    '96m',
    '--memory-swap',
    '200m',
    '--cpus',
    '0.5',
    '--pids-limit',
    '50',
    '--restart',
    'on-failure:2',
    id,
  ]);
  assert.equal(u.code, 0, u.stderr);
  assert.equal(u.stdout.trim(), id);
  assert.equal(cgroupV1('memory', id, 'memory.limit_in_bytes'), String(96 * 1024 * 1024));
  assert.equal(cgroupV1('cpu', id, 'cpu.cfs_quota_us'), '50000');
  assert.equal(cgroupV1('pids', id, 'pids.max'), '50');
  // the container sees it too (its cgroup namespace root)
  const e = await berth(d, ['exec', id, 'cat', '/sys/fs/cgroup/memory/memory.limit_in_bytes']);
  assert.equal(e.stdout.trim(), String(96 * 1024 * 1024));
  const c = await inspect(id);
  assert.equal(c.HostConfig.Memory, 96 * 1024 * 1024);
  assert.equal(c.HostConfig.NanoCpus, 5e8);
  assert.equal(c.HostConfig.PidsLimit, 50);
  assert.deepEqual(c.HostConfig.RestartPolicy, { Name: 'on-failure', MaximumRetryCount: 2 });
  // through the real docker CLI
  const du = await docker(d, ['update', '--cpu-shares', '512', id]);
  assert.equal(du.code, 0, du.stderr);
  assert.equal(cgroupV1('cpu', id, 'cpu.shares'), '512');
  // bad input
  const bad = await request(
    d,
    'POST',
    `/containers/${id}/update`,
    JSON.stringify({ BlkioWeight: 5 }),
    JSON_HEADERS,
  );
  assert.equal(bad.status, 400);
  assert.match(JSON.parse(bad.body.toString()).message, /blkio weight/);
  const bad2 = await request(
    d,
    'POST',
    `/containers/${id}/update`,
    JSON.stringify({ Memory: 1024 }),
    JSON_HEADERS,
  );
  assert.equal(bad2.status, 400);
  assert.equal((await berth(d, ['update', id])).code, 1);
  assert.equal(
    (await request(d, 'POST', '/containers/nope/update', JSON.stringify({ Memory: 1 << 26 }), JSON_HEADERS))
      .status,
    404,
  );
  await berth(d, ['rm', '-f', id]);
});

test('health checks: starting -> healthy -> unhealthy, in ps, inspect, filters and events', async () => {
  const since = Math.floor(Date.now() / 1000) - 1;
  const r = await berth(d, [
    'run',
    '-d',
    '--health-cmd',
    'test -f /tmp/ok && echo fine || (echo sick; exit 1)',
    '--health-interval',
    '200ms',
    '--health-retries',
    '2',
    BB,
    'sh',
    '-c',
    'touch /tmp/ok; sleep 300',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const id = r.stdout.trim();
  let c = await until(id, (x) => x.State.Health?.Status === 'healthy');
  assert.equal(c.State.Health.Status, 'healthy');
  assert.equal(c.State.Health.FailingStreak, 0);
  assert.equal(c.State.Health.Log.at(-1).ExitCode, 0);
  assert.equal(c.State.Health.Log.at(-1).Output, 'fine\n');
  assert.deepEqual(c.Config.Healthcheck.Test, [
    'CMD-SHELL',
    'test -f /tmp/ok && echo fine || (echo sick; exit 1)',
  ]);
  assert.equal(c.Config.Healthcheck.Interval, 200e6);
  const ps = await berth(d, ['ps', '--filter', 'health=healthy', '--format', '{{.ID}} {{.Status}}']);
  assert.match(ps.stdout, new RegExp(`^${id.slice(0, 12)} Up .* \\(healthy\\)$`, 'm'));
  const dps = await docker(d, ['ps', '--format', '{{.Status}}', '--filter', `id=${id}`]);
  assert.match(dps.stdout, /\(healthy\)/);
  await berth(d, ['exec', id, 'rm', '/tmp/ok']);
  c = await until(id, (x) => x.State.Health?.Status === 'unhealthy');
  assert.equal(c.State.Health.Status, 'unhealthy');
  assert.ok(c.State.Health.FailingStreak >= 2);
  assert.ok(c.State.Health.Log.length <= 5);
  assert.equal(c.State.Health.Log.at(-1).Output, 'sick\n');
  const unhealthy = await berth(d, ['ps', '-q', '--filter', 'health=unhealthy']);
  assert.ok(unhealthy.stdout.includes(id.slice(0, 12)));
  const ev = await berth(d, [
    'events',
    '--since',
    String(since),
    '--until',
    String(Math.floor(Date.now() / 1000) + 1),
    '--filter',
    `container=${id}`,
    '--format',
    '{{.Action}}',
  ]);
  assert.match(ev.stdout, /health_status: healthy\n(.*\n)*health_status: unhealthy/);
  await berth(d, ['rm', '-f', id]);
});

test('health check from the image config, a timeout, and --no-healthcheck', async () => {
  // An image with a HEALTHCHECK: commit keeps the container's Healthcheck in the image config.
  const base = await berth(d, [
    'create',
    '--health-cmd',
    'sleep 5',
    '--health-interval',
    '200ms',
    '--health-timeout',
    '300ms',
    '--health-retries',
    '1',
    BB,
    'true',
  ]);
  const cm = await berth(d, ['commit', base.stdout.trim(), 'hc-image:1']);
  assert.equal(cm.code, 0, cm.stderr);
  const img = JSON.parse((await request(d, 'GET', '/images/hc-image:1/json')).body.toString());
  assert.deepEqual(img.Config.Healthcheck.Test, ['CMD-SHELL', 'sleep 5']);
  const r = await berth(d, ['run', '-d', 'hc-image:1', 'sleep', '300']);
  const id = r.stdout.trim();
  const c = await until(id, (x) => x.State.Health?.Status === 'unhealthy', 100);
  assert.equal(c.State.Health.Status, 'unhealthy');
  assert.equal(c.State.Health.Log.at(-1).ExitCode, -1);
  assert.match(c.State.Health.Log.at(-1).Output, /exceeded timeout/);
  const off = await berth(d, ['run', '-d', '--no-healthcheck', 'hc-image:1', 'sleep', '300']);
  const offId = off.stdout.trim();
  await sleep(600);
  const oc = await inspect(offId);
  assert.equal(oc.State.Health, undefined);
  assert.deepEqual(oc.Config.Healthcheck.Test, ['NONE']);
  const bad = await berth(d, ['run', '--health-interval', 'soon', BB, 'true']);
  assert.equal(bad.code, 125);
  assert.match(bad.stderr, /invalid duration/);
  await berth(d, ['rm', '-f', id, offId, base.stdout.trim()]);
  await berth(d, ['rmi', 'hc-image:1']);
});

test('--init runs tini as pid 1 and reaps; signals reach the command', async () => {
  const r = await berth(d, [
    'run',
    '--rm',
    '--init',
    BB,
    'sh',
    '-c',
    'cat /proc/1/cmdline | tr "\\0" " "; echo; echo $$',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const [cmdline, pid] = r.stdout.trim().split('\n');
  assert.match(cmdline, /^\/sbin\/docker-init -- sh -c/);
  assert.notEqual(pid.trim(), '1');
  const c = await berth(d, ['create', '--init', BB, 'sleep', '300']);
  const id = c.stdout.trim();
  assert.equal((await inspect(id)).HostConfig.Init, true);
  await berth(d, ['start', id]);
  const s = await berth(d, ['stop', '-t', '10', id]);
  assert.equal(s.code, 0);
  // tini forwards SIGTERM to sleep: 143, not the 137 of the SIGKILL that would follow the timeout
  assert.equal((await inspect(id)).State.ExitCode, 143);
  await berth(d, ['rm', id]);
});

test('--device, --ulimit, --ipc container:, blkio device limits', async () => {
  const r = await berth(d, [
    'run',
    '--rm',
    '--device',
    '/dev/zero:/dev/myzero',
    '--device',
    '/dev/loop-control:/dev/lc:r',
    '--ulimit',
    'nofile=123:456',
    '--ulimit',
    'nproc=77',
    '--device-read-bps',
    `${blockDevice()}:1mb`,
    BB,
    'sh',
    '-c',
    'ls -l /dev/myzero | cut -c1; head -c 3 /dev/myzero | od -An -tx1; ulimit -n; ulimit -Hn; ulimit -u; echo x > /dev/lc || echo denied',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout
    .trim()
    .split('\n')
    .map((l) => l.trim());
  assert.deepEqual(lines.slice(0, 5), ['c', '00 00 00', '123', '456', '77']);
  assert.equal(lines.at(-1), 'denied');
  // the blkio limit lands in the cgroup of a running container
  const bl = await berth(d, ['run', '-d', '--device-write-bps', `${blockDevice()}:2mb`, BB, 'sleep', '300']);
  const blId = bl.stdout.trim();
  assert.match(cgroupV1('blkio', blId, 'blkio.throttle.write_bps_device'), /^\d+:\d+ 2097152$/);
  assert.equal((await inspect(blId)).HostConfig.BlkioDeviceWriteBps[0].Rate, 2097152);
  await berth(d, ['rm', '-f', blId]);
  const noDev = await berth(d, ['run', '--rm', '--device', '/dev/nope', BB, 'true']);
  assert.equal(noDev.code, 125);
  assert.match(noDev.stderr, /\/dev\/nope/);
  const badUlimit = await request(
    d,
    'POST',
    '/containers/create',
    JSON.stringify({ Image: BB, HostConfig: { Ulimits: [{ Name: 'nofile', Soft: 10, Hard: 5 }] } }),
    JSON_HEADERS,
  );
  assert.equal(badUlimit.status, 400);
  // ipc: a second container joins the first one's IPC namespace and sees its /dev/shm
  const a = await berth(d, [
    'run',
    '-d',
    '--ipc',
    'shareable',
    BB,
    'sh',
    '-c',
    'echo hi > /dev/shm/mark; sleep 300',
  ]);
  const aId = a.stdout.trim();
  await sleep(300);
  const b = await berth(d, [
    'run',
    '--rm',
    '--ipc',
    `container:${aId}`,
    BB,
    'sh',
    '-c',
    'cat /dev/shm/mark; readlink /proc/self/ns/ipc',
  ]);
  assert.equal(b.code, 0, b.stderr);
  const own = await berth(d, ['exec', aId, 'readlink', '/proc/self/ns/ipc']);
  assert.equal(b.stdout, `hi\n${own.stdout}`);
  const badIpc = await berth(d, ['run', '--rm', '--ipc', 'sideways', BB, 'true']);
  assert.equal(badIpc.code, 125);
  await berth(d, ['rm', '-f', aId]);
});

test('log rotation: max-size/max-file keep the newest lines in order across files', async () => {
  const r = await berth(d, [
    'run',
    '-d',
    '--log-opt',
    'max-size=20k',
    '--log-opt',
    'max-file=3',
    BB,
    'sh',
    '-c',
    'i=0; while [ $i -lt 3000 ]; do echo "line $i"; i=$((i+1)); [ $((i % 100)) = 0 ] && sleep 0.1; done',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const id = r.stdout.trim();
  assert.equal((await berth(d, ['wait', id])).stdout.trim(), '0');
  const c = await inspect(id);
  assert.deepEqual(c.HostConfig.LogConfig, {
    Type: 'json-file',
    Config: { 'max-size': '20k', 'max-file': '3' },
  });
  const dir = path.dirname(c.LogPath as string);
  const files = readdirSync(dir).filter((f) => f.startsWith('container.log'));
  assert.ok(files.includes('container.log.1'), `rotated files: ${files.join(',')}`);
  assert.ok(!files.includes('container.log.3'));
  const logs = await berth(d, ['logs', id]);
  const got = logs.stdout.trim().split('\n');
  assert.equal(got.at(-1), 'line 2999');
  // the lines kept are a gapless suffix of what was printed
  const first = Number(got[0].split(' ')[1]);
  assert.ok(first > 0, 'old lines were rotated away');
  assert.deepEqual(
    got,
    Array.from({ length: 3000 - first }, (_, i) => `line ${first + i}`),
  );
  const tail = await berth(d, ['logs', '--tail', '2', id]);
  assert.equal(tail.stdout, 'line 2998\nline 2999\n');
  const bad = await berth(d, ['run', '--rm', '--log-opt', 'max-file=2', BB, 'true']);
  assert.equal(bad.code, 125);
  const bad2 = await berth(d, ['run', '--rm', '--log-opt', 'max-size=lots', BB, 'true']);
  assert.equal(bad2.code, 125);
  await berth(d, ['rm', id]);
});

test('logs of 200,000 lines come back whole and in order (berth and docker CLI)', async () => {
  const r = await berth(d, ['run', '-d', BB, 'seq', '1', '200000']);
  const id = r.stdout.trim();
  assert.equal((await berth(d, ['wait', id])).stdout.trim(), '0');
  for (const cli of [berth, docker]) {
    const logs = await cli(d, ['logs', id]);
    assert.equal(logs.code, 0, logs.stderr);
    const lines = logs.stdout.split('\n');
    assert.equal(lines.pop(), '');
    assert.equal(lines.length, 200000);
    for (let i = 0; i < lines.length; i++)
      if (lines[i] !== String(i + 1)) assert.fail(`line ${i}: ${lines[i]}`);
    const tail = await cli(d, ['logs', '--tail', '2', '-t', id]);
    assert.match(tail.stdout, /^\d{4}-\d\d-\d\dT[\d:.]+Z 199999\n\S+Z 200000\n$/);
  }
  await berth(d, ['rm', id]);
});

test('restart policies: on-failure:N counts, always restarts, stop ends it, unless-stopped', async () => {
  const f = await berth(d, ['run', '-d', '--restart', 'on-failure:2', BB, 'sh', '-c', 'exit 3']);
  const fid = f.stdout.trim();
  const fc = await until(fid, (x) => x.RestartCount === 2 && x.State.Status === 'exited', 150);
  assert.equal(fc.RestartCount, 2);
  assert.equal(fc.State.Status, 'exited');
  assert.equal(fc.State.ExitCode, 3);
  const ok = await berth(d, ['run', '-d', '--restart', 'on-failure', BB, 'true']);
  const okc = await until(ok.stdout.trim(), (x) => x.State.Status === 'exited');
  await sleep(500);
  assert.equal((await inspect(ok.stdout.trim())).RestartCount, 0, 'exit 0 is not a failure');
  assert.equal(okc.State.ExitCode, 0);
  const a = await berth(d, ['run', '-d', '--restart', 'always', BB, 'sh', '-c', 'sleep 0.2']);
  const aid = a.stdout.trim();
  const ac = await until(aid, (x) => x.RestartCount >= 2, 150);
  assert.ok(ac.RestartCount >= 2);
  const st = await berth(d, ['stop', '-t', '1', aid]);
  assert.equal(st.code, 0, st.stderr);
  const count = (await inspect(aid)).RestartCount;
  await sleep(800);
  const after = await inspect(aid);
  assert.equal(after.State.Running, false);
  assert.equal(after.RestartCount, count, 'a stopped container is not restarted');
  await berth(d, ['rm', '-f', fid, ok.stdout.trim(), aid]);
});

test('restart policies at daemon start: always and unless-stopped come back, stopped unless-stopped does not', async () => {
  const own = await startDaemon();
  try {
    const load = await berth(own, [
      'load',
      '-i',
      path.join(FIXTURES, 'busybox-1.38.0-musl-docker-archive.tar'),
    ]);
    assert.equal(load.code, 0, load.stderr);
    const a = (await berth(own, ['run', '-d', '--restart', 'always', BB, 'sleep', '300'])).stdout.trim();
    const u = (
      await berth(own, ['run', '-d', '--restart', 'unless-stopped', BB, 'sleep', '300'])
    ).stdout.trim();
    const s = (
      await berth(own, ['run', '-d', '--restart', 'unless-stopped', BB, 'sleep', '300'])
    ).stdout.trim();
    assert.equal((await berth(own, ['stop', '-t', '1', s])).code, 0);
    // a container killed while the daemon is down (host reboot stand-in): stop the daemon, kill the containers
    own.proc.kill('SIGKILL');
    await new Promise((r) => own.proc.once('exit', r));
    for (const id of [a, u]) {
      const pid = Number(readFileSync(path.join(own.execRoot, 'containers', id, 'conmon.pid'), 'utf8'));
      const state = JSON.parse(
        readFileSync(path.join(own.dataRoot, 'containers', id, 'config.json'), 'utf8'),
      );
      process.kill(state.state.Pid, 'SIGKILL');
      assert.ok(pid > 0);
    }
    await sleep(300);
    const again = await startDaemon([], {}, { dir: own.dir });
    Object.assign(own, { proc: again.proc });
    const ok = async (id: string) => {
      for (let i = 0; i < 100; i++) {
        const r = await request(again, 'GET', `/containers/${id}/json`);
        const c = JSON.parse(r.body.toString());
        if (c.State.Running) return c;
        await sleep(100);
      }
      return JSON.parse((await request(again, 'GET', `/containers/${id}/json`)).body.toString());
    };
    assert.equal((await ok(a)).State.Running, true, 'always came back');
    assert.equal((await ok(u)).State.Running, true, 'unless-stopped came back');
    const sc = JSON.parse((await request(again, 'GET', `/containers/${s}/json`)).body.toString());
    assert.equal(sc.State.Running, false, 'a stopped unless-stopped container stays stopped');
    await berth(again, ['rm', '-f', a, u, s]);
    await again.stop();
  } finally {
    await own.stop();
  }
});

test('run --rm whose start fails is removed, so the docker CLI does not hang', async () => {
  const r = await docker(d, ['run', '--rm', '--name', 'rmfail', BB, '/nonexistent']);
  assert.equal(r.code, 127, r.stderr);
  assert.match(r.stderr, /no such file or directory/);
  assert.equal((await request(d, 'GET', '/containers/rmfail/json')).status, 404);
});

test('ps -s and inspect --size report the writable layer and the virtual size', async () => {
  const r = await berth(d, [
    'run',
    '-d',
    '--name',
    'sized',
    BB,
    'sh',
    '-c',
    'head -c 300000 /dev/zero > /big; sleep 300',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const id = r.stdout.trim();
  let out = '';
  for (let i = 0; i < 50 && !/300kB/.test(out); i++) {
    await sleep(100);
    out = (await berth(d, ['ps', '-s', '--filter', 'name=sized'])).stdout;
  }
  assert.match(out, /SIZE/);
  assert.match(out, /300kB \(virtual \d/);
  const c = JSON.parse((await request(d, 'GET', `/containers/${id}/json?size=1`)).body.toString());
  assert.ok(c.SizeRw >= 300000 && c.SizeRw < 310000, String(c.SizeRw));
  assert.ok(c.SizeRootFs > c.SizeRw);
  const dps = await docker(d, ['ps', '-s', '--filter', 'name=sized', '--format', '{{.Size}}']);
  assert.match(dps.stdout, /^300kB \(virtual /);
  await berth(d, ['rm', '-f', id]);
});

test('the story: berth run --rm alpine cat /etc/os-release with the Alpine fixture imported', async () => {
  const imp = await berth(d, [
    'import',
    path.join(FIXTURES, 'alpine-minirootfs-3.20.3-x86_64.tar.gz'),
    'alpine:3.20',
  ]);
  assert.equal(imp.code, 0, imp.stderr);
  const r = await berth(d, ['run', '--rm', 'alpine:3.20', 'cat', '/etc/os-release']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^NAME="Alpine Linux"$/m);
  assert.match(r.stdout, /^VERSION_ID=3\.20\.3$/m);
  await berth(d, ['rmi', 'alpine:3.20']);
});

test(
  'berth run -it: a real TTY, Ctrl-C reaches the container, ctrl-p ctrl-q detaches',
  { skip: !existsSync('/usr/bin/tmux') && 'needs tmux' },
  async () => {
    const session = `berth-it2-${process.pid}`;
    const screen = () => spawnSync('tmux', ['capture-pane', '-t', session, '-p']).stdout.toString();
    const waitFor = async (re: RegExp) => {
      let s = screen();
      for (let i = 0; i < 80 && !re.test(s); i++) {
        await sleep(100);
        s = screen();
      }
      return s;
    };
    spawnSync('tmux', [
      'new-session',
      '-d',
      '-s',
      session,
      '-x',
      '90',
      '-y',
      '25',
      `${process.execPath} ${BERTH} -H ${d.host} run -it --name itc ${BB} sh`,
    ]);
    try {
      assert.match(await waitFor(/\/ #/), /\/ #/);
      // Ctrl-C interrupts the foreground command inside, not the client
      spawnSync('tmux', ['send-keys', '-t', session, 'sleep 100', 'Enter']);
      await sleep(500);
      spawnSync('tmux', ['send-keys', '-t', session, 'C-c']);
      await sleep(200);
      spawnSync('tmux', ['send-keys', '-t', session, 'echo after-$?', 'Enter']);
      assert.match(await waitFor(/after-130/), /after-130/);
      spawnSync('tmux', ['send-keys', '-t', session, 'stty size', 'Enter']);
      assert.match(await waitFor(/^25 90$/m), /^25 90$/m);
      // detach keys leave it running
      spawnSync('tmux', ['send-keys', '-t', session, 'C-p', 'C-q']);
      let c = await inspect('itc');
      for (let i = 0; i < 50 && spawnSync('tmux', ['has-session', '-t', session]).status === 0; i++)
        await sleep(100);
      c = await inspect('itc');
      assert.equal(c.State.Running, true, 'still running after detach');
      assert.notEqual(spawnSync('tmux', ['has-session', '-t', session]).status, 0, 'the client exited');
    } finally {
      spawnSync('tmux', ['kill-session', '-t', session]);
      await berth(d, ['rm', '-f', 'itc']);
    }
  },
);

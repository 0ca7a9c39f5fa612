/**
 * The exec helper (native/berth_exec.c) against the reference it replaces: the same probe run by
 * `runc exec` with the same process spec must print the same thing (ids, groups, env, cwd,
 * capabilities, no_new_privs, seccomp, rlimits, oom_score_adj, cgroups, namespaces, open fds).
 */
import assert from 'node:assert/strict';
import {
  closeSync,
  ftruncateSync,
  openSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { execSettings, nativeExec } from '../../src/engine/runtime/native-exec.js';
import { berth, docker, FIXTURES, ROOT, run, startDaemon, type TestDaemon } from '../helpers/daemon.js';

const BB = 'busybox:1.38.0-musl';
const HELPER = path.join(ROOT, 'build', 'Release', 'berth-exec');
let d: TestDaemon;

const PROBE = [
  'id',
  'env | sort',
  'pwd',
  "grep -E '^(Cap|NoNewPrivs|Seccomp)' /proc/self/status",
  'cat /proc/self/oom_score_adj',
  'echo ulimits $(ulimit -n) $(ulimit -Hn)',
  'cat /proc/self/cgroup',
  'ls /proc/$$/fd',
  'for n in net pid mnt ipc uts cgroup; do readlink /proc/self/ns/$n; done',
  'hostname',
  // the default profile allows personality(0) but not personality(ADDR_NO_RANDOMIZE): ENOSYS
  'setarch linux64 true; echo plain=$?',
  'setarch linux64 -R true 2>&1; echo norandom=$?',
].join('; ');

interface Spec {
  process: {
    args: string[];
    cwd: string;
    user: { uid: number; gid: number; additionalGids?: number[] };
  } & Record<string, unknown>;
}

function containerId(name: string): string {
  return readdirSync(path.join(d.execRoot, 'runc')).find((id) => {
    const cfg = JSON.parse(readFileSync(path.join(d.execRoot, 'containers', id, 'config.json'), 'utf8')) as {
      hostname?: string;
    };
    return cfg.hostname === name;
  })!;
}

function initPid(id: string): number {
  return Number(readFileSync(path.join(d.execRoot, 'containers', id, 'pidfile'), 'utf8'));
}

function config(id: string): Spec & { linux: { seccomp?: never } } {
  return JSON.parse(readFileSync(path.join(d.execRoot, 'containers', id, 'config.json'), 'utf8')) as Spec & {
    linux: { seccomp?: never };
  };
}

/** The probe through `runc exec` with the container's own process spec (what the daemon used to do). */
async function viaRunc(id: string, args: string[], over: Partial<Spec['process']> = {}): Promise<string> {
  const file = path.join(d.dir, `process-${Date.now()}.json`);
  writeFileSync(file, JSON.stringify({ ...config(id).process, args, ...over }));
  const r = await run('runc', ['--root', path.join(d.execRoot, 'runc'), 'exec', '--process', file, id]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

const ULIMITS = /^ulimits (\d+|unlimited) (\d+|unlimited)$/m;

function withoutUlimits(probe: string): string {
  assert.match(probe, ULIMITS);
  return probe.replace(ULIMITS, 'ulimits');
}

/** The container init's open-files limit, as /proc/<pid>/limits shows it. */
function initLimit(id: string, which: 'soft' | 'hard'): string {
  const line = /^Max open files\s+(\S+)\s+(\S+)/m.exec(readFileSync(`/proc/${initPid(id)}/limits`, 'utf8'))!;
  return which === 'soft' ? line[1] : line[2];
}

before(async () => {
  d = await startDaemon();
  const load = await berth(d, ['load', '-i', path.join(FIXTURES, 'busybox-1.38.0-musl-docker-archive.tar')]);
  assert.equal(load.code, 0, load.stderr);
  const plain = await berth(d, ['run', '-d', '--hostname', 'nx', '--network', 'none', BB, 'sleep', '300']);
  assert.equal(plain.code, 0, plain.stderr);
  const tight = await docker(d, [
    'run',
    '-d',
    '--hostname',
    'nx2',
    '--network',
    'none',
    '--cap-drop',
    'CHOWN',
    '--cap-add',
    'SYS_PTRACE',
    '--security-opt',
    'no-new-privileges',
    '--ulimit',
    'nofile=512:1024',
    '--oom-score-adj',
    '300',
    '--pids-limit',
    '40',
    BB,
    'sleep',
    '300',
  ]);
  assert.equal(tight.code, 0, tight.stderr);
});
after(async () => {
  await d.stop();
});

test('exec by the helper sees exactly what runc exec gives the same process', async () => {
  for (const name of ['nx', 'nx2']) {
    const id = containerId(name);
    const ours = await docker(d, ['exec', id, 'sh', '-c', PROBE]);
    assert.equal(ours.code, 0, ours.stderr);
    // runc 1.1 exec leaves a process the daemon's rlimits; the helper gives it the container's
    assert.equal(withoutUlimits(ours.stdout), withoutUlimits(await viaRunc(id, ['sh', '-c', PROBE])), name);
    assert.match(ours.stdout, new RegExp(`^ulimits ${initLimit(id, 'soft')} ${initLimit(id, 'hard')}$`, 'm'));
    assert.match(ours.stdout, /norandom=\d+/);
    assert.match(ours.stdout, /Function not implemented/, 'the seccomp filter is in force');
    assert.match(ours.stdout, /plain=0/);
    // another user and working directory
    const asUser = await docker(d, ['exec', '-u', '1000:1000', '-w', '/tmp', id, 'sh', '-c', PROBE]);
    assert.equal(asUser.code, 0, asUser.stderr);
    assert.equal(
      withoutUlimits(asUser.stdout),
      withoutUlimits(await viaRunc(id, ['sh', '-c', PROBE], { user: { uid: 1000, gid: 1000 }, cwd: '/tmp' })),
    );
    assert.match(asUser.stdout, /^uid=1000 gid=1000/);
  }
  const tight = await docker(d, ['exec', containerId('nx2'), 'sh', '-c', PROBE]);
  assert.match(tight.stdout, /NoNewPrivs:\t1/);
  assert.match(tight.stdout, /^300$/m, '--oom-score-adj');
  assert.match(tight.stdout, /^ulimits 512 1024$/m);
});

test('exec by the helper: exit codes, signals, stdin, and runc-worded start failures', async () => {
  const id = containerId('nx');
  assert.equal((await docker(d, ['exec', id, 'sh', '-c', 'exit 3'])).code, 3);
  assert.equal((await docker(d, ['exec', id, 'sh', '-c', 'kill -9 $$'])).code, 137);
  assert.equal((await docker(d, ['exec', '-i', id, 'cat'], { input: 'in\n' })).stdout, 'in\n');
  const failures: [string[], string][] = [
    [['nosuch'], 'exec: "nosuch": executable file not found in $PATH'],
    [['/nosuch'], 'exec: "/nosuch": stat /nosuch: no such file or directory'],
    [['/etc'], 'exec: "/etc": permission denied'],
    [
      ['-w', '/nowhere', id, 'pwd'],
      'chdir to cwd ("/nowhere") set in config.json failed: no such file or directory',
    ],
  ];
  for (const [args, why] of failures) {
    const r = await docker(d, ['exec', ...(args[0] === '-w' ? args : [id, ...args])]);
    assert.equal(r.code, 126, args.join(' '));
    assert.equal(
      r.stdout + r.stderr,
      `OCI runtime exec failed: exec failed: unable to start container process: ${why}: unknown\r\n`,
    );
  }
});

test('the exec helper runs from a sealed memfd, not from a host file a container could rewrite', async () => {
  const id = containerId('nx');
  const marker = '7.4321';
  const running = docker(d, ['exec', id, 'sleep', marker]);
  let helperPid = 0;
  let sleepPid = 0;
  for (let i = 0; i < 100 && !helperPid; i++) {
    for (const p of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
      let cmd = '';
      try {
        cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8');
      } catch {
        continue;
      }
      if (cmd !== `sleep\0${marker}\0`) continue;
      const ppid = /^PPid:\s+(\d+)/m.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1];
      if (ppid) [helperPid, sleepPid] = [Number(ppid), Number(p)];
    }
    if (!helperPid) await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(helperPid, 'the exec is running');
  assert.match(readlinkSync(`/proc/${helperPid}/exe`), /^\/memfd:berth-exec/);
  process.kill(sleepPid, 'SIGTERM'); // started by this test
  assert.equal((await running).code, 143);
  // the memfd the daemon keeps is sealed: it cannot be written, grown or shrunk
  const daemonFd = readdirSync(`/proc/${d.proc.pid}/fd`).find((fd) =>
    readlinkSync(`/proc/${d.proc.pid}/fd/${fd}`).startsWith('/memfd:berth-exec'),
  );
  assert.ok(daemonFd);
  const fd = openSync(`/proc/${d.proc.pid}/fd/${daemonFd}`, 'r+');
  try {
    assert.throws(() => writeSync(fd, 'overwritten', 0), /EPERM/);
    assert.throws(() => ftruncateSync(fd, 0), /EPERM/);
  } finally {
    closeSync(fd);
  }
});

test('the compiled seccomp filter is cached, and a damaged cache file is rebuilt', async () => {
  const id = containerId('nx');
  const dir = path.join(d.execRoot, 'seccomp');
  await docker(d, ['exec', id, 'true']);
  const files = readdirSync(dir).filter((f) => f.endsWith('.bpf'));
  assert.ok(files.length >= 1);
  const file = path.join(dir, files[0]);
  const good = readFileSync(file);
  writeFileSync(file, Buffer.concat([good.subarray(0, 16), Buffer.alloc(good.length - 16, 0xff)]));
  const r = await docker(d, ['exec', id, 'sh', '-c', 'setarch linux64 -R true 2>&1; echo $?']);
  assert.match(r.stdout, /Function not implemented/);
  assert.deepEqual(readFileSync(file), good);
});

test('the helper refuses a container init whose pid was reused (start time differs)', async () => {
  const id = containerId('nx');
  const spec = config(id);
  const settings = execSettings(
    initPid(id),
    { ...spec.process, args: ['true'] } as never,
    spec.linux.seccomp,
  );
  assert.ok(settings);
  const forged = Buffer.from(
    settings.toString('latin1').replace(/starttime\0\d+\0/, 'starttime\x001\0'),
    'latin1',
  );
  await assert.rejects(nativeExec(HELPER, forged, { stdin: false }), /container is not running/);
});

test('--oom-score-adj reaches the container, and an out-of-range value is a 400', async () => {
  const r = await berth(d, [
    'run',
    '--rm',
    '--network',
    'none',
    '--oom-score-adj',
    '200',
    BB,
    'cat',
    '/proc/self/oom_score_adj',
  ]);
  assert.equal(r.stdout, '200\n', r.stderr);
  const bad = await docker(d, ['create', '--oom-score-adj', '1001', BB]);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /Invalid value 1001, range for oom score adj is \[-1000, 1000\]/);
});

test('what the helper cannot honour goes to runc; seccomp arguments are grouped as runc groups them', () => {
  // the test process stands in for a container init: it has a start time and cgroups
  const proc = {
    user: { uid: 0, gid: 0 },
    args: ['true'],
    cwd: '/',
    capabilities: { bounding: ['CAP_CHOWN'], effective: ['CAP_CHOWN'], permitted: ['CAP_CHOWN'] },
  };
  const settings = (p: object, seccomp?: object) =>
    execSettings(process.pid, { ...proc, ...p } as never, seccomp as never)
      ?.toString('latin1')
      .split('\0');
  const ok = settings({});
  assert.ok(ok);
  assert.equal(ok[ok.indexOf('cap.bounding') + 1], '1');
  assert.equal(settings({ terminal: true }), undefined);
  assert.equal(settings({ apparmorProfile: 'docker-default' }), undefined);
  assert.equal(settings({ capabilities: { bounding: ['CAP_NO_SUCH'] } }), undefined);
  assert.equal(settings({ rlimits: [{ type: 'RLIMIT_NO_SUCH', soft: 1, hard: 1 }] }), undefined);
  const rule = (args: object[]) => ({
    defaultAction: 'SCMP_ACT_ERRNO',
    architectures: ['SCMP_ARCH_X86_64'],
    syscalls: [{ names: ['clone'], action: 'SCMP_ACT_ALLOW', args }],
  });
  assert.equal(
    settings({}, { ...rule([]), syscalls: [{ names: ['x'], action: 'SCMP_ACT_NOTIFY' }] }),
    undefined,
  );
  assert.equal(settings({}, rule([{ index: 6, value: 1, op: 'SCMP_CMP_EQ' }])), undefined);
  const rules = (s: string[] | undefined) => s!.filter((_, i) => s![i - 1] === 'seccomp.rule');
  // conditions on different arguments: one rule (AND); two on one argument: one rule each (OR)
  assert.deepEqual(
    rules(
      settings(
        {},
        rule([
          { index: 0, value: 1, op: 'SCMP_CMP_EQ' },
          { index: 1, value: 2, valueTwo: 3, op: 'SCMP_CMP_MASKED_EQ' },
        ]),
      ),
    ),
    ['allow 1 clone 0 eq 1 0 1 masked_eq 2 3'],
  );
  assert.deepEqual(
    rules(
      settings(
        {},
        rule([
          { index: 0, value: 1, op: 'SCMP_CMP_EQ' },
          { index: 0, value: 2, op: 'SCMP_CMP_EQ' },
        ]),
      ),
    ),
    ['allow 1 clone 0 eq 1 0', 'allow 1 clone 0 eq 2 0'],
  );
  // a rule that repeats the default action is left out (libseccomp refuses it)
  assert.deepEqual(
    rules(settings({}, { ...rule([]), syscalls: [{ names: ['read'], action: 'SCMP_ACT_ERRNO' }] })),
    [],
  );
});

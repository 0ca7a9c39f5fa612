/**
 * `stats` sampling from both cgroup layouts. This machine is v1 (the e2e stats tests read real v1
 * files); the unified v2 layout is checked here on a tree of files written the way the kernel
 * shows them, so the unit conversions (µs → ns, "max" → no limit, io.stat fields) are pinned.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { cgroupPids, isCgroupV2, procsFilesOf, sampleCgroup } from '../../src/engine/runtime/cgroups.js';

function tree(files: Record<string, string>): string {
  const root = mkdtempSync(path.join(os.tmpdir(), 'berth-cgroup-'));
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    writeFileSync(path.join(root, rel), text);
  }
  return root;
}

test('cgroup v2: cpu, memory, pids and io from the unified hierarchy', () => {
  const c = 'berth/abc';
  const root = tree({
    'cgroup.controllers': 'cpuset cpu io memory pids\n',
    [`${c}/cpu.stat`]:
      'usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 7\nnr_throttled 2\nthrottled_usec 30\n',
    [`${c}/memory.current`]: '4096000\n',
    [`${c}/memory.max`]: '67108864\n',
    [`${c}/memory.stat`]: 'anon 1000\nfile 2000\ninactive_file 512\n',
    [`${c}/pids.current`]: '3\n',
    [`${c}/pids.max`]: '100\n',
    [`${c}/io.stat`]: '8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n',
    [`${c}/cgroup.procs`]: '101\n102\n',
  });
  try {
    assert.equal(isCgroupV2(root), true);
    const s = sampleCgroup(c, root);
    assert.equal(s.cpu_stats.cpu_usage.total_usage, 1_500_000);
    assert.equal(s.cpu_stats.cpu_usage.usage_in_usermode, 1_000_000);
    assert.equal(s.cpu_stats.cpu_usage.usage_in_kernelmode, 500_000);
    assert.deepEqual(s.cpu_stats.throttling_data, {
      periods: 7,
      throttled_periods: 2,
      throttled_time: 30_000,
    });
    assert.ok(s.cpu_stats.system_cpu_usage > 0);
    assert.equal(s.memory_stats.usage, 4_096_000);
    assert.equal(s.memory_stats.limit, 67_108_864);
    assert.equal(s.memory_stats.stats.inactive_file, 512, 'docker stats subtracts it on v2');
    assert.deepEqual(s.pids_stats, { current: 3, limit: 100 });
    assert.deepEqual(s.blkio_stats.io_service_bytes_recursive, [
      { major: 8, minor: 0, op: 'read', value: 4096 },
      { major: 8, minor: 0, op: 'write', value: 8192 },
    ]);
    assert.deepEqual(cgroupPids(c, root), [101, 102]);

    // No limits: "max" means the host's memory and no pids limit.
    writeFileSync(path.join(root, c, 'memory.max'), 'max\n');
    writeFileSync(path.join(root, c, 'pids.max'), 'max\n');
    writeFileSync(path.join(root, c, 'io.stat'), '');
    const free = sampleCgroup(c, root);
    assert.equal(free.memory_stats.limit, os.totalmem());
    assert.deepEqual(free.pids_stats, { current: 3 });
    assert.equal(free.blkio_stats.io_service_bytes_recursive, null);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('cgroup v1: per-controller hierarchies, and an unlimited memory cgroup reads as host memory', () => {
  const c = 'berth/abc';
  const root = tree({
    [`cpuacct/${c}/cpuacct.usage`]: '2500000\n',
    [`cpuacct/${c}/cpuacct.usage_percpu`]: '2000000 500000 \n',
    [`cpuacct/${c}/cpuacct.stat`]: 'user 3\nsystem 1\n',
    [`cpu/${c}/cpu.stat`]: 'nr_periods 4\nnr_throttled 1\nthrottled_time 900\n',
    [`memory/${c}/memory.usage_in_bytes`]: '8192\n',
    [`memory/${c}/memory.max_usage_in_bytes`]: '16384\n',
    [`memory/${c}/memory.limit_in_bytes`]: '9223372036854771712\n',
    [`memory/${c}/memory.stat`]: 'cache 4096\nrss 4096\ntotal_inactive_file 100\n',
    [`pids/${c}/pids.current`]: '1\n',
    [`pids/${c}/pids.max`]: 'max\n',
    [`pids/${c}/cgroup.procs`]: '77\n',
    [`blkio/${c}/blkio.throttle.io_service_bytes`]: '8:0 Read 100\n8:0 Write 200\nTotal 300\n',
  });
  try {
    assert.equal(isCgroupV2(root), false);
    const s = sampleCgroup(c, root);
    assert.equal(s.cpu_stats.cpu_usage.total_usage, 2_500_000);
    assert.deepEqual(s.cpu_stats.cpu_usage.percpu_usage, [2_000_000, 500_000]);
    assert.equal(s.cpu_stats.cpu_usage.usage_in_usermode, 30_000_000, 'USER_HZ ticks to ns');
    assert.deepEqual(s.cpu_stats.throttling_data, { periods: 4, throttled_periods: 1, throttled_time: 900 });
    assert.equal(s.memory_stats.usage, 8192);
    assert.equal(s.memory_stats.max_usage, 16384);
    assert.equal(s.memory_stats.limit, os.totalmem());
    assert.equal(s.memory_stats.stats.total_inactive_file, 100);
    assert.deepEqual(s.pids_stats, { current: 1 });
    assert.deepEqual(s.blkio_stats.io_service_bytes_recursive, [
      { major: 8, minor: 0, op: 'read', value: 100 },
      { major: 8, minor: 0, op: 'write', value: 200 },
    ]);
    assert.deepEqual(cgroupPids(c, root), [77]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('joining the cgroups of a process: v1 per controller, hybrid, pure v2, a cgroup-namespaced mount', () => {
  const hybrid = [
    '30 25 0:26 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate',
    '31 25 0:27 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd',
    '32 25 0:28 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct',
    '33 25 0:29 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids',
  ].join('\n');
  const procs = '3:pids:/berth/x\n2:cpu,cpuacct:/berth/x\n1:name=systemd:/berth/x\n0::/berth/x\n';
  assert.deepEqual(procsFilesOf(procs, hybrid), [
    '/sys/fs/cgroup/pids/berth/x/cgroup.procs',
    '/sys/fs/cgroup/cpu,cpuacct/berth/x/cgroup.procs',
    '/sys/fs/cgroup/systemd/berth/x/cgroup.procs',
    '/sys/fs/cgroup/unified/berth/x/cgroup.procs',
  ]);
  // a v1 hierarchy the daemon cannot reach: the helper must not run (runc takes the exec)
  assert.equal(procsFilesOf('4:memory:/berth/x\n', hybrid), undefined);
  // no v2 mount at all: the empty unified hierarchy is skipped
  assert.deepEqual(procsFilesOf('3:pids:/berth/x\n0::/\n', hybrid.split('\n').slice(1).join('\n')), [
    '/sys/fs/cgroup/pids/berth/x/cgroup.procs',
  ]);
  const v2 = '25 20 0:22 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw';
  assert.deepEqual(procsFilesOf('0::/berth/x\n', v2), ['/sys/fs/cgroup/berth/x/cgroup.procs']);
  // the daemon itself in a cgroup namespace whose root is /outer
  const nested = '25 20 0:22 /outer /sys/fs/cgroup rw - cgroup2 cgroup2 rw';
  assert.deepEqual(procsFilesOf('0::/outer/berth/x\n', nested), ['/sys/fs/cgroup/berth/x/cgroup.procs']);
  assert.equal(procsFilesOf('0::/elsewhere/x\n', nested), undefined);
});

/**
 * Reading a container's cgroup for `stats`: cgroup v1 (per-controller hierarchies, as on this
 * machine) and v2 (the unified hierarchy).
 */
import { existsSync, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseMountinfo } from '../../common/mountinfo.js';

const ROOT = '/sys/fs/cgroup';
export const isCgroupV2 = (root = ROOT): boolean => existsSync(path.join(root, 'cgroup.controllers'));

function read(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return undefined;
  }
}

function num(file: string): number {
  const v = read(file);
  const n = v === undefined ? NaN : Number(v);
  return Number.isFinite(n) ? n : 0;
}

function kv(file: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of (read(file) ?? '').split('\n')) {
    const [k, v] = line.split(/\s+/);
    if (k && v !== undefined && Number.isFinite(Number(v))) out[k] = Number(v);
  }
  return out;
}

/** Host CPU time in nanoseconds, as Docker's system_cpu_usage. */
function systemCpuNs(): number {
  const line = (read('/proc/stat') ?? '').split('\n').find((l) => l.startsWith('cpu '));
  if (!line) return 0;
  const jiffies = line
    .split(/\s+/)
    .slice(1, 8)
    .map(Number)
    .reduce((a, b) => a + b, 0);
  return Math.round((jiffies * 1e9) / 100);
}

export interface CpuSample {
  cpu_usage: {
    total_usage: number;
    percpu_usage?: number[];
    usage_in_kernelmode: number;
    usage_in_usermode: number;
  };
  system_cpu_usage: number;
  online_cpus: number;
  throttling_data: { periods: number; throttled_periods: number; throttled_time: number };
}

export interface CgroupStats {
  cpu_stats: CpuSample;
  memory_stats: { usage: number; max_usage?: number; limit: number; stats: Record<string, number> };
  pids_stats: { current: number; limit?: number };
  blkio_stats: {
    io_service_bytes_recursive: { major: number; minor: number; op: string; value: number }[] | null;
  };
}

/**
 * One sample of a cgroup given by its path relative to the hierarchy root (e.g. /berth/<id>);
 * `root` is the cgroup mount (another one only in tests).
 */
export function sampleCgroup(rel: string, root = ROOT): CgroupStats {
  const online = os.cpus().length;
  if (isCgroupV2(root)) {
    const dir = path.join(root, rel);
    const cpu = kv(path.join(dir, 'cpu.stat'));
    const max = read(path.join(dir, 'memory.max'));
    const pidsMax = read(path.join(dir, 'pids.max'));
    const io: { major: number; minor: number; op: string; value: number }[] = [];
    for (const line of (read(path.join(dir, 'io.stat')) ?? '').split('\n')) {
      const m = /^(\d+):(\d+)\s+(.*)$/.exec(line);
      if (!m) continue;
      const f = Object.fromEntries(m[3].split(' ').map((x) => x.split('=')));
      io.push({ major: Number(m[1]), minor: Number(m[2]), op: 'read', value: Number(f.rbytes ?? 0) });
      io.push({ major: Number(m[1]), minor: Number(m[2]), op: 'write', value: Number(f.wbytes ?? 0) });
    }
    return {
      cpu_stats: {
        cpu_usage: {
          total_usage: (cpu.usage_usec ?? 0) * 1000,
          usage_in_kernelmode: (cpu.system_usec ?? 0) * 1000,
          usage_in_usermode: (cpu.user_usec ?? 0) * 1000,
        },
        system_cpu_usage: systemCpuNs(),
        online_cpus: online,
        throttling_data: {
          periods: cpu.nr_periods ?? 0,
          throttled_periods: cpu.nr_throttled ?? 0,
          throttled_time: (cpu.throttled_usec ?? 0) * 1000,
        },
      },
      memory_stats: {
        usage: num(path.join(dir, 'memory.current')),
        limit: max && max !== 'max' ? Number(max) : os.totalmem(),
        stats: kv(path.join(dir, 'memory.stat')),
      },
      pids_stats: {
        current: num(path.join(dir, 'pids.current')),
        ...(pidsMax && pidsMax !== 'max' ? { limit: Number(pidsMax) } : {}),
      },
      blkio_stats: { io_service_bytes_recursive: io.length ? io : null },
    };
  }
  const c = (ctrl: string, file: string) => path.join(root, ctrl, rel, file);
  const percpu = (read(c('cpuacct', 'cpuacct.usage_percpu')) ?? '').split(/\s+/).filter(Boolean).map(Number);
  const cpuStat = kv(c('cpuacct', 'cpuacct.stat'));
  const throttle = kv(c('cpu', 'cpu.stat'));
  const limit = num(c('memory', 'memory.limit_in_bytes'));
  const pidsMax = read(c('pids', 'pids.max'));
  const io: { major: number; minor: number; op: string; value: number }[] = [];
  for (const line of (read(c('blkio', 'blkio.throttle.io_service_bytes')) ?? '').split('\n')) {
    const m = /^(\d+):(\d+)\s+(\w+)\s+(\d+)$/.exec(line);
    if (m) io.push({ major: Number(m[1]), minor: Number(m[2]), op: m[3].toLowerCase(), value: Number(m[4]) });
  }
  const tick = 1e9 / 100;
  return {
    cpu_stats: {
      cpu_usage: {
        total_usage: num(c('cpuacct', 'cpuacct.usage')),
        percpu_usage: percpu,
        usage_in_kernelmode: (cpuStat.system ?? 0) * tick,
        usage_in_usermode: (cpuStat.user ?? 0) * tick,
      },
      system_cpu_usage: systemCpuNs(),
      online_cpus: online,
      throttling_data: {
        periods: throttle.nr_periods ?? 0,
        throttled_periods: throttle.nr_throttled ?? 0,
        throttled_time: throttle.throttled_time ?? 0,
      },
    },
    memory_stats: {
      usage: num(c('memory', 'memory.usage_in_bytes')),
      max_usage: num(c('memory', 'memory.max_usage_in_bytes')),
      limit:
        limit > 0 && limit < Number.MAX_SAFE_INTEGER / 2 ? Math.min(limit, os.totalmem()) : os.totalmem(),
      stats: kv(c('memory', 'memory.stat')),
    },
    pids_stats: {
      current: num(c('pids', 'pids.current')),
      ...(pidsMax && pidsMax !== 'max' ? { limit: Number(pidsMax) } : {}),
    },
    blkio_stats: { io_service_bytes_recursive: io.length ? io : null },
  };
}

/** PIDs (host view) of the processes in a container's cgroup. */
export function cgroupPids(rel: string, root = ROOT): number[] {
  const file = isCgroupV2(root)
    ? path.join(root, rel, 'cgroup.procs')
    : path.join(root, 'pids', rel, 'cgroup.procs');
  return (read(file) ?? '').split('\n').filter(Boolean).map(Number);
}

interface CgroupMount {
  /** v1: the hierarchy's controllers and name= options; v2: empty */
  options: Set<string>;
  version: 1 | 2;
  /** the cgroup path mounted there (/ unless the daemon itself runs in a cgroup namespace) */
  root: string;
  mountPoint: string;
}

/** The cgroup mounts listed in a mountinfo text. */
function parseCgroupMounts(mountinfo: string): CgroupMount[] {
  return parseMountinfo(mountinfo)
    .filter((m) => m.fstype === 'cgroup' || m.fstype === 'cgroup2')
    .map((m) => ({
      options: new Set(m.superOptions),
      version: m.fstype === 'cgroup2' ? 2 : 1,
      root: m.root,
      mountPoint: m.mountPoint,
    }));
}

/**
 * The cgroup.procs file of every hierarchy in a /proc/<pid>/cgroup text, given the host's
 * mountinfo; undefined if one of them is not mounted where the daemon can reach it.
 */
export function procsFilesOf(cgroupText: string, mountinfo: string): string[] | undefined {
  const mounts = parseCgroupMounts(mountinfo);
  const files: string[] = [];
  for (const line of cgroupText.split('\n')) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    const [, controllers, rel] = m;
    const want = controllers ? controllers.split(',') : [];
    const mount = mounts.find((mt) =>
      want.length ? mt.version === 1 && want.every((c) => mt.options.has(c)) : mt.version === 2,
    );
    if (!mount) {
      // an unmounted v2 hierarchy (the empty one of a v1 host nobody mounted) holds nothing to join
      if (!want.length) continue;
      return undefined;
    }
    const inside = mount.root === '/' ? rel : path.posix.relative(mount.root, rel);
    if (inside.startsWith('..')) return undefined;
    files.push(path.join(mount.mountPoint, inside, 'cgroup.procs'));
  }
  return files;
}

let mountinfoCache: string | undefined;

/** The cgroup.procs files to write to join the cgroups of process `pid` (mounts read once). */
export function cgroupProcsFiles(pid: number): string[] | undefined {
  const text = read(`/proc/${pid}/cgroup`);
  if (!text) return undefined;
  mountinfoCache ??= read('/proc/self/mountinfo') ?? '';
  return procsFilesOf(text, mountinfoCache);
}

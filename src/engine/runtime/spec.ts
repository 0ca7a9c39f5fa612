/**
 * The OCI runtime spec (config.json) with Docker's defaults: capabilities, mounts, masked and
 * read-only paths, device rules, seccomp, and the user's options on top.
 */
import { statSync } from 'node:fs';
import { invalidArgument } from '../../common/errors.js';
import { defaultSeccomp, toOciSeccomp } from './seccomp.js';
import type { Mount, Resources, SpecInput } from './runtime.js';

export const DEFAULT_CAPS = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

/** Every capability, in the kernel's numbering (index = CAP_* number: the exec helper's masks rely on it). */
export const ALL_CAPS = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_DAC_READ_SEARCH',
  'CAP_FOWNER',
  'CAP_FSETID',
  'CAP_KILL',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETPCAP',
  'CAP_LINUX_IMMUTABLE',
  'CAP_NET_BIND_SERVICE',
  'CAP_NET_BROADCAST',
  'CAP_NET_ADMIN',
  'CAP_NET_RAW',
  'CAP_IPC_LOCK',
  'CAP_IPC_OWNER',
  'CAP_SYS_MODULE',
  'CAP_SYS_RAWIO',
  'CAP_SYS_CHROOT',
  'CAP_SYS_PTRACE',
  'CAP_SYS_PACCT',
  'CAP_SYS_ADMIN',
  'CAP_SYS_BOOT',
  'CAP_SYS_NICE',
  'CAP_SYS_RESOURCE',
  'CAP_SYS_TIME',
  'CAP_SYS_TTY_CONFIG',
  'CAP_MKNOD',
  'CAP_LEASE',
  'CAP_AUDIT_WRITE',
  'CAP_AUDIT_CONTROL',
  'CAP_SETFCAP',
  'CAP_MAC_OVERRIDE',
  'CAP_MAC_ADMIN',
  'CAP_SYSLOG',
  'CAP_WAKE_ALARM',
  'CAP_BLOCK_SUSPEND',
  'CAP_AUDIT_READ',
  'CAP_PERFMON',
  'CAP_BPF',
  'CAP_CHECKPOINT_RESTORE',
];

export const MASKED_PATHS = [
  '/proc/asound',
  '/proc/acpi',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/sys/firmware',
  '/sys/devices/virtual/powercap',
];

export const READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

/** Normalizes `net_admin`, `NET_ADMIN`, `CAP_NET_ADMIN` to `CAP_NET_ADMIN`. */
export function normalizeCap(c: string): string {
  const up = c.trim().toUpperCase();
  if (up === 'ALL') return 'ALL';
  const name = up.startsWith('CAP_') ? up : `CAP_${up}`;
  if (!ALL_CAPS.includes(name)) throw invalidArgument(`invalid capability: ${c}`);
  return name;
}

export function capabilitySet(input: Pick<SpecInput, 'capAdd' | 'capDrop' | 'privileged'>): string[] {
  if (input.privileged) return [...ALL_CAPS];
  const add = (input.capAdd ?? []).map(normalizeCap);
  const drop = (input.capDrop ?? []).map(normalizeCap);
  let caps = add.includes('ALL')
    ? [...ALL_CAPS]
    : [...DEFAULT_CAPS, ...add.filter((c) => !DEFAULT_CAPS.includes(c))];
  if (drop.includes('ALL')) caps = add.filter((c) => c !== 'ALL');
  else caps = caps.filter((c) => !drop.includes(c));
  return [...new Set(caps)];
}

function defaultMounts(shmSize: number): Mount[] {
  return [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    {
      destination: '/dev',
      type: 'tmpfs',
      source: 'tmpfs',
      options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'],
    },
    {
      destination: '/dev/pts',
      type: 'devpts',
      source: 'devpts',
      options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
    },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    {
      destination: '/sys/fs/cgroup',
      type: 'cgroup',
      source: 'cgroup',
      options: ['ro', 'nosuid', 'noexec', 'nodev'],
    },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    {
      destination: '/dev/shm',
      type: 'tmpfs',
      source: 'shm',
      options: ['nosuid', 'noexec', 'nodev', 'mode=1777', `size=${shmSize}`],
    },
  ];
}

const DEFAULT_DEVICE_RULES = [
  { allow: false, access: 'rwm' },
  { allow: true, type: 'c', major: 1, minor: 5, access: 'rwm' }, // /dev/zero
  { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' }, // /dev/null
  { allow: true, type: 'c', major: 1, minor: 9, access: 'rwm' }, // /dev/urandom
  { allow: true, type: 'c', major: 1, minor: 8, access: 'rwm' }, // /dev/random
  { allow: true, type: 'c', major: 5, minor: 0, access: 'rwm' }, // /dev/tty
  { allow: true, type: 'c', major: 5, minor: 1, access: 'rwm' }, // /dev/console
  { allow: true, type: 'c', major: 5, minor: 2, access: 'rwm' }, // /dev/ptmx
  { allow: true, type: 'c', major: 136, access: 'rwm' }, // /dev/pts/*
  { allow: true, type: 'c', major: 1, minor: 7, access: 'rwm' }, // /dev/full
  { allow: true, type: 'c', major: 10, minor: 200, access: 'rwm' }, // /dev/net/tun
  { allow: false, type: 'c', major: 10, minor: 229, access: 'rwm' }, // /dev/fuse
  { allow: true, type: 'c', access: 'm' },
  { allow: true, type: 'b', access: 'm' },
];

function deviceNumbers(p: string): { major: number; minor: number } {
  let rdev: number;
  try {
    rdev = statSync(p).rdev;
  } catch {
    throw invalidArgument(`no such device: ${p}`);
  }
  // glibc's encoding of dev_t
  return {
    major: ((rdev >> 8) & 0xfff) | ((rdev >> 32) & ~0xfff),
    minor: (rdev & 0xff) | ((rdev >> 12) & ~0xff),
  };
}

export type OciSpec = Record<string, unknown>;

interface OciDevice {
  path: string;
  type: 'c' | 'b';
  major: number;
  minor: number;
  fileMode: number;
  uid: number;
  gid: number;
}

function hostDevice(hostPath: string, path: string): OciDevice {
  let st;
  try {
    st = statSync(hostPath);
  } catch {
    throw invalidArgument(
      `error gathering device information while adding custom device "${hostPath}": no such file or directory`,
    );
  }
  if (!st.isCharacterDevice() && !st.isBlockDevice())
    throw invalidArgument(
      `error gathering device information while adding custom device "${hostPath}": not a device node`,
    );
  return {
    path,
    type: st.isCharacterDevice() ? 'c' : 'b',
    ...deviceNumbers(hostPath),
    fileMode: st.mode & 0o7777,
    uid: st.uid,
    gid: st.gid,
  };
}

/** The limits part of linux.resources (memory, cpu, pids, blkio): for create and `runc update`. */
export function limitResources(r: Resources): Record<string, unknown> {
  const memory: Record<string, unknown> = {};
  if (r.memory) memory.limit = r.memory;
  if (r.memorySwap) memory.swap = r.memorySwap;
  else if (r.memory) memory.swap = r.memory * 2;
  if (r.memoryReservation) memory.reservation = r.memoryReservation;
  if (r.oomKillDisable) memory.disableOOMKiller = true;
  const cpu: Record<string, unknown> = {};
  if (r.cpuShares) cpu.shares = r.cpuShares;
  if (r.nanoCpus) {
    cpu.period = 100000;
    cpu.quota = Math.round((r.nanoCpus * 100000) / 1e9);
  }
  if (r.cpuPeriod) cpu.period = r.cpuPeriod;
  if (r.cpuQuota) cpu.quota = r.cpuQuota;
  if (r.cpusetCpus) cpu.cpus = r.cpusetCpus;
  if (r.cpusetMems) cpu.mems = r.cpusetMems;
  const blockIO: Record<string, unknown> = {};
  if (r.blkioWeight) blockIO.weight = r.blkioWeight;
  if (r.blkioDeviceReadBps?.length)
    blockIO.throttleReadBpsDevice = r.blkioDeviceReadBps.map((d) => ({
      ...deviceNumbers(d.path),
      rate: d.rate,
    }));
  if (r.blkioDeviceWriteBps?.length)
    blockIO.throttleWriteBpsDevice = r.blkioDeviceWriteBps.map((d) => ({
      ...deviceNumbers(d.path),
      rate: d.rate,
    }));

  const out: Record<string, unknown> = {};
  if (Object.keys(memory).length) out.memory = memory;
  if (Object.keys(cpu).length) out.cpu = cpu;
  if (r.pidsLimit && r.pidsLimit > 0) out.pids = { limit: r.pidsLimit };
  if (Object.keys(blockIO).length) out.blockIO = blockIO;
  return out;
}

export function buildSpec(input: SpecInput): OciSpec {
  const caps = capabilitySet(input);
  const namespaces: { type: string; path?: string }[] = [{ type: 'mount' }];
  for (const type of ['pid', 'ipc'] as const) {
    const ns = input.namespaces[type];
    if (ns === 'private') namespaces.push({ type });
    else if (typeof ns === 'object') namespaces.push({ type, path: ns.path });
  }
  if (input.namespaces.uts === 'private') namespaces.push({ type: 'uts' });
  const net = input.namespaces.network;
  if (net === 'private') namespaces.push({ type: 'network' });
  else if (typeof net === 'object') namespaces.push({ type: 'network', path: net.path });
  namespaces.push({ type: 'cgroup' });

  const devices = (input.devices ?? []).map((d) => ({
    ...hostDevice(d.hostPath, d.path),
    access: d.permissions,
  }));
  const resources: Record<string, unknown> = {
    devices: input.privileged
      ? [{ allow: true, access: 'rwm' }]
      : [
          ...DEFAULT_DEVICE_RULES,
          ...devices.map((d) => ({
            allow: true,
            type: d.type,
            major: d.major,
            minor: d.minor,
            access: d.access,
          })),
        ],
  };
  Object.assign(resources, limitResources(input.resources));

  let seccomp: unknown;
  if (!input.privileged && input.seccomp !== 'unconfined') {
    seccomp =
      typeof input.seccomp === 'object' ? toOciSeccomp(input.seccomp.profile, caps) : defaultSeccomp(caps);
  }

  const mounts = [...defaultMounts(input.shmSize ?? 64 * 1024 * 1024)];
  for (const m of input.mounts) {
    const i = mounts.findIndex((x) => x.destination === m.destination);
    if (i >= 0) mounts.splice(i, 1);
    mounts.push(m);
  }
  if (input.privileged)
    for (const m of mounts)
      if (m.destination === '/sys' || m.destination === '/sys/fs/cgroup')
        m.options = m.options?.filter((o) => o !== 'ro');

  return {
    ociVersion: '1.0.2',
    process: {
      terminal: input.terminal,
      user: {
        uid: input.user.uid,
        gid: input.user.gid,
        ...(input.user.additionalGids?.length ? { additionalGids: input.user.additionalGids } : {}),
      },
      args: input.args,
      env: input.env,
      cwd: input.cwd || '/',
      capabilities: { bounding: caps, effective: caps, permitted: caps },
      ...(input.ulimits?.length
        ? {
            rlimits: input.ulimits.map((u) => ({
              type: `RLIMIT_${u.name.toUpperCase()}`,
              soft: u.soft,
              hard: u.hard,
            })),
          }
        : {}),
      noNewPrivileges: !!input.noNewPrivileges,
      ...(input.oomScoreAdj ? { oomScoreAdj: input.oomScoreAdj } : {}),
    },
    root: { path: input.rootfs, readonly: !!input.readonlyRootfs },
    hostname: input.namespaces.uts === 'private' ? input.hostname : undefined,
    mounts,
    linux: {
      resources,
      cgroupsPath: input.cgroupsPath,
      namespaces,
      ...(devices.length ? { devices: devices.map(({ access: _access, ...d }) => d) } : {}),
      ...(input.sysctls && Object.keys(input.sysctls).length ? { sysctl: input.sysctls } : {}),
      ...(seccomp ? { seccomp } : {}),
      ...(input.privileged ? {} : { maskedPaths: MASKED_PATHS, readonlyPaths: READONLY_PATHS }),
    },
  };
}

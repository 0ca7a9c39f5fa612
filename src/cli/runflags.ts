/**
 * `run`/`create` flags turned into an Engine API create body, with Docker's flag errors.
 */
import { readFileSync } from 'node:fs';
import { parseGoDuration } from '../common/units.js';
import { ExitError } from './errors.js';
import { type NetFlags, netBody } from './netflags.js';
import { mountFlags } from './mountflags.js';

/** go-units RAMInBytes: binary units, e.g. 512m, 1g, 1.5GiB. */
export function parseMemory(v: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?) ?([kKmMgGtTpP])?[iI]?[bB]?$/.exec(v.trim());
  if (!m) throw new ExitError(125, `invalid argument "${v}" for "${flag}" flag: invalid size: '${v}'`);
  const mult =
    { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 }[(m[2] ?? '').toLowerCase()] ??
    1;
  return Math.floor(Number(m[1]) * mult);
}

function parseCpus(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0 || !/^\d*\.?\d+$/.test(v.trim()))
    throw new ExitError(
      125,
      `invalid argument "${v}" for "--cpus" flag: failed to parse ${v} as a rational number`,
    );
  return Math.round(n * 1e9);
}

function parseInteger(v: string, flag: string): number {
  if (!/^-?\d+$/.test(v.trim()))
    throw new ExitError(
      125,
      `invalid argument "${v}" for "${flag}" flag: strconv.ParseInt: parsing "${v}": invalid syntax`,
    );
  return Number(v);
}

export interface RunFlags extends NetFlags {
  detach?: boolean;
  rm?: boolean;
  interactive?: boolean;
  tty?: boolean;
  name?: string;
  env: string[];
  envFile: string[];
  workdir?: string;
  user?: string;
  entrypoint?: string;
  hostname?: string;
  label: string[];
  init?: boolean;
  stopSignal?: string;
  stopTimeout?: string;
  memory?: string;
  memorySwap?: string;
  memoryReservation?: string;
  oomKillDisable?: boolean;
  cpus?: string;
  cpuShares?: string;
  cpuPeriod?: string;
  cpuQuota?: string;
  cpusetCpus?: string;
  cpusetMems?: string;
  pidsLimit?: string;
  oomScoreAdj?: string;
  blkioWeight?: string;
  shmSize?: string;
  ulimit: string[];
  capAdd: string[];
  capDrop: string[];
  privileged?: boolean;
  readOnly?: boolean;
  tmpfs: string[];
  securityOpt: string[];
  groupAdd: string[];
  network?: string;
  pid?: string;
  ipc?: string;
  uts?: string;
  restart?: string;
  publish: string[];
  expose: string[];
  platform?: string;
  pull?: string;
  detachKeys?: string;
  volume?: string[];
  mount?: string[];
  volumesFrom?: string[];
  device: string[];
  deviceReadBps: string[];
  deviceWriteBps: string[];
  healthCmd?: string;
  healthInterval?: string;
  healthTimeout?: string;
  healthRetries?: string;
  healthStartPeriod?: string;
  healthStartInterval?: string;
  /** commander's --no-healthcheck: false when given */
  healthcheck?: boolean;
  logDriver?: string;
  logOpt: string[];
}

/** A `--health-*` flag's Go duration (e.g. 1m30s, 500ms) -> nanoseconds. */
export function parseDuration(v: string, flag: string): number {
  const n = parseGoDuration(v);
  if (n === undefined)
    throw new ExitError(125, `invalid argument "${v}" for "${flag}" flag: time: invalid duration "${v}"`);
  return n;
}

/** `/dev/sda:1mb` -> a throttle entry (go-units size, decimal-free binary units). */
function parseThrottle(v: string, flag: string): { Path: string; Rate: number } {
  const i = v.lastIndexOf(':');
  if (i <= 0) throw new ExitError(125, `invalid argument "${v}" for "${flag}" flag: bad format: ${v}`);
  return { Path: v.slice(0, i), Rate: parseMemory(v.slice(i + 1), flag) };
}

/** `--device /dev/x[:/dev/y][:rwm]` like Docker's parseDevice. */
function parseDevice(v: string): { PathOnHost: string; PathInContainer: string; CgroupPermissions: string } {
  const parts = v.split(':');
  let perms = 'rwm';
  if (parts.length > 1 && /^[rwm]{1,3}$/.test(parts[parts.length - 1])) perms = parts.pop()!;
  if (parts.length > 2 || !parts[0])
    throw new ExitError(
      125,
      `invalid argument "${v}" for "--device" flag: invalid device specification: ${v}`,
    );
  return { PathOnHost: parts[0], PathInContainer: parts[1] ?? parts[0], CgroupPermissions: perms };
}

function healthcheckOf(f: RunFlags): Record<string, unknown> | undefined {
  const any =
    f.healthCmd !== undefined ||
    f.healthInterval !== undefined ||
    f.healthTimeout !== undefined ||
    f.healthRetries !== undefined ||
    f.healthStartPeriod !== undefined ||
    f.healthStartInterval !== undefined;
  if (f.healthcheck === false) {
    if (any) throw new ExitError(125, '--no-healthcheck conflicts with --health-* options');
    return { Test: ['NONE'] };
  }
  if (!any) return undefined;
  const retries = f.healthRetries !== undefined ? parseInteger(f.healthRetries, '--health-retries') : 0;
  if (retries < 0) throw new ExitError(125, '--health-retries cannot be negative');
  const d = (v: string | undefined, flag: string) => {
    const n = v === undefined ? 0 : parseDuration(v, flag);
    if (n < 0) throw new ExitError(125, `${flag} cannot be negative`);
    return n;
  };
  return {
    ...(f.healthCmd !== undefined ? { Test: ['CMD-SHELL', f.healthCmd] } : {}),
    Interval: d(f.healthInterval, '--health-interval'),
    Timeout: d(f.healthTimeout, '--health-timeout'),
    StartPeriod: d(f.healthStartPeriod, '--health-start-period'),
    StartInterval: d(f.healthStartInterval, '--health-start-interval'),
    Retries: retries,
  };
}

function envFileLines(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ExitError(
      125,
      `open ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (err as Error).message}`,
    );
  }
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => (l.includes('=') ? l : process.env[l] !== undefined ? `${l}=${process.env[l]}` : l));
}

/** `-e NAME` takes NAME's value from this environment, like Docker. */
function envArg(e: string): string {
  if (e.includes('=')) return e;
  return process.env[e] !== undefined ? `${e}=${process.env[e]}` : e;
}

function keyValues(list: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of list) {
    const eq = l.indexOf('=');
    out[eq < 0 ? l : l.slice(0, eq)] = eq < 0 ? '' : l.slice(eq + 1);
  }
  return out;
}

export function createBody(image: string, cmd: string[], f: RunFlags): Record<string, unknown> {
  const restart = f.restart ? parseRestart(f.restart) : { Name: 'no', MaximumRetryCount: 0 };
  const tmpfs: Record<string, string> = {};
  for (const t of f.tmpfs) {
    const i = t.indexOf(':');
    tmpfs[i < 0 ? t : t.slice(0, i)] = i < 0 ? '' : t.slice(i + 1);
  }
  const ulimits = f.ulimit.map((u) => {
    const m = /^([a-z]+)=(-?\d+)(?::(-?\d+))?$/.exec(u);
    if (!m)
      throw new ExitError(125, `invalid argument "${u}" for "--ulimit" flag: invalid ulimit argument: ${u}`);
    return { Name: m[1], Soft: Number(m[2]), Hard: Number(m[3] ?? m[2]) };
  });
  const net = netBody(f);
  const mounts = mountFlags(f.volume ?? [], f.mount ?? []);
  const healthcheck = healthcheckOf(f);
  const exposed: Record<string, object> = {};
  for (const e of f.expose) exposed[e.includes('/') ? e : `${e}/tcp`] = {};
  const body: Record<string, unknown> = {
    Hostname: f.hostname ?? '',
    Domainname: '',
    User: f.user ?? '',
    AttachStdin: !!f.interactive && !f.detach,
    AttachStdout: !f.detach,
    AttachStderr: !f.detach,
    Tty: !!f.tty,
    OpenStdin: !!f.interactive,
    StdinOnce: !!f.interactive && !f.detach,
    Env: [...f.envFile.flatMap(envFileLines), ...f.env.map(envArg)],
    Cmd: cmd.length ? cmd : null,
    Image: image,
    WorkingDir: f.workdir ?? '',
    Entrypoint: f.entrypoint !== undefined ? (f.entrypoint === '' ? [''] : [f.entrypoint]) : null,
    Labels: keyValues(f.label),
    ...net.top,
    Volumes: mounts.volumes,
    ...(f.stopSignal ? { StopSignal: f.stopSignal } : {}),
    ...(f.stopTimeout !== undefined ? { StopTimeout: parseInteger(f.stopTimeout, '--stop-timeout') } : {}),
    ...(healthcheck ? { Healthcheck: healthcheck } : {}),
    HostConfig: {
      AutoRemove: !!f.rm,
      NetworkMode: f.network ?? 'default',
      PidMode: f.pid ?? '',
      IpcMode: f.ipc ?? '',
      UTSMode: f.uts ?? '',
      RestartPolicy: restart,
      Privileged: !!f.privileged,
      ReadonlyRootfs: !!f.readOnly,
      CapAdd: f.capAdd.length ? f.capAdd : null,
      CapDrop: f.capDrop.length ? f.capDrop : null,
      SecurityOpt: f.securityOpt.length ? f.securityOpt : null,
      Memory: f.memory ? parseMemory(f.memory, '-m, --memory') : 0,
      MemorySwap: f.memorySwap
        ? f.memorySwap === '-1'
          ? -1
          : parseMemory(f.memorySwap, '--memory-swap')
        : 0,
      MemoryReservation: f.memoryReservation ? parseMemory(f.memoryReservation, '--memory-reservation') : 0,
      OomKillDisable: !!f.oomKillDisable,
      NanoCpus: f.cpus ? parseCpus(f.cpus) : 0,
      CpuShares: f.cpuShares ? parseInteger(f.cpuShares, '-c, --cpu-shares') : 0,
      CpuPeriod: f.cpuPeriod ? parseInteger(f.cpuPeriod, '--cpu-period') : 0,
      CpuQuota: f.cpuQuota ? parseInteger(f.cpuQuota, '--cpu-quota') : 0,
      CpusetCpus: f.cpusetCpus ?? '',
      CpusetMems: f.cpusetMems ?? '',
      PidsLimit: f.pidsLimit ? parseInteger(f.pidsLimit, '--pids-limit') : null,
      ...(f.oomScoreAdj ? { OomScoreAdj: parseInteger(f.oomScoreAdj, '--oom-score-adj') } : {}),
      BlkioWeight: f.blkioWeight ? parseInteger(f.blkioWeight, '--blkio-weight') : 0,
      ShmSize: f.shmSize ? parseMemory(f.shmSize, '--shm-size') : 0,
      Ulimits: ulimits,
      Tmpfs: tmpfs,
      GroupAdd: f.groupAdd.length ? f.groupAdd : null,
      Init: f.init ? true : null,
      ConsoleSize: f.tty && process.stdout.isTTY ? [process.stdout.rows, process.stdout.columns] : [0, 0],
      ...net.host,
      Binds: mounts.binds.length ? mounts.binds : null,
      Mounts: mounts.mounts.length ? mounts.mounts : null,
      VolumesFrom: f.volumesFrom?.length ? f.volumesFrom : null,
      LogConfig: { Type: f.logDriver ?? '', Config: keyValues(f.logOpt ?? []) },
      Devices: (f.device ?? []).map(parseDevice),
      BlkioDeviceReadBps: (f.deviceReadBps ?? []).map((v) => parseThrottle(v, '--device-read-bps')),
      BlkioDeviceWriteBps: (f.deviceWriteBps ?? []).map((v) => parseThrottle(v, '--device-write-bps')),
    },
    ...(net.networking ? { NetworkingConfig: net.networking } : {}),
  };
  return body;
}

function parseRestart(s: string): { Name: string; MaximumRetryCount: number } {
  const [name, count] = s.split(':');
  if (!['no', 'always', 'unless-stopped', 'on-failure'].includes(name))
    throw new ExitError(125, `invalid restart policy ${name}`);
  if (count !== undefined && name !== 'on-failure')
    throw new ExitError(
      125,
      `invalid restart policy format: maximum retry count can only be used with 'on-failure'`,
    );
  return { Name: name, MaximumRetryCount: count ? parseInteger(count, '--restart') : 0 };
}

export interface UpdateFlags {
  memory?: string;
  memorySwap?: string;
  memoryReservation?: string;
  cpus?: string;
  cpuShares?: string;
  cpuPeriod?: string;
  cpuQuota?: string;
  cpusetCpus?: string;
  cpusetMems?: string;
  pidsLimit?: string;
  blkioWeight?: string;
  restart?: string;
}

/** `update` flags -> the update body; only what was given is sent. */
export function updateBody(f: UpdateFlags): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  if (f.memory) body.Memory = parseMemory(f.memory, '-m, --memory');
  if (f.memorySwap) body.MemorySwap = f.memorySwap === '-1' ? -1 : parseMemory(f.memorySwap, '--memory-swap');
  if (f.memoryReservation) body.MemoryReservation = parseMemory(f.memoryReservation, '--memory-reservation');
  if (f.cpus) body.NanoCpus = parseCpus(f.cpus);
  if (f.cpuShares) body.CpuShares = parseInteger(f.cpuShares, '-c, --cpu-shares');
  if (f.cpuPeriod) body.CpuPeriod = parseInteger(f.cpuPeriod, '--cpu-period');
  if (f.cpuQuota) body.CpuQuota = parseInteger(f.cpuQuota, '--cpu-quota');
  if (f.cpusetCpus) body.CpusetCpus = f.cpusetCpus;
  if (f.cpusetMems) body.CpusetMems = f.cpusetMems;
  if (f.pidsLimit) body.PidsLimit = parseInteger(f.pidsLimit, '--pids-limit');
  if (f.blkioWeight) body.BlkioWeight = parseInteger(f.blkioWeight, '--blkio-weight');
  if (f.restart) body.RestartPolicy = parseRestart(f.restart);
  if (Object.keys(body).length === 0)
    throw new ExitError(1, 'you must provide one or more flags when using this command');
  return body;
}

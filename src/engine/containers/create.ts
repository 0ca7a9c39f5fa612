/**
 * Turns a Docker create request (Config + HostConfig, untrusted JSON) into a checked record.
 */
import { existsSync } from 'node:fs';
import { invalidArgument } from '../../common/errors.js';
import type { Image } from '../images/images.js';
import {
  type ContainerConfig,
  type DeviceMapping,
  type HealthConfig,
  type HostConfig,
  type RestartPolicy,
  type ThrottleDevice,
} from './containers.js';

type Json = Record<string, unknown>;

function isObj(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function typeError(field: string, want: string, v: unknown): Error {
  const got = v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
  return invalidArgument(`json: cannot unmarshal ${got} into Go struct field ${field} of type ${want}`);
}

function str(o: Json, k: string, where: string, dflt = ''): string {
  const v = o[k];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'string') throw typeError(`${where}.${k}`, 'string', v);
  return v;
}

function bool(o: Json, k: string, where: string): boolean {
  const v = o[k];
  if (v === undefined || v === null) return false;
  if (typeof v !== 'boolean') throw typeError(`${where}.${k}`, 'bool', v);
  return v;
}

function num(o: Json, k: string, where: string, dflt = 0): number {
  const v = o[k];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw typeError(`${where}.${k}`, 'int64', v);
  return v;
}

function strList(o: Json, k: string, where: string): string[] | null {
  const v = o[k];
  if (v === undefined || v === null) return null;
  if (typeof v === 'string') return [v]; // Docker accepts a bare string for Cmd/Entrypoint (strslice)
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string'))
    throw typeError(`${where}.${k}`, '[]string', v);
  return v as string[];
}

function strMap(o: Json, k: string, where: string): Record<string, string> {
  const v = o[k];
  if (v === undefined || v === null) return {};
  if (!isObj(v) || !Object.values(v).every((x) => typeof x === 'string'))
    throw typeError(`${where}.${k}`, 'map[string]string', v);
  return v as Record<string, string>;
}

function objMap(o: Json, k: string, where: string): Record<string, object> | undefined {
  const v = o[k];
  if (v === undefined || v === null) return undefined;
  if (!isObj(v)) throw typeError(`${where}.${k}`, 'map[string]struct {}', v);
  return v as Record<string, object>;
}

export function parseConfig(body: unknown): ContainerConfig {
  if (!isObj(body)) throw invalidArgument('invalid JSON: the request body must be an object');
  const w = 'ContainerConfigWrapper';
  const env = strList(body, 'Env', w) ?? [];
  for (const e of env)
    if (e.startsWith('=') || e === '') throw invalidArgument(`invalid environment variable: ${e}`);
  return {
    Hostname: str(body, 'Hostname', w),
    Domainname: str(body, 'Domainname', w),
    User: str(body, 'User', w),
    AttachStdin: bool(body, 'AttachStdin', w),
    AttachStdout: bool(body, 'AttachStdout', w),
    AttachStderr: bool(body, 'AttachStderr', w),
    ExposedPorts: objMap(body, 'ExposedPorts', w),
    Tty: bool(body, 'Tty', w),
    OpenStdin: bool(body, 'OpenStdin', w),
    StdinOnce: bool(body, 'StdinOnce', w),
    Env: env,
    Cmd: strList(body, 'Cmd', w),
    Image: str(body, 'Image', w),
    Volumes: objMap(body, 'Volumes', w) ?? null,
    WorkingDir: str(body, 'WorkingDir', w),
    Entrypoint: strList(body, 'Entrypoint', w),
    Labels: strMap(body, 'Labels', w),
    StopSignal: str(body, 'StopSignal', w) || undefined,
    StopTimeout:
      body.StopTimeout === undefined || body.StopTimeout === null ? undefined : num(body, 'StopTimeout', w),
    Healthcheck: parseHealthcheck(body.Healthcheck),
  };
}

const MIN_HEALTH_DURATION = 1e6; // 1 ms, as Docker's API enforces

export function parseHealthcheck(v: unknown): HealthConfig | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObj(v)) throw typeError('Config.Healthcheck', 'container.HealthConfig', v);
  const w = 'HealthConfig';
  const hc: HealthConfig = {};
  const test = strList(v, 'Test', w);
  if (test) {
    if (test.length && !['NONE', 'CMD', 'CMD-SHELL'].includes(test[0]))
      throw invalidArgument(`invalid healthcheck test: unknown type "${test[0]}"`);
    hc.Test = test;
  }
  for (const k of ['Interval', 'Timeout', 'StartPeriod', 'StartInterval'] as const) {
    const n = num(v, k, w);
    if (n < 0) throw invalidArgument(`${k} in Healthcheck cannot be negative`);
    if (n !== 0 && n < MIN_HEALTH_DURATION)
      throw invalidArgument(`${k} in Healthcheck cannot be less than 1ms`);
    if (n) hc[k] = n;
  }
  const retries = num(v, 'Retries', w);
  if (retries < 0) throw invalidArgument('Retries in Healthcheck cannot be negative');
  if (retries) hc.Retries = retries;
  return hc;
}

/** Image healthcheck with the container's on top, field by field (Docker's merge). */
export function mergeHealthcheck(
  image: HealthConfig | undefined,
  own: HealthConfig | undefined,
): HealthConfig | undefined {
  if (!image && !own) return undefined;
  const out: HealthConfig = { ...(image ?? {}) };
  for (const [k, v] of Object.entries(own ?? {})) if (v !== undefined) Object.assign(out, { [k]: v });
  return out;
}

function parseDevices(h: Json): DeviceMapping[] {
  const v = h.Devices;
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw typeError('HostConfig.Devices', '[]container.DeviceMapping', v);
  return v.map((d: unknown) => {
    if (!isObj(d)) throw typeError('HostConfig.Devices', 'container.DeviceMapping', d);
    const host = str(d, 'PathOnHost', 'DeviceMapping');
    const inner = str(d, 'PathInContainer', 'DeviceMapping') || host;
    const perms = str(d, 'CgroupPermissions', 'DeviceMapping') || 'rwm';
    if (!host.startsWith('/')) throw invalidArgument(`invalid device path: ${host}`);
    if (!inner.startsWith('/')) throw invalidArgument(`invalid device path in container: ${inner}`);
    if (!/^[rwm]{1,3}$/.test(perms)) throw invalidArgument(`invalid device mode: ${perms}`);
    if (!existsSync(host))
      throw invalidArgument(
        `error gathering device information while adding custom device "${host}": no such file or directory`,
      );
    return { PathOnHost: host, PathInContainer: inner, CgroupPermissions: perms };
  });
}

function parseThrottle(h: Json, k: string): ThrottleDevice[] {
  const v = h[k];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw typeError(`HostConfig.${k}`, '[]*blkiodev.ThrottleDevice', v);
  return v.map((d: unknown) => {
    if (!isObj(d)) throw typeError(`HostConfig.${k}`, 'blkiodev.ThrottleDevice', d);
    const rate = num(d, 'Rate', 'ThrottleDevice');
    if (rate < 0) throw invalidArgument(`invalid rate for device ${String(d.Path)}`);
    return { Path: str(d, 'Path', 'ThrottleDevice'), Rate: rate };
  });
}

const ULIMIT_NAMES = [
  'core',
  'cpu',
  'data',
  'fsize',
  'locks',
  'memlock',
  'msgqueue',
  'nice',
  'nofile',
  'nproc',
  'rss',
  'rtprio',
  'rttime',
  'sigpending',
  'stack',
  'as',
];

function parseUlimits(h: Json): { Name: string; Soft: number; Hard: number }[] | null {
  const v = h.Ulimits;
  if (v === undefined || v === null) return null;
  if (!Array.isArray(v)) throw typeError('HostConfig.Ulimits', '[]*units.Ulimit', v);
  return v.map((u: unknown) => {
    if (!isObj(u)) throw typeError('HostConfig.Ulimits', 'units.Ulimit', u);
    const name = str(u, 'Name', 'Ulimit');
    if (!ULIMIT_NAMES.includes(name)) throw invalidArgument(`invalid ulimit type: ${name}`);
    const soft = num(u, 'Soft', 'Ulimit');
    const hard = num(u, 'Hard', 'Ulimit');
    if (soft > hard && hard !== -1)
      throw invalidArgument(`ulimit soft limit must be less than or equal to hard limit: ${soft} > ${hard}`);
    return { Name: name, Soft: soft, Hard: hard };
  });
}

const LOG_OPTS = ['max-size', 'max-file', 'compress', 'labels', 'env', 'tag', 'mode', 'max-buffer-size'];

/** `10m`, `1g`, `512k`, `100` -> bytes (docker's RAMInBytes for max-size). */
export function parseLogSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmg]?)b?$/i.exec(s.trim());
  if (!m) throw invalidArgument(`failed to parse max-size: ${s}`);
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2].toLowerCase() as '' | 'k' | 'm' | 'g'];
  return Math.floor(Number(m[1]) * mult);
}

function checkLogConfig(type: string, cfg: Record<string, string>): void {
  for (const k of Object.keys(cfg))
    if (!LOG_OPTS.includes(k)) throw invalidArgument(`unknown log opt '${k}' for ${type} log driver`);
  if (cfg['max-size'] !== undefined && cfg['max-size'] !== '-1') {
    if (parseLogSize(cfg['max-size']) <= 0) throw invalidArgument('max-size must be a positive number');
  }
  if (cfg['max-file'] !== undefined) {
    const n = Number(cfg['max-file']);
    if (!Number.isInteger(n)) throw invalidArgument(`failed to parse max-file: ${cfg['max-file']}`);
    if (n < 1) throw invalidArgument('max-file cannot be less than 1');
    if (n > 1 && cfg['max-size'] === undefined)
      throw invalidArgument('max-file can only be used with max-size');
  }
}

const RESTART_NAMES = ['', 'no', 'always', 'unless-stopped', 'on-failure'];

export function parseHostConfig(raw: unknown): HostConfig {
  const h: Json = raw === undefined || raw === null ? {} : isObj(raw) ? raw : {};
  if (raw !== undefined && raw !== null && !isObj(raw))
    throw typeError('ContainerConfigWrapper.HostConfig', 'container.HostConfig', raw);
  const w = 'HostConfig';
  const rp = isObj(h.RestartPolicy) ? h.RestartPolicy : {};
  const restart: RestartPolicy = {
    Name: str(rp, 'Name', 'RestartPolicy') as RestartPolicy['Name'],
    MaximumRetryCount: num(rp, 'MaximumRetryCount', 'RestartPolicy'),
  };
  if (!RESTART_NAMES.includes(restart.Name))
    throw invalidArgument(`invalid restart policy '${restart.Name}'`);
  if (restart.MaximumRetryCount < 0)
    throw invalidArgument('invalid restart policy: maximum retry count cannot be negative');
  if (restart.MaximumRetryCount > 0 && restart.Name !== 'on-failure')
    throw invalidArgument(`invalid restart policy: maximum retry count can only be used with 'on-failure'`);
  const autoRemove = bool(h, 'AutoRemove', w);
  if (autoRemove && restart.Name && restart.Name !== 'no')
    throw invalidArgument('conflicting options: cannot specify both --restart and --rm');
  const memory = num(h, 'Memory', w);
  if (memory < 0) throw invalidArgument('invalid memory limit: it cannot be negative');
  if (memory > 0 && memory < 6 * 1024 * 1024) throw invalidArgument('Minimum memory limit allowed is 6MB');
  const memorySwap = num(h, 'MemorySwap', w);
  if (memory > 0 && memorySwap > 0 && memorySwap < memory)
    throw invalidArgument('Minimum memoryswap limit should be larger than memory limit, see usage');
  const nanoCpus = num(h, 'NanoCpus', w);
  if (nanoCpus < 0)
    throw invalidArgument('invalid NanoCPUs: range of CPUs is from 0.01 to the number of CPUs');
  const cpuQuota = num(h, 'CpuQuota', w);
  const cpuPeriod = num(h, 'CpuPeriod', w);
  if (nanoCpus > 0 && (cpuQuota > 0 || cpuPeriod > 0))
    throw invalidArgument('Conflicting options: Nano CPUs and CPU Period cannot both be set');
  const blkio = num(h, 'BlkioWeight', w);
  if (blkio !== 0 && (blkio < 10 || blkio > 1000))
    throw invalidArgument('invalid --blkio-weight: range of blkio weight is from 10 to 1000');
  const shm = num(h, 'ShmSize', w);
  if (shm < 0) throw invalidArgument('SHM size can not be less than 0');
  const cs = h.ConsoleSize;
  const consoleSize: [number, number] =
    Array.isArray(cs) && cs.length === 2 && cs.every((x) => typeof x === 'number') ? [cs[0], cs[1]] : [0, 0];
  const lc = isObj(h.LogConfig) ? h.LogConfig : {};
  const logType = str(lc, 'Type', 'LogConfig') || 'json-file';
  if (!['json-file', 'k8s-file', 'local', 'none'].includes(logType))
    throw invalidArgument(`logging driver "${logType}" is not supported`);
  const pids = h.PidsLimit === undefined || h.PidsLimit === null ? null : num(h, 'PidsLimit', w);
  const oomScoreAdj = num(h, 'OomScoreAdj', w);
  if (oomScoreAdj < -1000 || oomScoreAdj > 1000)
    throw invalidArgument(`Invalid value ${oomScoreAdj}, range for oom score adj is [-1000, 1000]`);
  const ipcMode = str(h, 'IpcMode', w);
  if (
    ipcMode &&
    !['none', 'private', 'shareable', 'host'].includes(ipcMode) &&
    !/^container:.+/.test(ipcMode)
  )
    throw invalidArgument(`invalid IPC mode: ${ipcMode}`);
  const pidMode = str(h, 'PidMode', w);
  if (pidMode && pidMode !== 'host' && !/^container:.+/.test(pidMode))
    throw invalidArgument(`invalid PID mode: ${pidMode}`);
  const logConfig = strMap(lc, 'Config', 'LogConfig');
  checkLogConfig(logType, logConfig);
  return {
    ...h,
    AutoRemove: autoRemove,
    NetworkMode: str(h, 'NetworkMode', w) || 'default',
    PidMode: pidMode,
    IpcMode: ipcMode || 'private',
    UTSMode: str(h, 'UTSMode', w),
    RestartPolicy: restart,
    Privileged: bool(h, 'Privileged', w),
    ReadonlyRootfs: bool(h, 'ReadonlyRootfs', w),
    CapAdd: strList(h, 'CapAdd', w),
    CapDrop: strList(h, 'CapDrop', w),
    SecurityOpt: strList(h, 'SecurityOpt', w),
    Memory: memory,
    MemorySwap: memorySwap,
    MemoryReservation: num(h, 'MemoryReservation', w),
    OomKillDisable: bool(h, 'OomKillDisable', w),
    OomScoreAdj: oomScoreAdj,
    NanoCpus: nanoCpus,
    CpuShares: num(h, 'CpuShares', w),
    CpuPeriod: cpuPeriod,
    CpuQuota: cpuQuota,
    CpusetCpus: str(h, 'CpusetCpus', w),
    CpusetMems: str(h, 'CpusetMems', w),
    PidsLimit: pids,
    BlkioWeight: blkio,
    ShmSize: shm || 64 * 1024 * 1024,
    Init: typeof h.Init === 'boolean' ? h.Init : null,
    ConsoleSize: consoleSize,
    LogConfig: { Type: logType, Config: logConfig },
    Devices: parseDevices(h),
    BlkioDeviceReadBps: parseThrottle(h, 'BlkioDeviceReadBps'),
    BlkioDeviceWriteBps: parseThrottle(h, 'BlkioDeviceWriteBps'),
    Ulimits: parseUlimits(h),
  };
}

/** Entrypoint + Cmd, image defaults applied like Docker (a new Entrypoint drops the image's Cmd). */
export function commandOf(cfg: ContainerConfig, img: Image): { path: string; args: string[] } {
  const ic = img.config.config ?? {};
  const entrypoint = cfg.Entrypoint ?? ic.Entrypoint ?? [];
  const cmd = cfg.Cmd ?? (cfg.Entrypoint ? [] : (ic.Cmd ?? []));
  const all = [...entrypoint, ...cmd];
  if (all.length === 0) throw invalidArgument('No command specified');
  return { path: all[0], args: all.slice(1) };
}

/** Image Env first, request Env overriding by name. */
export function mergeEnv(imageEnv: string[], requestEnv: string[]): string[] {
  const out = new Map<string, string>();
  for (const e of [...imageEnv, ...requestEnv]) {
    const eq = e.indexOf('=');
    out.set(eq < 0 ? e : e.slice(0, eq), e);
  }
  return [...out.values()].filter((e) => e.includes('='));
}

const UPDATABLE = [
  'Memory',
  'MemorySwap',
  'MemoryReservation',
  'NanoCpus',
  'CpuShares',
  'CpuPeriod',
  'CpuQuota',
  'CpusetCpus',
  'CpusetMems',
  'PidsLimit',
  'BlkioWeight',
  'BlkioDeviceReadBps',
  'BlkioDeviceWriteBps',
  'RestartPolicy',
] as const;

/**
 * An update request (`POST /containers/{id}/update`): only the fields it names change, checked
 * with the rules of create on the result.
 */
export function parseUpdate(body: unknown, current: HostConfig): Partial<HostConfig> {
  if (!isObj(body)) throw invalidArgument('invalid JSON: the request body must be an object');
  const given: Json = {};
  for (const k of UPDATABLE) {
    const v = body[k];
    if (v === undefined || v === null) continue;
    // Docker treats 0 / "" as "leave unchanged" for update, except for the restart policy.
    if ((v === 0 || v === '') && k !== 'RestartPolicy') continue;
    given[k] = v;
  }
  if (isObj(given.RestartPolicy) && !given.RestartPolicy.Name) delete given.RestartPolicy;
  const merged = parseHostConfig({ ...current, ...given });
  const out: Partial<HostConfig> = {};
  for (const k of Object.keys(given)) Object.assign(out, { [k]: merged[k] });
  if (out.Memory && !given.MemorySwap && current.MemorySwap > 0 && current.MemorySwap < out.Memory)
    throw invalidArgument(
      'Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time',
    );
  return out;
}

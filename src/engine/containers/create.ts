/**
 * Turns a Docker create request (Config + HostConfig, untrusted JSON) into a checked record.
 */
import { invalidArgument } from '../../common/errors.js';
import type { Image } from '../images/images.js';
import { type ContainerConfig, type HostConfig, type RestartPolicy } from './containers.js';

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
  };
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
  return {
    ...h,
    AutoRemove: autoRemove,
    NetworkMode: str(h, 'NetworkMode', w) || 'default',
    PidMode: str(h, 'PidMode', w),
    IpcMode: str(h, 'IpcMode', w) || 'private',
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
    LogConfig: { Type: logType, Config: strMap(lc, 'Config', 'LogConfig') },
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

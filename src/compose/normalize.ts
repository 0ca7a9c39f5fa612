/**
 * Checks one file's raw (interpolated) YAML and rewrites it into the canonical long forms of
 * model.ts. Every problem is reported with its path (`services.web.ports[0]: invalid port "80:abc"`).
 * Relative paths are resolved against `baseDir`.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { parseDuration } from './duration.js';
import { ComposeError } from './errors.js';
import type {
  BuildConfig,
  DependsCondition,
  HealthcheckConfig,
  MountConfig,
  NetworkConfig,
  PortConfig,
  ServiceConfig,
  ServiceNetwork,
  VolumeConfig,
} from './model.js';
import { shellSplit } from './shlex.js';

type Raw = Record<string, unknown>;

export interface RawFile {
  name?: string;
  services: Record<string, ServiceConfig>;
  networks: Record<string, NetworkConfig>;
  volumes: Record<string, VolumeConfig>;
}

function fail(where: string, msg: string): never {
  throw new ComposeError(`${where}: ${msg}`);
}

export function isMap(v: unknown): v is Raw {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (isMap(v)) return 'object';
  return typeof v;
}

function expectMap(v: unknown, where: string): Raw {
  if (!isMap(v)) fail(where, `must be a mapping, got ${typeName(v)}`);
  return v;
}

function str(v: unknown, where: string): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return String(v);
  return fail(where, `must be a string, got ${typeName(v)}`);
}

function bool(v: unknown, where: string): boolean {
  if (typeof v === 'boolean') return v;
  if (typeof v === 'string' && /^(true|false)$/i.test(v)) return v.toLowerCase() === 'true';
  return fail(where, `must be a boolean, got ${typeName(v)}`);
}

function int(v: unknown, where: string, min = 0): number {
  const n = typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n))
    return fail(where, `must be an integer, got ${typeName(v)}`);
  if (n < min) fail(where, `must be at least ${min}`);
  return n;
}

function strList(v: unknown, where: string): string[] {
  if (typeof v === 'string') return [v];
  if (!Array.isArray(v)) return fail(where, `must be a list of strings, got ${typeName(v)}`);
  return v.map((x, i) => str(x, `${where}[${i}]`));
}

function scalar(v: unknown, where: string): string | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return String(v);
  return fail(where, `must be a string, number, boolean or null, got ${typeName(v)}`);
}

/** A `KEY=VALUE` list or a mapping; a bare KEY (or a null value) stays null. */
function keyValues(v: unknown, where: string, sep = '='): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  if (Array.isArray(v)) {
    v.forEach((e, i) => {
      const s = str(e, `${where}[${i}]`);
      const eq = s.indexOf(sep);
      const k = eq < 0 ? s : s.slice(0, eq);
      if (!k) fail(`${where}[${i}]`, `invalid entry ${JSON.stringify(s)}`);
      out[k] = eq < 0 ? null : s.slice(eq + 1);
    });
    return out;
  }
  for (const [k, x] of Object.entries(expectMap(v, where))) out[k] = scalar(x, `${where}.${k}`);
  return out;
}

function labelsOf(v: unknown, where: string): Record<string, string> {
  const kv = keyValues(v, where);
  return Object.fromEntries(Object.entries(kv).map(([k, x]) => [k, x ?? '']));
}

/** Byte sizes as compose writes them: 512, "512m", "1gb", "1.5G". */
export function parseBytes(v: unknown, where: string): number {
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0) return v;
  const m = typeof v === 'string' ? /^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b)?\s*$/i.exec(v) : null;
  if (!m) return fail(where, `invalid size ${JSON.stringify(v)}`);
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 }[
    m[2].toLowerCase()
  ]!;
  return Math.round(Number(m[1]) * mult);
}

function duration(v: unknown, where: string): string {
  const s = typeof v === 'number' ? `${v}s` : str(v, where);
  if (parseDuration(s) === undefined) fail(where, `invalid duration ${JSON.stringify(s)}`);
  return s;
}

function cpus(v: unknown, where: string): string {
  const s = str(v, where);
  if (!/^\d+(\.\d+)?$/.test(s) || Number(s) < 0) fail(where, `invalid cpus ${JSON.stringify(s)}`);
  return s;
}

function expandHome(p: string): string {
  return p === '~' || p.startsWith('~/') ? path.join(os.homedir(), p.slice(1)) : p;
}

function resolvePath(p: string, baseDir: string): string {
  return path.resolve(baseDir, expandHome(p));
}

function checkKeys(o: Raw, allowed: readonly string[], where: string): void {
  for (const k of Object.keys(o))
    if (!allowed.includes(k) && !k.startsWith('x-'))
      fail(where, `additional property ${JSON.stringify(k)} is not allowed`);
}

// --- ports ---

function parsePortNumber(s: string): number | undefined {
  if (!/^\d+$/.test(s)) return undefined;
  const n = Number(s);
  return n >= 0 && n <= 65535 ? n : undefined;
}

function parseRange(s: string): [number, number] | undefined {
  const m = /^(\d+)(?:-(\d+))?$/.exec(s);
  if (!m) return undefined;
  const a = parsePortNumber(m[1]);
  const b = m[2] === undefined ? a : parsePortNumber(m[2]);
  if (a === undefined || b === undefined || b < a) return undefined;
  return [a, b];
}

/** Short syntax: [HOST_IP:][HOST_PORT[-END]:]CONTAINER_PORT[-END][/PROTOCOL]. */
export function parsePortShort(spec: string, where: string): PortConfig[] {
  const bad = (): never => fail(where, `invalid port ${JSON.stringify(spec)}`);
  let rest = spec.trim();
  let protocol: PortConfig['protocol'] = 'tcp';
  const slash = rest.lastIndexOf('/');
  if (slash >= 0) {
    const p = rest.slice(slash + 1).toLowerCase();
    if (p !== 'tcp' && p !== 'udp' && p !== 'sctp') bad();
    protocol = p as PortConfig['protocol'];
    rest = rest.slice(0, slash);
  }
  let hostIp: string | undefined;
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close < 0 || rest[close + 1] !== ':') bad();
    hostIp = rest.slice(1, close);
    rest = rest.slice(close + 2);
  }
  const parts = rest.split(':');
  if (parts.length > 3) bad();
  if (parts.length === 3) {
    if (hostIp !== undefined) bad();
    hostIp = parts.shift()!;
    if (!/^[\d.]+$/.test(hostIp) && !hostIp.includes(':')) bad();
  }
  const containerRange = parseRange(parts[parts.length - 1]) ?? bad();
  const hostPart = parts.length === 2 ? parts[0] : '';
  let hostRange: [number, number] | undefined;
  if (hostPart !== '') {
    hostRange = parseRange(hostPart) ?? bad();
    const hostLen = hostRange[1] - hostRange[0];
    const ctrLen = containerRange[1] - containerRange[0];
    // A host range for a single container port lets the engine pick one of them.
    if (hostLen !== ctrLen && ctrLen !== 0) bad();
  }
  if (containerRange[0] === 0) bad();
  const out: PortConfig[] = [];
  for (let t = containerRange[0]; t <= containerRange[1]; t++) {
    const i = t - containerRange[0];
    const pc: PortConfig = { target: t, protocol, mode: 'ingress' };
    if (hostRange)
      pc.published =
        containerRange[0] === containerRange[1] && hostRange[0] !== hostRange[1]
          ? `${hostRange[0]}-${hostRange[1]}`
          : String(hostRange[0] + i);
    if (hostIp) pc.host_ip = hostIp;
    out.push(pc);
  }
  return out;
}

function ports(v: unknown, where: string): PortConfig[] {
  if (!Array.isArray(v)) fail(where, `must be a list, got ${typeName(v)}`);
  const out: PortConfig[] = [];
  v.forEach((p, i) => {
    const w = `${where}[${i}]`;
    if (typeof p === 'number') out.push(...parsePortShort(String(p), w));
    else if (typeof p === 'string') out.push(...parsePortShort(p, w));
    else {
      const o = expectMap(p, w);
      checkKeys(o, ['target', 'published', 'host_ip', 'protocol', 'mode', 'name', 'app_protocol'], w);
      if (o.target === undefined) fail(w, 'target is required');
      const target = int(o.target, `${w}.target`, 1);
      if (target > 65535) fail(`${w}.target`, `invalid port ${target}`);
      const pc: PortConfig = { target, protocol: 'tcp', mode: 'ingress' };
      if (o.published !== undefined && o.published !== null) {
        const pub = str(o.published, `${w}.published`);
        if (pub !== '' && !parseRange(pub)) fail(`${w}.published`, `invalid port ${JSON.stringify(pub)}`);
        if (pub !== '') pc.published = pub;
      }
      if (o.host_ip !== undefined) pc.host_ip = str(o.host_ip, `${w}.host_ip`);
      if (o.protocol !== undefined) {
        const proto = str(o.protocol, `${w}.protocol`).toLowerCase();
        if (proto !== 'tcp' && proto !== 'udp' && proto !== 'sctp')
          fail(`${w}.protocol`, `invalid protocol ${JSON.stringify(proto)}`);
        pc.protocol = proto;
      }
      if (o.mode !== undefined) pc.mode = str(o.mode, `${w}.mode`);
      out.push(pc);
    }
  });
  return out;
}

function expose(v: unknown, where: string): string[] {
  if (!Array.isArray(v)) fail(where, `must be a list, got ${typeName(v)}`);
  return v.map((e, i) => {
    const s = str(e, `${where}[${i}]`);
    if (!/^\d+(-\d+)?(\/(tcp|udp|sctp))?$/.test(s))
      fail(`${where}[${i}]`, `invalid port ${JSON.stringify(s)}`);
    return s;
  });
}

// --- volumes ---

const PROPAGATIONS = ['shared', 'rshared', 'slave', 'rslave', 'private', 'rprivate'];

function isPathLike(s: string): boolean {
  return s.startsWith('.') || s.startsWith('/') || s.startsWith('~') || s.includes('/');
}

function mountShort(spec: string, where: string, baseDir: string): MountConfig {
  const parts = spec.split(':');
  if (parts.length > 3 || parts.some((p) => p === '')) fail(where, `invalid volume ${JSON.stringify(spec)}`);
  if (parts.length === 1) {
    if (!parts[0].startsWith('/'))
      fail(where, `invalid volume ${JSON.stringify(spec)}: the target must be absolute`);
    return { type: 'volume', target: parts[0] };
  }
  const [source, target, mode] = parts;
  if (!target.startsWith('/'))
    fail(where, `invalid volume ${JSON.stringify(spec)}: the target must be absolute`);
  const m: MountConfig = isPathLike(source)
    ? { type: 'bind', source: resolvePath(source, baseDir), target, bind: { create_host_path: true } }
    : { type: 'volume', source, target };
  for (const opt of (mode ?? '').split(',').filter(Boolean)) {
    if (opt === 'ro') m.read_only = true;
    else if (opt === 'rw') m.read_only = false;
    else if (opt === 'nocopy' && m.type === 'volume') m.volume = { nocopy: true };
    else if ((opt === 'z' || opt === 'Z') && m.type === 'bind') m.bind = { ...m.bind, selinux: opt };
    else if (PROPAGATIONS.includes(opt) && m.type === 'bind') m.bind = { ...m.bind, propagation: opt };
    else fail(where, `invalid volume ${JSON.stringify(spec)}: unknown mode ${JSON.stringify(opt)}`);
  }
  return m;
}

function mountLong(o: Raw, where: string, baseDir: string): MountConfig {
  checkKeys(o, ['type', 'source', 'target', 'read_only', 'bind', 'volume', 'tmpfs', 'consistency'], where);
  const type = str(o.type ?? 'volume', `${where}.type`);
  if (type !== 'volume' && type !== 'bind' && type !== 'tmpfs')
    fail(`${where}.type`, `invalid mount type ${JSON.stringify(type)}`);
  if (o.target === undefined) fail(where, 'target is required');
  const target = str(o.target, `${where}.target`);
  if (!target.startsWith('/'))
    fail(`${where}.target`, `must be an absolute path, got ${JSON.stringify(target)}`);
  const m: MountConfig = { type, target };
  if (o.source !== undefined && o.source !== '') {
    if (type === 'tmpfs') fail(`${where}.source`, 'a tmpfs mount has no source');
    const src = str(o.source, `${where}.source`);
    m.source = type === 'bind' ? resolvePath(src, baseDir) : src;
  } else if (type === 'bind') fail(where, 'a bind mount needs a source');
  if (o.read_only !== undefined) m.read_only = bool(o.read_only, `${where}.read_only`);
  if (o.bind !== undefined) {
    const b = expectMap(o.bind, `${where}.bind`);
    checkKeys(b, ['propagation', 'create_host_path', 'selinux'], `${where}.bind`);
    m.bind = {};
    if (b.propagation !== undefined) {
      const p = str(b.propagation, `${where}.bind.propagation`);
      if (!PROPAGATIONS.includes(p))
        fail(`${where}.bind.propagation`, `invalid propagation ${JSON.stringify(p)}`);
      m.bind.propagation = p;
    }
    if (b.create_host_path !== undefined)
      m.bind.create_host_path = bool(b.create_host_path, `${where}.bind.create_host_path`);
    if (b.selinux !== undefined) m.bind.selinux = str(b.selinux, `${where}.bind.selinux`);
  }
  if (o.volume !== undefined) {
    const vo = expectMap(o.volume, `${where}.volume`);
    checkKeys(vo, ['nocopy', 'subpath'], `${where}.volume`);
    if (vo.nocopy !== undefined) m.volume = { nocopy: bool(vo.nocopy, `${where}.volume.nocopy`) };
  }
  if (o.tmpfs !== undefined) {
    const t = expectMap(o.tmpfs, `${where}.tmpfs`);
    checkKeys(t, ['size', 'mode'], `${where}.tmpfs`);
    m.tmpfs = {};
    if (t.size !== undefined) m.tmpfs.size = parseBytes(t.size, `${where}.tmpfs.size`);
    if (t.mode !== undefined) m.tmpfs.mode = int(t.mode, `${where}.tmpfs.mode`);
  }
  return m;
}

function mounts(v: unknown, where: string, baseDir: string): MountConfig[] {
  if (!Array.isArray(v)) fail(where, `must be a list, got ${typeName(v)}`);
  return v.map((e, i) =>
    typeof e === 'string'
      ? mountShort(e, `${where}[${i}]`, baseDir)
      : mountLong(expectMap(e, `${where}[${i}]`), `${where}[${i}]`, baseDir),
  );
}

// --- the rest of a service ---

function command(v: unknown, where: string): string[] | null {
  if (v === null) return null;
  if (typeof v === 'string') {
    try {
      return shellSplit(v);
    } catch (err) {
      return fail(where, (err as Error).message);
    }
  }
  return strList(v, where);
}

function build(v: unknown, where: string, baseDir: string): BuildConfig {
  if (typeof v === 'string') return { context: resolvePath(v, baseDir) };
  const o = expectMap(v, where);
  checkKeys(
    o,
    [
      'context',
      'dockerfile',
      'args',
      'target',
      'labels',
      'no_cache',
      'pull',
      'network',
      'cache_from',
      'shm_size',
    ],
    where,
  );
  const b: BuildConfig = {
    context: resolvePath(o.context === undefined ? '.' : str(o.context, `${where}.context`), baseDir),
  };
  if (o.dockerfile !== undefined) b.dockerfile = str(o.dockerfile, `${where}.dockerfile`);
  if (o.args !== undefined) b.args = keyValues(o.args, `${where}.args`);
  if (o.target !== undefined) b.target = str(o.target, `${where}.target`);
  if (o.labels !== undefined) b.labels = labelsOf(o.labels, `${where}.labels`);
  if (o.no_cache !== undefined) b.no_cache = bool(o.no_cache, `${where}.no_cache`);
  if (o.pull !== undefined) b.pull = bool(o.pull, `${where}.pull`);
  if (o.network !== undefined) b.network = str(o.network, `${where}.network`);
  return b;
}

const CONDITIONS: DependsCondition[] = [
  'service_started',
  'service_healthy',
  'service_completed_successfully',
];

function dependsOn(v: unknown, where: string): NonNullable<ServiceConfig['depends_on']> {
  const out: NonNullable<ServiceConfig['depends_on']> = {};
  if (Array.isArray(v)) {
    v.forEach((e, i) => (out[str(e, `${where}[${i}]`)] = { condition: 'service_started', required: true }));
    return out;
  }
  for (const [name, d] of Object.entries(expectMap(v, where))) {
    const w = `${where}.${name}`;
    const o = d === null ? {} : expectMap(d, w);
    checkKeys(o, ['condition', 'required', 'restart'], w);
    const condition = str(o.condition ?? 'service_started', `${w}.condition`) as DependsCondition;
    if (!CONDITIONS.includes(condition))
      fail(`${w}.condition`, `must be one of ${CONDITIONS.join(', ')}, got ${JSON.stringify(condition)}`);
    out[name] = { condition, required: o.required === undefined ? true : bool(o.required, `${w}.required`) };
    if (o.restart !== undefined) out[name].restart = bool(o.restart, `${w}.restart`);
  }
  return out;
}

function healthcheck(v: unknown, where: string): HealthcheckConfig {
  const o = expectMap(v, where);
  checkKeys(
    o,
    ['test', 'interval', 'timeout', 'retries', 'start_period', 'start_interval', 'disable'],
    where,
  );
  const h: HealthcheckConfig = {};
  if (o.test !== undefined) {
    if (typeof o.test === 'string') h.test = ['CMD-SHELL', o.test];
    else {
      const t = strList(o.test, `${where}.test`);
      if (!['NONE', 'CMD', 'CMD-SHELL'].includes(t[0] ?? ''))
        fail(`${where}.test`, 'must start with "CMD", "CMD-SHELL" or "NONE"');
      h.test = t;
    }
  }
  for (const k of ['interval', 'timeout', 'start_period', 'start_interval'] as const)
    if (o[k] !== undefined) h[k] = duration(o[k], `${where}.${k}`);
  if (o.retries !== undefined) h.retries = int(o.retries, `${where}.retries`);
  if (o.disable !== undefined) h.disable = bool(o.disable, `${where}.disable`);
  return h;
}

function resources(v: unknown, where: string): { cpus?: string; memory?: number; pids?: number } {
  const o = expectMap(v, where);
  checkKeys(o, ['cpus', 'memory', 'pids', 'devices', 'generic_resources'], where);
  const r: { cpus?: string; memory?: number; pids?: number } = {};
  if (o.cpus !== undefined) r.cpus = cpus(o.cpus, `${where}.cpus`);
  if (o.memory !== undefined) r.memory = parseBytes(o.memory, `${where}.memory`);
  if (o.pids !== undefined) r.pids = int(o.pids, `${where}.pids`);
  return r;
}

function deploy(v: unknown, where: string): NonNullable<ServiceConfig['deploy']> {
  const o = expectMap(v, where);
  checkKeys(
    o,
    [
      'replicas',
      'resources',
      'labels',
      'mode',
      'restart_policy',
      'update_config',
      'rollback_config',
      'placement',
      'endpoint_mode',
    ],
    where,
  );
  const d: NonNullable<ServiceConfig['deploy']> = {};
  if (o.replicas !== undefined) d.replicas = int(o.replicas, `${where}.replicas`);
  if (o.labels !== undefined) d.labels = labelsOf(o.labels, `${where}.labels`);
  if (o.resources !== undefined) {
    const r = expectMap(o.resources, `${where}.resources`);
    checkKeys(r, ['limits', 'reservations'], `${where}.resources`);
    d.resources = {};
    if (r.limits !== undefined) d.resources.limits = resources(r.limits, `${where}.resources.limits`);
    if (r.reservations !== undefined)
      d.resources.reservations = resources(r.reservations, `${where}.resources.reservations`);
  }
  return d;
}

function serviceNetworks(v: unknown, where: string): Record<string, ServiceNetwork | null> {
  const out: Record<string, ServiceNetwork | null> = {};
  if (Array.isArray(v)) {
    v.forEach((e, i) => (out[str(e, `${where}[${i}]`)] = null));
    return out;
  }
  for (const [name, n] of Object.entries(expectMap(v, where))) {
    const w = `${where}.${name}`;
    if (n === null) {
      out[name] = null;
      continue;
    }
    const o = expectMap(n, w);
    checkKeys(o, ['aliases', 'ipv4_address', 'ipv6_address', 'priority', 'link_local_ips', 'mac_address'], w);
    const sn: ServiceNetwork = {};
    if (o.aliases !== undefined) sn.aliases = strList(o.aliases, `${w}.aliases`);
    if (o.ipv4_address !== undefined) sn.ipv4_address = str(o.ipv4_address, `${w}.ipv4_address`);
    if (o.ipv6_address !== undefined) sn.ipv6_address = str(o.ipv6_address, `${w}.ipv6_address`);
    if (o.priority !== undefined) sn.priority = int(o.priority, `${w}.priority`, -Infinity);
    out[name] = sn;
  }
  return out;
}

function ulimits(v: unknown, where: string): Record<string, { soft: number; hard: number }> {
  const out: Record<string, { soft: number; hard: number }> = {};
  for (const [name, u] of Object.entries(expectMap(v, where))) {
    const w = `${where}.${name}`;
    if (typeof u === 'number' || typeof u === 'string') {
      const n = int(u, w, -1);
      out[name] = { soft: n, hard: n };
    } else {
      const o = expectMap(u, w);
      checkKeys(o, ['soft', 'hard'], w);
      if (o.soft === undefined || o.hard === undefined) fail(w, 'soft and hard are required');
      out[name] = { soft: int(o.soft, `${w}.soft`, -1), hard: int(o.hard, `${w}.hard`, -1) };
      if (out[name].soft > out[name].hard && out[name].hard >= 0)
        fail(w, 'soft limit is greater than hard limit');
    }
  }
  return out;
}

function extraHosts(v: unknown, where: string): string[] {
  if (Array.isArray(v))
    return v.map((e, i) => {
      const s = str(e, `${where}[${i}]`);
      const m = /^([^:=]+)[:=](.+)$/.exec(s);
      if (!m) fail(`${where}[${i}]`, `invalid extra host ${JSON.stringify(s)}`);
      return `${m[1]}:${m[2]}`;
    });
  return Object.entries(expectMap(v, where)).flatMap(([h, ip]) =>
    Array.isArray(ip)
      ? ip.map((x, i) => `${h}:${str(x, `${where}.${h}[${i}]`)}`)
      : [`${h}:${str(ip, `${where}.${h}`)}`],
  );
}

const RESTARTS = /^(no|always|unless-stopped|on-failure(:\d+)?)$/;

export const SERVICE_KEYS = [
  'image',
  'build',
  'command',
  'entrypoint',
  'environment',
  'env_file',
  'ports',
  'expose',
  'volumes',
  'networks',
  'network_mode',
  'depends_on',
  'healthcheck',
  'restart',
  'deploy',
  'labels',
  'container_name',
  'hostname',
  'domainname',
  'user',
  'working_dir',
  'stop_signal',
  'stop_grace_period',
  'tmpfs',
  'ulimits',
  'extra_hosts',
  'profiles',
  'init',
  'privileged',
  'read_only',
  'cap_add',
  'cap_drop',
  'tty',
  'stdin_open',
  'dns',
  'dns_search',
  'pull_policy',
  'scale',
  'pid',
  'ipc',
  'shm_size',
  'security_opt',
  'mem_limit',
  'mem_reservation',
  'cpus',
  'cpu_shares',
  'pids_limit',
  'platform',
  'logging',
  'sysctls',
  'extends',
] as const;

/** Keys of the specification that Berth reads but does not act on (accepted with a warning). */
const IGNORED_KEYS = [
  'secrets',
  'configs',
  'links',
  'external_links',
  'devices',
  'mac_address',
  'runtime',
  'isolation',
  'cgroup_parent',
  'userns_mode',
  'oom_score_adj',
  'oom_kill_disable',
  'group_add',
  'stop_timeout',
  'develop',
  'annotations',
  'attach',
  'cpu_count',
  'cpu_percent',
  'cpu_period',
  'cpu_quota',
  'cpuset',
  'memswap_limit',
  'mem_swappiness',
  'blkio_config',
  'storage_opt',
  'volumes_from',
  'uts',
  'cgroup',
  'label_file',
  'use_api_socket',
  'credential_spec',
  'device_cgroup_rules',
  'gpus',
  'models',
  'post_start',
  'pre_stop',
  'provider',
  'dns_opt',
];

export function normalizeService(
  raw: unknown,
  where: string,
  baseDir: string,
  warn: (msg: string) => void,
): ServiceConfig {
  const o = expectMap(raw ?? {}, where);
  for (const k of Object.keys(o)) {
    if (k.startsWith('x-') || (SERVICE_KEYS as readonly string[]).includes(k)) continue;
    if (IGNORED_KEYS.includes(k)) warn(`${where}.${k} is not supported by Berth and is ignored`);
    else fail(where, `additional property ${JSON.stringify(k)} is not allowed`);
  }
  const s: ServiceConfig = {};
  const at = (k: string) => `${where}.${k}`;
  if (o.image !== undefined) s.image = str(o.image, at('image'));
  if (o.build !== undefined) s.build = build(o.build, at('build'), baseDir);
  if (o.command !== undefined) s.command = command(o.command, at('command'));
  if (o.entrypoint !== undefined) s.entrypoint = command(o.entrypoint, at('entrypoint'));
  if (o.environment !== undefined) s.environment = keyValues(o.environment, at('environment'));
  if (o.env_file !== undefined) {
    const files = Array.isArray(o.env_file) ? o.env_file : [o.env_file];
    s.env_file = files.map((f, i) => {
      const w = `${at('env_file')}[${i}]`;
      return resolvePath(isMap(f) ? str(f.path, `${w}.path`) : str(f, w), baseDir);
    });
  }
  if (o.ports !== undefined) s.ports = ports(o.ports, at('ports'));
  if (o.expose !== undefined) s.expose = expose(o.expose, at('expose'));
  if (o.volumes !== undefined) s.volumes = mounts(o.volumes, at('volumes'), baseDir);
  if (o.networks !== undefined) s.networks = serviceNetworks(o.networks, at('networks'));
  if (o.network_mode !== undefined) s.network_mode = str(o.network_mode, at('network_mode'));
  if (o.depends_on !== undefined) s.depends_on = dependsOn(o.depends_on, at('depends_on'));
  if (o.healthcheck !== undefined) s.healthcheck = healthcheck(o.healthcheck, at('healthcheck'));
  if (o.restart !== undefined) {
    const r = str(o.restart, at('restart'));
    if (!RESTARTS.test(r)) fail(at('restart'), `invalid restart policy ${JSON.stringify(r)}`);
    s.restart = r;
  }
  if (o.deploy !== undefined) s.deploy = deploy(o.deploy, at('deploy'));
  if (o.labels !== undefined) s.labels = labelsOf(o.labels, at('labels'));
  for (const k of [
    'container_name',
    'hostname',
    'domainname',
    'user',
    'working_dir',
    'stop_signal',
    'pull_policy',
    'pid',
    'ipc',
    'platform',
  ] as const)
    if (o[k] !== undefined) s[k] = str(o[k], at(k));
  if (
    s.pull_policy !== undefined &&
    !['always', 'never', 'missing', 'if_not_present', 'build'].includes(s.pull_policy)
  )
    fail(at('pull_policy'), `invalid pull policy ${JSON.stringify(s.pull_policy)}`);
  if (o.stop_grace_period !== undefined)
    s.stop_grace_period = duration(o.stop_grace_period, at('stop_grace_period'));
  for (const k of ['tmpfs', 'profiles', 'cap_add', 'cap_drop', 'dns', 'dns_search', 'security_opt'] as const)
    if (o[k] !== undefined) s[k] = strList(o[k], at(k));
  for (const t of s.tmpfs ?? [])
    if (!t.startsWith('/'))
      fail(at('tmpfs'), `invalid tmpfs ${JSON.stringify(t)}: the path must be absolute`);
  if (o.ulimits !== undefined) s.ulimits = ulimits(o.ulimits, at('ulimits'));
  if (o.extra_hosts !== undefined) s.extra_hosts = extraHosts(o.extra_hosts, at('extra_hosts'));
  for (const k of ['init', 'privileged', 'read_only', 'tty', 'stdin_open'] as const)
    if (o[k] !== undefined) s[k] = bool(o[k], at(k));
  for (const k of ['scale', 'cpu_shares', 'pids_limit'] as const)
    if (o[k] !== undefined) s[k] = int(o[k], at(k), k === 'pids_limit' ? -1 : 0);
  for (const k of ['shm_size', 'mem_limit', 'mem_reservation'] as const)
    if (o[k] !== undefined) s[k] = parseBytes(o[k], at(k));
  if (o.cpus !== undefined) s.cpus = cpus(o.cpus, at('cpus'));
  if (o.logging !== undefined) {
    const l = expectMap(o.logging, at('logging'));
    checkKeys(l, ['driver', 'options'], at('logging'));
    s.logging = {};
    if (l.driver !== undefined) s.logging.driver = str(l.driver, `${at('logging')}.driver`);
    if (l.options !== undefined) s.logging.options = labelsOf(l.options, `${at('logging')}.options`);
  }
  if (o.sysctls !== undefined) s.sysctls = labelsOf(o.sysctls, at('sysctls'));
  if (o.extends !== undefined) {
    if (typeof o.extends === 'string') s.extends = { service: o.extends };
    else {
      const e = expectMap(o.extends, at('extends'));
      checkKeys(e, ['service', 'file'], at('extends'));
      if (e.service === undefined) fail(at('extends'), 'service is required');
      s.extends = { service: str(e.service, `${at('extends')}.service`) };
      if (e.file !== undefined) s.extends.file = resolvePath(str(e.file, `${at('extends')}.file`), baseDir);
    }
  }
  return s;
}

function normalizeNetwork(raw: unknown, where: string): NetworkConfig {
  if (raw === null || raw === undefined) return {};
  const o = expectMap(raw, where);
  checkKeys(
    o,
    ['name', 'driver', 'driver_opts', 'external', 'internal', 'attachable', 'enable_ipv6', 'labels', 'ipam'],
    where,
  );
  const n: NetworkConfig = {};
  if (o.name !== undefined) n.name = str(o.name, `${where}.name`);
  if (o.driver !== undefined) n.driver = str(o.driver, `${where}.driver`);
  if (o.driver_opts !== undefined) n.driver_opts = labelsOf(o.driver_opts, `${where}.driver_opts`);
  if (o.external !== undefined) {
    if (isMap(o.external)) {
      // The old `external: {name: x}` form.
      n.external = true;
      if (o.external.name !== undefined) n.name = str(o.external.name, `${where}.external.name`);
    } else n.external = bool(o.external, `${where}.external`);
  }
  for (const k of ['internal', 'attachable', 'enable_ipv6'] as const)
    if (o[k] !== undefined) n[k] = bool(o[k], `${where}.${k}`);
  if (o.labels !== undefined) n.labels = labelsOf(o.labels, `${where}.labels`);
  if (o.ipam !== undefined) {
    const ipam = expectMap(o.ipam, `${where}.ipam`);
    checkKeys(ipam, ['driver', 'config', 'options'], `${where}.ipam`);
    n.ipam = {};
    if (ipam.driver !== undefined) n.ipam.driver = str(ipam.driver, `${where}.ipam.driver`);
    if (ipam.config !== undefined) {
      if (!Array.isArray(ipam.config)) fail(`${where}.ipam.config`, 'must be a list');
      n.ipam.config = ipam.config.map((c, i) => {
        const w = `${where}.ipam.config[${i}]`;
        const co = expectMap(c, w);
        checkKeys(co, ['subnet', 'gateway', 'ip_range', 'aux_addresses'], w);
        const out: { subnet?: string; gateway?: string; ip_range?: string } = {};
        if (co.subnet !== undefined) out.subnet = str(co.subnet, `${w}.subnet`);
        if (co.gateway !== undefined) out.gateway = str(co.gateway, `${w}.gateway`);
        if (co.ip_range !== undefined) out.ip_range = str(co.ip_range, `${w}.ip_range`);
        return out;
      });
    }
  }
  if (n.external && (n.driver || n.ipam || n.driver_opts))
    fail(where, 'an external network cannot also set driver, driver_opts or ipam');
  return n;
}

function normalizeVolume(raw: unknown, where: string): VolumeConfig {
  if (raw === null || raw === undefined) return {};
  const o = expectMap(raw, where);
  checkKeys(o, ['name', 'driver', 'driver_opts', 'external', 'labels'], where);
  const v: VolumeConfig = {};
  if (o.name !== undefined) v.name = str(o.name, `${where}.name`);
  if (o.driver !== undefined) v.driver = str(o.driver, `${where}.driver`);
  if (o.driver_opts !== undefined) v.driver_opts = labelsOf(o.driver_opts, `${where}.driver_opts`);
  if (o.external !== undefined) {
    if (isMap(o.external)) {
      v.external = true;
      if (o.external.name !== undefined) v.name = str(o.external.name, `${where}.external.name`);
    } else v.external = bool(o.external, `${where}.external`);
  }
  if (o.labels !== undefined) v.labels = labelsOf(o.labels, `${where}.labels`);
  if (v.external && (v.driver || v.driver_opts))
    fail(where, 'an external volume cannot also set driver or driver_opts');
  return v;
}

const TOP_KEYS = [
  'version',
  'name',
  'services',
  'networks',
  'volumes',
  'secrets',
  'configs',
  'include',
  'models',
];

const SERVICE_NAME = /^[a-zA-Z0-9._-]+$/;

/** A whole file (already interpolated). */
export function normalizeFile(raw: unknown, baseDir: string, warn: (m: string) => void): RawFile {
  if (raw === null || raw === undefined) raw = {};
  if (!isMap(raw)) fail('(root)', `a compose file must be a mapping, got ${typeName(raw)}`);
  for (const k of Object.keys(raw))
    if (!TOP_KEYS.includes(k) && !k.startsWith('x-'))
      fail('(root)', `additional property ${JSON.stringify(k)} is not allowed`);
  for (const k of ['secrets', 'configs', 'include', 'models'])
    if (raw[k] !== undefined) warn(`top-level ${k} is not supported by Berth and is ignored`);
  const out: RawFile = { services: {}, networks: {}, volumes: {} };
  if (raw.name !== undefined) out.name = str(raw.name, 'name');
  const services =
    raw.services === undefined || raw.services === null ? {} : expectMap(raw.services, 'services');
  for (const [name, s] of Object.entries(services)) {
    if (!SERVICE_NAME.test(name))
      fail(`services.${name}`, 'invalid service name: use letters, digits, ".", "_" and "-"');
    out.services[name] = normalizeService(s, `services.${name}`, baseDir, warn);
  }
  const networks =
    raw.networks === undefined || raw.networks === null ? {} : expectMap(raw.networks, 'networks');
  for (const [name, n] of Object.entries(networks))
    out.networks[name] = normalizeNetwork(n, `networks.${name}`);
  const volumes = raw.volumes === undefined || raw.volumes === null ? {} : expectMap(raw.volumes, 'volumes');
  for (const [name, v] of Object.entries(volumes)) out.volumes[name] = normalizeVolume(v, `volumes.${name}`);
  return out;
}

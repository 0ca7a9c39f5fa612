/**
 * From a service of the model to an Engine API container create body, plus the config hash that
 * tells `up` whether a running container still matches its service.
 */
import { createHash } from 'node:crypto';
import * as L from './labels.js';
import { parseDuration } from './duration.js';
import type { MountConfig, Project, ServiceConfig } from './model.js';
import { serviceNetworks } from './model.js';

/** Stable JSON: keys sorted at every level. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v && typeof v === 'object')
    return `{${Object.keys(v)
      .sort()
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(v);
}

/** The hash over what shapes a container (not replicas, build steps, pull policy or ordering). */
export function configHash(s: ServiceConfig): string {
  const h: ServiceConfig = {
    ...s,
    build: undefined,
    pull_policy: undefined,
    scale: undefined,
    profiles: undefined,
  };
  if (s.deploy) h.deploy = { ...s.deploy, replicas: undefined };
  if (s.depends_on)
    h.depends_on = Object.fromEntries(
      Object.keys(s.depends_on).map((k) => [k, { ...s.depends_on![k], required: true }]),
    );
  return createHash('sha256').update(canonicalJson(h)).digest('hex');
}

/** The image a service runs: its `image`, else the one `build` makes (`<project>-<service>`). */
export function imageOf(p: Project, name: string, s: ServiceConfig): string {
  return s.image ?? `${p.name}-${name}`;
}

export function containerName(p: Project, service: string, s: ServiceConfig, n: number): string {
  return s.container_name ?? `${p.name}-${service}-${n}`;
}

function ns(d: string | undefined): number | undefined {
  return d === undefined ? undefined : parseDuration(d);
}

function bindOf(p: Project, m: MountConfig): string | undefined {
  if (m.type === 'tmpfs' || !m.source) return undefined;
  // Binds cannot express a bind that must not create its host path, nor tmpfs/volume options.
  if (m.type === 'bind' && m.bind?.create_host_path === false) return undefined;
  const src = m.type === 'volume' ? (p.volumes[m.source]?.name ?? `${p.name}_${m.source}`) : m.source;
  const opts = [m.read_only ? 'ro' : 'rw'];
  if (m.bind?.propagation) opts.push(m.bind.propagation);
  if (m.bind?.selinux) opts.push(m.bind.selinux);
  if (m.volume?.nocopy) opts.push('nocopy');
  return `${src}:${m.target}:${opts.join(',')}`;
}

function mountOf(p: Project, m: MountConfig): Record<string, unknown> {
  const out: Record<string, unknown> = { Type: m.type, Target: m.target, ReadOnly: !!m.read_only };
  if (m.source)
    out.Source = m.type === 'volume' ? (p.volumes[m.source]?.name ?? `${p.name}_${m.source}`) : m.source;
  if (m.bind)
    out.BindOptions = { Propagation: m.bind.propagation, CreateMountpoint: m.bind.create_host_path };
  if (m.volume) out.VolumeOptions = { NoCopy: !!m.volume.nocopy };
  if (m.tmpfs) out.TmpfsOptions = { SizeBytes: m.tmpfs.size, Mode: m.tmpfs.mode };
  return out;
}

function restartPolicy(r: string | undefined): { Name: string; MaximumRetryCount: number } {
  if (!r || r === 'no') return { Name: 'no', MaximumRetryCount: 0 };
  const m = /^on-failure(?::(\d+))?$/.exec(r);
  if (m) return { Name: 'on-failure', MaximumRetryCount: m[1] ? Number(m[1]) : 0 };
  return { Name: r, MaximumRetryCount: 0 };
}

/** The networks of a service, primary first (highest priority, then name). */
export function orderedNetworks(s: ServiceConfig): string[] {
  const keys = serviceNetworks(s);
  const prio = (k: string) => s.networks?.[k]?.priority ?? 0;
  return [...keys].sort((a, b) => prio(b) - prio(a) || (a < b ? -1 : a > b ? 1 : 0));
}

export function endpointConfig(
  service: string,
  s: ServiceConfig,
  key: string,
  extraAliases: string[] = [],
): Record<string, unknown> {
  const n = s.networks?.[key];
  const ep: Record<string, unknown> = { Aliases: [service, ...(n?.aliases ?? []), ...extraAliases] };
  if (n?.ipv4_address || n?.ipv6_address)
    ep.IPAMConfig = { IPv4Address: n.ipv4_address, IPv6Address: n.ipv6_address };
  return ep;
}

export interface CreateOptions {
  number: number;
  hash: string;
  oneoff?: boolean;
  /** For `run`: replaces the command, adds env, keeps stdin open, and so on. */
  override?: {
    command?: string[];
    entrypoint?: string[];
    env?: string[];
    tty?: boolean;
    interactive?: boolean;
    autoRemove?: boolean;
    user?: string;
    workdir?: string;
    noPorts?: boolean;
    labels?: Record<string, string>;
  };
  /** network_mode service:x resolved to container:<id>. */
  networkMode?: string;
}

export function createBody(
  p: Project,
  service: string,
  s: ServiceConfig,
  o: CreateOptions,
): Record<string, unknown> {
  const ov = o.override ?? {};
  const labels: Record<string, string> = {
    ...(s.labels ?? {}),
    ...(ov.labels ?? {}),
    [L.PROJECT]: p.name,
    [L.SERVICE]: service,
    [L.NUMBER]: String(o.number),
    [L.ONEOFF]: o.oneoff ? 'True' : 'False',
    [L.CONFIG_HASH]: o.hash,
    [L.WORKING_DIR]: p.workingDir,
    [L.CONFIG_FILES]: p.configFiles.join(','),
    [L.VERSION]: L.COMPOSE_VERSION,
    [L.IMAGE]: imageOf(p, service, s),
  };
  if (s.depends_on)
    labels[L.DEPENDS_ON] = Object.entries(s.depends_on)
      .map(([d, c]) => `${d}:${c.condition}:${c.restart ?? false}`)
      .join(',');
  const env = Object.entries(s.environment ?? {})
    .filter(([, v]) => v !== null)
    .map(([k, v]) => `${k}=${v}`);
  const exposed: Record<string, object> = {};
  for (const e of s.expose ?? []) {
    const [range, proto = 'tcp'] = e.split('/');
    const [a, b = a] = range.split('-').map(Number);
    for (let port = a; port <= b; port++) exposed[`${port}/${proto}`] = {};
  }
  const portBindings: Record<string, { HostIp: string; HostPort: string }[]> = {};
  if (!ov.noPorts)
    for (const pc of s.ports ?? []) {
      const key = `${pc.target}/${pc.protocol}`;
      exposed[key] = {};
      (portBindings[key] ??= []).push({ HostIp: pc.host_ip ?? '', HostPort: pc.published ?? '' });
    }
  const mounts = s.volumes ?? [];
  const binds: string[] = [];
  const apiMounts: Record<string, unknown>[] = [];
  const volumes: Record<string, object> = {};
  const tmpfs: Record<string, string> = {};
  for (const m of mounts) {
    if (m.type === 'tmpfs') {
      const opts: string[] = [];
      if (m.tmpfs?.size) opts.push(`size=${m.tmpfs.size}`);
      if (m.tmpfs?.mode) opts.push(`mode=${m.tmpfs.mode.toString(8)}`);
      if (m.read_only) opts.push('ro');
      tmpfs[m.target] = opts.join(',');
    } else if (!m.source) volumes[m.target] = {};
    else {
      const b = bindOf(p, m);
      if (b) binds.push(b);
      else apiMounts.push(mountOf(p, m));
    }
  }
  for (const t of s.tmpfs ?? []) {
    const [dest, ...opts] = t.split(':');
    tmpfs[dest] = opts.join(':');
  }
  const limits = s.deploy?.resources?.limits ?? {};
  const reservations = s.deploy?.resources?.reservations ?? {};
  const cpus = limits.cpus ?? s.cpus;
  const nets = orderedNetworks(s);
  const networkMode =
    o.networkMode ??
    (s.network_mode
      ? s.network_mode
      : nets.length
        ? (p.networks[nets[0]]?.name ?? `${p.name}_${nets[0]}`)
        : 'default');
  const endpoints: Record<string, unknown> = {};
  if (!s.network_mode && nets.length) endpoints[networkMode] = endpointConfig(service, s, nets[0]);
  const hc = s.healthcheck;
  const healthcheck = hc
    ? hc.disable
      ? { Test: ['NONE'] }
      : {
          Test: hc.test,
          Interval: ns(hc.interval),
          Timeout: ns(hc.timeout),
          Retries: hc.retries,
          StartPeriod: ns(hc.start_period),
          StartInterval: ns(hc.start_interval),
        }
    : undefined;
  const stopTimeout = s.stop_grace_period
    ? Math.ceil((parseDuration(s.stop_grace_period) ?? 0) / 1e9)
    : undefined;
  const command = ov.command ?? s.command ?? undefined;
  const entrypoint = ov.entrypoint ?? s.entrypoint ?? undefined;
  return {
    Image: imageOf(p, service, s),
    Cmd: command === null ? undefined : command,
    Entrypoint: entrypoint === null ? undefined : entrypoint,
    Env: [...env, ...(ov.env ?? [])],
    Labels: labels,
    Hostname: s.hostname ?? '',
    Domainname: s.domainname ?? '',
    User: ov.user ?? s.user ?? '',
    WorkingDir: ov.workdir ?? s.working_dir ?? '',
    StopSignal: s.stop_signal,
    StopTimeout: stopTimeout,
    Tty: ov.tty ?? s.tty ?? false,
    OpenStdin: ov.interactive ?? s.stdin_open ?? false,
    StdinOnce: ov.interactive ?? false,
    AttachStdin: ov.interactive ?? false,
    AttachStdout: !!o.oneoff,
    AttachStderr: !!o.oneoff,
    ExposedPorts: exposed,
    Volumes: volumes,
    Healthcheck: healthcheck,
    HostConfig: {
      Binds: binds,
      Mounts: apiMounts.length ? apiMounts : undefined,
      Tmpfs: Object.keys(tmpfs).length ? tmpfs : undefined,
      PortBindings: portBindings,
      NetworkMode: networkMode,
      RestartPolicy: ov.autoRemove ? { Name: 'no', MaximumRetryCount: 0 } : restartPolicy(s.restart),
      AutoRemove: !!ov.autoRemove,
      Memory: limits.memory ?? s.mem_limit ?? 0,
      MemoryReservation: reservations.memory ?? s.mem_reservation ?? 0,
      NanoCpus: cpus ? Math.round(Number(cpus) * 1e9) : 0,
      CpuShares: s.cpu_shares ?? 0,
      PidsLimit: limits.pids ?? s.pids_limit,
      Ulimits: Object.entries(s.ulimits ?? {}).map(([Name, u]) => ({ Name, Soft: u.soft, Hard: u.hard })),
      ExtraHosts: s.extra_hosts ?? null,
      Init: s.init,
      Privileged: s.privileged ?? false,
      ReadonlyRootfs: s.read_only ?? false,
      CapAdd: s.cap_add ?? null,
      CapDrop: s.cap_drop ?? null,
      Dns: s.dns ?? [],
      DnsSearch: s.dns_search ?? [],
      SecurityOpt: s.security_opt ?? null,
      ShmSize: s.shm_size,
      PidMode: s.pid ?? '',
      IpcMode: s.ipc ?? '',
      Sysctls: s.sysctls,
      LogConfig: { Type: s.logging?.driver ?? '', Config: s.logging?.options ?? {} },
    },
    NetworkingConfig: { EndpointsConfig: endpoints },
  };
}

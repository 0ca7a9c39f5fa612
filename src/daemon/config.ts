/**
 * berthd configuration: flags over /etc/berth/daemon.json over defaults.
 */
import { promises as fsp } from 'node:fs';
import { errnoCode, invalidArgument } from '../common/errors.js';
import { isLogLevel, type LogLevel } from '../common/log.js';

export interface DaemonOptions {
  dataRoot: string;
  execRoot: string;
  hosts: string[];
  configFile: string;
  logLevel: LogLevel;
  debug: boolean;
  registryMirrors: string[];
  insecureRegistries: string[];
  labels: string[];
  cgroupParent: string;
  /** Serve Berth Hub from the daemon too (host:port), storing under hubRoot. */
  hubListen?: string;
  hubRoot?: string;
  tls: boolean;
  tlsVerify: boolean;
  tlsCert?: string;
  tlsKey?: string;
  tlsCaCert?: string;
  /** default bridge device ("bridge") */
  bridge: string;
  bip?: string;
  defaultAddressPools: { base: string; size: number }[];
  /** prefix of Berth's iptables chains */
  iptablesChainPrefix: string;
  dns: string[];
}

export const DEFAULT_SOCKET = '/run/berth/berth.sock';

export const defaults: DaemonOptions = {
  dataRoot: '/var/lib/berth',
  execRoot: '/run/berth',
  hosts: [],
  configFile: '/etc/berth/daemon.json',
  logLevel: 'info',
  debug: false,
  registryMirrors: [],
  insecureRegistries: [],
  labels: [],
  cgroupParent: '/berth',
  tls: false,
  tlsVerify: false,
  bridge: 'berth0',
  defaultAddressPools: [],
  iptablesChainPrefix: 'BERTH',
  dns: [],
};

/** The daemon.json keys Berth understands, with Docker's names. */
const fileKeys: Record<string, keyof DaemonOptions> = {
  'data-root': 'dataRoot',
  'exec-root': 'execRoot',
  hosts: 'hosts',
  'log-level': 'logLevel',
  debug: 'debug',
  'registry-mirrors': 'registryMirrors',
  'insecure-registries': 'insecureRegistries',
  labels: 'labels',
  'cgroup-parent': 'cgroupParent',
  'hub-listen': 'hubListen',
  'hub-root': 'hubRoot',
  tls: 'tls',
  tlsverify: 'tlsVerify',
  tlscert: 'tlsCert',
  tlskey: 'tlsKey',
  tlscacert: 'tlsCaCert',
  bridge: 'bridge',
  bip: 'bip',
  'default-address-pools': 'defaultAddressPools',
  'iptables-chain-prefix': 'iptablesChainPrefix',
  dns: 'dns',
};

export async function readConfigFile(file: string, required: boolean): Promise<Partial<DaemonOptions>> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' && !required) return {};
    throw invalidArgument(`unable to read configuration file ${file}: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw invalidArgument(`unable to configure the daemon with file ${file}: ${(err as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw invalidArgument(`unable to configure the daemon with file ${file}: not a JSON object`);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw)) {
    const key = fileKeys[k];
    if (!key) throw invalidArgument(`the following directives don't match any configuration option: ${k}`);
    if (key === 'defaultAddressPools') {
      if (
        !Array.isArray(v) ||
        !v.every(
          (p: unknown) =>
            typeof p === 'object' &&
            p !== null &&
            typeof (p as { base?: unknown }).base === 'string' &&
            typeof (p as { size?: unknown }).size === 'number',
        )
      )
        throw invalidArgument(`invalid type for "${k}" in ${file}: want [{"base": "CIDR", "size": N}]`);
      out[key] = v;
      continue;
    }
    const want = key === 'hubListen' || key === 'hubRoot' || key === 'bip' ? 'string' : typeof defaults[key];
    const isList = Array.isArray(defaults[key]);
    if (
      isList
        ? !Array.isArray(v) || !v.every((x) => typeof x === 'string')
        : typeof v !== want && want !== 'undefined'
    )
      throw invalidArgument(`invalid type for "${k}" in ${file}`);
    out[key] = v;
  }
  if (out.logLevel !== undefined && !isLogLevel(out.logLevel as string))
    throw invalidArgument(`invalid log level "${String(out.logLevel)}" in ${file}`);
  if (
    out.iptablesChainPrefix !== undefined &&
    !/^[A-Za-z][A-Za-z0-9_-]{0,18}$/.test(out.iptablesChainPrefix as string)
  )
    throw invalidArgument(`invalid iptables-chain-prefix in ${file}: letters, digits, _ and -, at most 19`);
  if (out.bridge !== undefined && !/^[a-zA-Z0-9_.-]{1,15}$/.test(out.bridge as string))
    throw invalidArgument(`invalid bridge name in ${file}: at most 15 letters, digits, _ . -`);
  return out as Partial<DaemonOptions>;
}

export interface Listener {
  kind: 'unix' | 'tcp';
  path?: string;
  host?: string;
  port?: number;
}

export function parseHost(h: string): Listener {
  if (h.startsWith('unix://')) return { kind: 'unix', path: h.slice(7) };
  if (h.startsWith('/')) return { kind: 'unix', path: h };
  if (h.startsWith('tcp://')) {
    const u = new URL(`http://${h.slice(6)}`);
    const host = u.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1';
    const port = u.port ? Number(u.port) : 2375;
    return { kind: 'tcp', host, port };
  }
  if (h.startsWith('fd://'))
    throw invalidArgument('fd:// hosts are not supported (no systemd socket activation)');
  throw invalidArgument(`invalid host "${h}": use unix:///path or tcp://host:port`);
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

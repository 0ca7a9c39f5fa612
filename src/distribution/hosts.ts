/**
 * Which registry a name goes to and how: mirrors for docker.io; for insecure registries
 * (`insecure-registries` entries are host[:port] or IPv4 CIDRs) https without certificate checks,
 * falling back to plain http, as Docker; loopback is always insecure and plain http; and the
 * address `login` uses for Docker Hub.
 */
import { invalidArgument } from '../common/errors.js';

export interface RegistryConfig {
  mirrors: string[];
  insecure: string[];
}

export const DOCKER_HUB_LOGIN = 'https://index.docker.io/v1/';

/** Checks daemon.json / flag values like Docker does, before the daemon starts. */
export function validateRegistryConfig(cfg: RegistryConfig): void {
  for (const m of cfg.mirrors) {
    let u: URL;
    try {
      u = new URL(m);
    } catch {
      throw invalidArgument(`invalid mirror: "${m}" is not a valid URI`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:')
      throw invalidArgument(`invalid mirror: unsupported scheme "${u.protocol.slice(0, -1)}" in "${m}"`);
    if (u.pathname !== '/' && u.pathname !== '')
      throw invalidArgument(`invalid mirror: path not allowed in "${m}"`);
  }
  for (const r of cfg.insecure) {
    if (r.includes('://')) throw invalidArgument(`insecure registry ${r} should not contain '://'`);
    if (r.includes('/') && !parseCidr(r)) throw invalidArgument(`invalid insecure registry CIDR: ${r}`);
  }
}

function ipv4(s: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return undefined;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return undefined;
  return ((parts[0] << 24) | (parts[1] << 16) | (parts[2] << 8) | parts[3]) >>> 0;
}

function parseCidr(s: string): { net: number; mask: number } | undefined {
  const [ip, bits] = s.split('/');
  const n = ipv4(ip);
  const b = Number(bits);
  if (n === undefined || !Number.isInteger(b) || b < 0 || b > 32) return undefined;
  const mask = b === 0 ? 0 : (0xffffffff << (32 - b)) >>> 0;
  return { net: (n & mask) >>> 0, mask };
}

function hostnameOf(host: string): string {
  return host.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
}

/** A loopback registry (localhost, 127.0.0.0/8, ::1): always insecure, and spoken to over plain http. */
export function isLoopback(host: string): boolean {
  const hostname = hostnameOf(host);
  return hostname === 'localhost' || hostname === '::1' || /^127\./.test(hostname);
}

/**
 * host[:port] of a registry → whether it is insecure: loopback (plain http), or listed in
 * `insecure-registries` (https without certificate checks first, then plain http, as Docker).
 */
export function isInsecure(host: string, insecure: string[]): boolean {
  const hostname = hostnameOf(host);
  if (isLoopback(host)) return true;
  const ip = ipv4(hostname);
  for (const entry of insecure) {
    if (entry === host || entry === hostname) return true;
    const cidr = entry.includes('/') ? parseCidr(entry) : undefined;
    if (cidr && ip !== undefined && (ip & cidr.mask) >>> 0 === cidr.net) return true;
  }
  return false;
}

/** A registry's base URL from a host or a server address as `login` gets it. */
export function registryBase(serverAddress: string, cfg: RegistryConfig): { host: string; base: string } {
  let host = serverAddress
    .trim()
    .replace(/^https?:\/\//, '')
    .replace(/\/.*$/, '');
  if (!host || host === 'index.docker.io' || host === 'docker.io' || host === 'registry-1.docker.io')
    return { host: 'docker.io', base: 'https://registry-1.docker.io' };
  host = host.toLowerCase();
  const scheme = /^http:\/\//.test(serverAddress) || isInsecure(host, cfg.insecure) ? 'http' : 'https';
  return { host, base: `${scheme}://${host}` };
}

/** Docker's `/info` RegistryConfig: CIDRs and per-registry index configs. */
export function registryInfo(cfg: RegistryConfig): Record<string, unknown> {
  const cidrs = ['127.0.0.0/8', ...cfg.insecure.filter((r) => r.includes('/'))];
  const indexConfigs: Record<string, unknown> = {
    'docker.io': { Name: 'docker.io', Mirrors: cfg.mirrors, Secure: true, Official: true },
  };
  for (const r of cfg.insecure.filter((x) => !x.includes('/')))
    indexConfigs[r] = { Name: r, Mirrors: [], Secure: false, Official: false };
  return {
    AllowNondistributableArtifactsCIDRs: [],
    AllowNondistributableArtifactsHostnames: [],
    InsecureRegistryCIDRs: [...new Set(cidrs)],
    IndexConfigs: indexConfigs,
    Mirrors: cfg.mirrors,
  };
}

/**
 * IPv4 address management: subnets as integers, overlap checks, and picking free addresses.
 * Leases themselves are persisted by the network service (one endpoint file per container).
 */
import { readFileSync } from 'node:fs';
import { invalidArgument } from '../../common/errors.js';

export interface Subnet {
  /** network address as an unsigned 32-bit integer */
  base: number;
  prefix: number;
}

export function ipToInt(ip: string): number {
  const parts = ip.split('.');
  if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255))
    throw invalidArgument(`invalid IP address: ${ip}`);
  return parts.reduce((acc, p) => acc * 256 + Number(p), 0);
}

export function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export function isIPv4(s: string): boolean {
  try {
    ipToInt(s);
    return true;
  } catch {
    return false;
  }
}

function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** `10.1.0.0/16` -> Subnet; host bits must be zero unless `loose` (bip style `10.1.0.1/16`). */
export function parseCidr(cidr: string, loose = false): Subnet & { ip: number } {
  const m = /^([\d.]+)\/(\d{1,2})$/.exec(cidr.trim());
  if (!m || Number(m[2]) > 32) throw invalidArgument(`invalid CIDR address: ${cidr}`);
  const prefix = Number(m[2]);
  const ip = ipToInt(m[1]);
  const base = (ip & maskOf(prefix)) >>> 0;
  if (!loose && base !== ip)
    throw invalidArgument(`invalid subnet ${cidr}: it should be ${intToIp(base)}/${prefix}`);
  return { base, prefix, ip };
}

export function cidrString(s: Subnet): string {
  return `${intToIp(s.base)}/${s.prefix}`;
}

export function contains(s: Subnet, ip: number): boolean {
  return (ip & maskOf(s.prefix)) >>> 0 === s.base;
}

export function overlaps(a: Subnet, b: Subnet): boolean {
  const p = Math.min(a.prefix, b.prefix);
  return (a.base & maskOf(p)) >>> 0 === (b.base & maskOf(p)) >>> 0;
}

/** The host's IPv4 routes (destination subnets), from /proc/net/route. */
export function hostRoutes(): { iface: string; subnet: Subnet }[] {
  let text: string;
  try {
    text = readFileSync('/proc/net/route', 'utf8');
  } catch {
    return [];
  }
  const out: { iface: string; subnet: Subnet }[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    const dest = Number.parseInt(f[1], 16);
    const mask = Number.parseInt(f[7], 16);
    if (mask === 0) continue; // the default route collides with nothing
    // little-endian hex in /proc
    const swap = (n: number) =>
      (((n & 255) << 24) | (((n >>> 8) & 255) << 16) | (((n >>> 16) & 255) << 8) | (n >>> 24)) >>> 0;
    const m = swap(mask);
    let prefix = 0;
    while (prefix < 32 && m & (0x80000000 >>> prefix)) prefix++;
    out.push({ iface: f[0], subnet: { base: swap(dest), prefix } });
  }
  return out;
}

/** Docker's default pools: 172.17-31.0.0/16 then 192.168.0-240.0/20. */
export const DEFAULT_POOLS: { base: string; size: number }[] = [
  { base: '172.17.0.0/16', size: 16 },
  { base: '172.18.0.0/16', size: 16 },
  { base: '172.19.0.0/16', size: 16 },
  { base: '172.20.0.0/14', size: 16 },
  { base: '172.24.0.0/14', size: 16 },
  { base: '172.28.0.0/14', size: 16 },
  { base: '192.168.0.0/16', size: 20 },
];

/** The first subnet of the pools that overlaps none of `taken`. */
export function pickSubnet(pools: { base: string; size: number }[], taken: Subnet[]): Subnet | undefined {
  for (const pool of pools) {
    const p = parseCidr(pool.base);
    if (pool.size < p.prefix || pool.size > 30) continue;
    const count = 2 ** (pool.size - p.prefix);
    for (let i = 0; i < count; i++) {
      const cand = { base: (p.base + i * 2 ** (32 - pool.size)) >>> 0, prefix: pool.size };
      if (!taken.some((t) => overlaps(t, cand))) return cand;
    }
  }
  return undefined;
}

/** An address of `s` not in `used` (network, gateway and broadcast excluded), lowest first. */
export function allocateIp(s: Subnet, used: Set<number>): number | undefined {
  const size = 2 ** (32 - s.prefix);
  for (let i = 1; i < size - 1; i++) {
    const ip = (s.base + i) >>> 0;
    if (!used.has(ip)) return ip;
  }
  return undefined;
}

/** Docker's MAC for an address: 02:42 followed by the four bytes of the IP. */
export function macForIp(ip: number): string {
  const b = [0x02, 0x42, ip >>> 24, (ip >>> 16) & 255, (ip >>> 8) & 255, ip & 255];
  return b.map((x) => x.toString(16).padStart(2, '0')).join(':');
}

export function isMac(s: string): boolean {
  return /^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(s);
}

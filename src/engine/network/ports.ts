/**
 * Published ports: checking PortBindings, choosing host ports, and holding each host port with a
 * bound socket for the container's run, so a port taken by anything else fails the start clearly.
 */
import * as dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import * as net from 'node:net';
import { invalidArgument } from '../../common/errors.js';
import { isIPv4 } from './ipam.js';

export interface PortBinding {
  HostIp: string;
  HostPort: string;
}
export type PortBindings = Record<string, PortBinding[] | null>;

export interface PortMapping {
  proto: 'tcp' | 'udp';
  containerPort: number;
  hostIp: string;
  hostPort: number;
}

/** `80/tcp` -> {port, proto}; Docker's errors for anything else. */
export function parsePortKey(key: string): { port: number; proto: 'tcp' | 'udp' } {
  const m = /^(\d+)(?:\/(tcp|udp|sctp))?$/i.exec(key);
  if (!m) throw invalidArgument(`invalid port specification: "${key}"`);
  const port = Number(m[1]);
  if (port < 1 || port > 65535) throw invalidArgument(`invalid port specification: "${key}"`);
  const proto = (m[2] ?? 'tcp').toLowerCase();
  if (proto === 'sctp') throw invalidArgument('sctp ports are not supported');
  return { port, proto: proto as 'tcp' | 'udp' };
}

function parseHostPort(v: string): [number, number] | undefined {
  if (v === '' || v === '0') return undefined;
  const m = /^(\d+)(?:-(\d+))?$/.exec(v);
  if (!m) throw invalidArgument(`invalid port specification: "${v}"`);
  const lo = Number(m[1]);
  const hi = m[2] ? Number(m[2]) : lo;
  if (lo < 1 || hi > 65535 || hi < lo) throw invalidArgument(`invalid port specification: "${v}"`);
  return [lo, hi];
}

/** Validates a HostConfig.PortBindings value (untrusted JSON) and returns it normalized. */
export function checkPortBindings(raw: unknown): PortBindings {
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== 'object' || Array.isArray(raw))
    throw invalidArgument(
      'json: cannot unmarshal into Go struct field HostConfig.PortBindings of type nat.PortMap',
    );
  const out: PortBindings = {};
  for (const [key, list] of Object.entries(raw as Record<string, unknown>)) {
    const { port, proto } = parsePortKey(key);
    const k = `${port}/${proto}`;
    if (list === null) {
      out[k] = null;
      continue;
    }
    if (!Array.isArray(list)) throw invalidArgument(`invalid port binding for ${key}`);
    out[k] = list.map((b: unknown) => {
      const o = (b ?? {}) as Record<string, unknown>;
      const hostIp = typeof o.HostIp === 'string' ? o.HostIp : '';
      const hostPort =
        typeof o.HostPort === 'string' ? o.HostPort : o.HostPort === undefined ? '' : String(o.HostPort);
      if (hostIp && !isIPv4(hostIp) && hostIp !== '::')
        throw invalidArgument(`invalid IP address: ${hostIp}`);
      parseHostPort(hostPort);
      return { HostIp: hostIp, HostPort: hostPort };
    });
  }
  return out;
}

function ephemeralRange(): [number, number] {
  try {
    const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')
      .trim()
      .split(/\s+/)
      .map(Number);
    if (lo > 0 && hi >= lo) return [lo, hi];
  } catch {
    // fall through
  }
  return [32768, 60999];
}

/** A socket holding a host port. */
export interface Held {
  close(): void;
}

function hold(proto: 'tcp' | 'udp', hostIp: string, port: number): Promise<Held> {
  const host = hostIp || '0.0.0.0';
  if (proto === 'udp') {
    return new Promise((resolve, reject) => {
      const s = dgram.createSocket('udp4');
      s.once('error', reject);
      s.bind(port, host, () => {
        s.off('error', reject);
        s.on('error', () => undefined);
        resolve({ close: () => s.close() });
      });
    });
  }
  return new Promise((resolve, reject) => {
    const s = net.createServer((c) => c.destroy());
    s.once('error', reject);
    s.listen({ port, host, exclusive: true, backlog: 1 }, () => {
      s.off('error', reject);
      resolve({ close: () => s.close() });
    });
  });
}

export class PortAllocator {
  /** `${proto}/${port}` -> host ips in use ('' = all) */
  private readonly used = new Map<string, Set<string>>();
  private next = 0;

  private clash(proto: string, ip: string, port: number): boolean {
    const s = this.used.get(`${proto}/${port}`);
    if (!s) return false;
    return s.has('') || ip === '' || s.has(ip);
  }

  private mark(proto: string, ip: string, port: number): void {
    const k = `${proto}/${port}`;
    let s = this.used.get(k);
    if (!s) this.used.set(k, (s = new Set()));
    s.add(ip);
  }

  release(m: PortMapping): void {
    const k = `${m.proto}/${m.hostPort}`;
    const s = this.used.get(k);
    s?.delete(m.hostIp === '0.0.0.0' ? '' : m.hostIp);
    if (s?.size === 0) this.used.delete(k);
  }

  /** Marks a mapping recovered after a daemon restart. */
  claim(m: PortMapping): void {
    this.mark(m.proto, m.hostIp === '0.0.0.0' ? '' : m.hostIp, m.hostPort);
  }

  /**
   * Chooses and holds host ports for the bindings. On any failure every port taken so far is
   * released and the error says which binding failed, like Docker's.
   */
  async allocate(
    bindings: PortBindings,
    endpoint: string,
  ): Promise<{ mappings: PortMapping[]; held: Held[] }> {
    const mappings: PortMapping[] = [];
    const held: Held[] = [];
    const undo = () => {
      for (const h of held) h.close();
      for (const m of mappings) this.release(m);
    };
    try {
      for (const [key, list] of Object.entries(bindings)) {
        if (!list) continue;
        const { port, proto } = parsePortKey(key);
        for (const b of list) {
          if (b.HostIp === '::') continue; // IPv6 is not served
          const ip = b.HostIp === '0.0.0.0' ? '' : b.HostIp;
          const range = parseHostPort(b.HostPort);
          const shown = `${ip || '0.0.0.0'}`;
          let chosen: { port: number; h: Held } | undefined;
          let lastErr: unknown;
          const candidates = range ? rangeOf(range) : this.ephemeralCandidates();
          for (const p of candidates) {
            if (this.clash(proto, ip, p)) {
              lastErr = new Error(`Bind for ${shown}:${p} failed: port is already allocated`);
              continue;
            }
            try {
              chosen = { port: p, h: await hold(proto, ip, p) };
              break;
            } catch (err) {
              const code = (err as NodeJS.ErrnoException).code;
              lastErr = new Error(
                `Error starting userland proxy: listen ${proto}4 ${shown}:${p}: bind: ${code === 'EADDRINUSE' ? 'address already in use' : code === 'EADDRNOTAVAIL' ? 'cannot assign requested address' : String(err)}`,
              );
            }
          }
          if (!chosen)
            throw new Error(
              `driver failed programming external connectivity on endpoint ${endpoint}: ${lastErr instanceof Error ? lastErr.message : 'no free port'}`,
            );
          if (!range) this.next = chosen.port + 1;
          this.mark(proto, ip, chosen.port);
          held.push(chosen.h);
          mappings.push({ proto, containerPort: port, hostIp: ip || '0.0.0.0', hostPort: chosen.port });
        }
      }
    } catch (err) {
      undo();
      throw err;
    }
    return { mappings, held };
  }

  private *ephemeralCandidates(): Generator<number> {
    const [lo, hi] = ephemeralRange();
    const start = this.next >= lo && this.next <= hi ? this.next : lo;
    for (let p = start; p <= hi; p++) yield p;
    for (let p = lo; p < start; p++) yield p;
  }
}

function* rangeOf([lo, hi]: [number, number]): Generator<number> {
  for (let p = lo; p <= hi; p++) yield p;
}

/**
 * The networking flags of `run`/`create` (-p, -P, --expose, --dns*, --add-host, --ip,
 * --mac-address, --network-alias, --network-rate) turned into create-body fields, with the
 * docker CLI's parsing and errors.
 */
import { ExitError } from './errors.js';

export interface NetFlags {
  network?: string;
  publish: string[];
  publishAll?: boolean;
  expose: string[];
  dns: string[];
  dnsSearch: string[];
  dnsOption: string[];
  addHost: string[];
  ip?: string;
  macAddress?: string;
  networkAlias: string[];
  networkRate?: string;
}

type Binding = { HostIp: string; HostPort: string };

function portRange(v: string, what: string, spec: string): [number, number] {
  const m = /^(\d+)(?:-(\d+))?$/.exec(v);
  const lo = m ? Number(m[1]) : NaN;
  const hi = m?.[2] ? Number(m[2]) : lo;
  if (!m || lo < 1 || hi > 65535 || hi < lo) throw new ExitError(125, `Invalid ${what}: ${spec}`);
  return [lo, hi];
}

/** Docker's nat.ParsePortSpec: `[ip:][hostPort:]containerPort[/proto]`, ranges allowed. */
export function parsePublish(spec: string): { key: string; binding: Binding }[] {
  let rest = spec;
  let proto = 'tcp';
  const slash = rest.lastIndexOf('/');
  if (slash >= 0) {
    proto = rest.slice(slash + 1).toLowerCase();
    rest = rest.slice(0, slash);
    if (!['tcp', 'udp', 'sctp'].includes(proto)) throw new ExitError(125, `invalid proto: ${proto}`);
  }
  let ip = '';
  let host = '';
  let container: string;
  const v6 = /^\[([0-9a-fA-F:.]+)\]:(.*)$/.exec(rest);
  if (v6) {
    ip = v6[1];
    rest = v6[2];
    const i = rest.indexOf(':');
    if (i < 0) throw new ExitError(125, `invalid port format: ${spec}`);
    host = rest.slice(0, i);
    container = rest.slice(i + 1);
  } else {
    const parts = rest.split(':');
    if (parts.length === 1) container = parts[0];
    else if (parts.length === 2) [host, container] = parts;
    else if (parts.length === 3) [ip, host, container] = parts;
    else throw new ExitError(125, `invalid port format: ${spec}`);
  }
  if (ip && !/^\d{1,3}(\.\d{1,3}){3}$/.test(ip) && !ip.includes(':'))
    throw new ExitError(125, `invalid IP address: ${ip}`);
  if (!container) throw new ExitError(125, `no port specified: ${spec}<empty>`);
  const [clo, chi] = portRange(container, 'containerPort', container);
  const out: { key: string; binding: Binding }[] = [];
  if (!host) {
    for (let p = clo; p <= chi; p++)
      out.push({ key: `${p}/${proto}`, binding: { HostIp: ip, HostPort: '' } });
    return out;
  }
  const [hlo, hhi] = portRange(host, 'hostPort', host);
  if (clo === chi && hhi > hlo) return [{ key: `${clo}/${proto}`, binding: { HostIp: ip, HostPort: host } }];
  if (hhi - hlo !== chi - clo)
    throw new ExitError(
      125,
      `invalid ranges specified for container and host Ports: ${container} and ${host}`,
    );
  for (let i = 0; i <= chi - clo; i++)
    out.push({ key: `${clo + i}/${proto}`, binding: { HostIp: ip, HostPort: String(hlo + i) } });
  return out;
}

/** Fields to merge into the create body (top level, HostConfig, NetworkingConfig). */
export function netBody(f: NetFlags): {
  top: Record<string, unknown>;
  host: Record<string, unknown>;
  networking?: Record<string, unknown>;
} {
  const exposed: Record<string, object> = {};
  for (const e of f.expose) {
    const [port, proto = 'tcp'] = e.split('/');
    const [lo, hi] = portRange(port, 'range format for --expose', e);
    for (let p = lo; p <= hi; p++) exposed[`${p}/${proto}`] = {};
  }
  const bindings: Record<string, Binding[]> = {};
  for (const p of f.publish)
    for (const { key, binding } of parsePublish(p)) {
      (bindings[key] ??= []).push(binding);
      exposed[key] = {};
    }
  const mode = f.network ?? 'default';
  const custom = !['default', 'bridge', 'host', 'none'].includes(mode) && !mode.startsWith('container:');
  if ((f.ip || f.networkAlias.length) && !custom)
    throw new ExitError(
      125,
      f.ip
        ? 'docker: Error response from daemon: user specified IP address is supported on user defined networks only.'
        : 'docker: Error response from daemon: network-scoped aliases are only supported for user-defined networks.',
    );
  const networking =
    custom || f.macAddress
      ? {
          EndpointsConfig: {
            [mode]: {
              ...(f.ip ? { IPAMConfig: { IPv4Address: f.ip } } : {}),
              ...(f.networkAlias.length ? { Aliases: f.networkAlias } : {}),
              ...(f.macAddress ? { MacAddress: f.macAddress } : {}),
            },
          },
        }
      : undefined;
  return {
    top: { ExposedPorts: exposed, ...(f.macAddress ? { MacAddress: f.macAddress } : {}) },
    host: {
      PortBindings: bindings,
      PublishAllPorts: !!f.publishAll,
      Dns: f.dns,
      DnsSearch: f.dnsSearch,
      DnsOptions: f.dnsOption,
      ExtraHosts: f.addHost.length ? f.addHost : null,
      ...(f.networkRate ? { NetworkRate: f.networkRate } : {}),
    },
    networking,
  };
}

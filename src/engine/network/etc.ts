/**
 * A container's /etc/resolv.conf and /etc/hosts, as Docker writes them.
 */
import { readFileSync } from 'node:fs';
import { invalidArgument } from '../../common/errors.js';
import { isIPv4 } from './ipam.js';

export interface DnsSettings {
  servers: string[];
  search: string[];
  options: string[];
}

export interface HostResolvConf extends DnsSettings {
  /** nameservers the host uses, loopback ones included (the daemon can reach those) */
  allServers: string[];
}

export function readHostResolvConf(file = '/etc/resolv.conf'): HostResolvConf {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    // no resolv.conf: defaults below
  }
  const all: string[] = [];
  const search: string[] = [];
  const options: string[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[0] === 'nameserver' && f[1]) all.push(f[1]);
    else if ((f[0] === 'search' || f[0] === 'domain') && f.length > 1)
      search.splice(0, search.length, ...f.slice(1));
    else if (f[0] === 'options') options.push(...f.slice(1));
  }
  // Loopback resolvers on the host are unreachable from a container's own network namespace.
  let servers = all.filter((s) => !/^127\./.test(s) && s !== '::1' && !s.includes(':'));
  if (servers.length === 0) servers = ['8.8.8.8', '8.8.4.4'];
  return { servers, search, options, allServers: all.length ? all : ['8.8.8.8'] };
}

export function renderResolvConf(s: DnsSettings): string {
  const lines: string[] = [];
  if (s.search.length) lines.push(`search ${s.search.join(' ')}`);
  for (const n of s.servers) lines.push(`nameserver ${n}`);
  if (s.options.length) lines.push(`options ${s.options.join(' ')}`);
  return lines.join('\n') + '\n';
}

/** `host:ip` entries of --add-host; `host-gateway` becomes the given gateway address. */
export function parseExtraHosts(list: string[], hostGateway: string): { name: string; ip: string }[] {
  return list.map((e) => {
    const i = e.indexOf(':');
    const sep = i < 0 ? e.indexOf('=') : i;
    if (sep <= 0) throw invalidArgument(`invalid extra host entry "${e}": expected host:ip`);
    const name = e.slice(0, sep);
    let ip = e.slice(sep + 1).replace(/^\[|\]$/g, '');
    if (ip === 'host-gateway') ip = hostGateway;
    if (!isIPv4(ip) && !/^[0-9a-fA-F:]+$/.test(ip))
      throw invalidArgument(`invalid IP address in add-host: "${e.slice(sep + 1)}"`);
    return { name, ip };
  });
}

export function renderHosts(
  entries: { ip: string; names: string[] }[],
  extra: { name: string; ip: string }[],
): string {
  const lines = [
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    'fe00::0\tip6-localnet',
    'ff00::0\tip6-mcastprefix',
    'ff02::1\tip6-allnodes',
    'ff02::2\tip6-allrouters',
  ];
  for (const x of extra) lines.push(`${x.ip}\t${x.name}`);
  for (const e of entries) lines.push(`${e.ip}\t${e.names.join(' ')}`);
  return lines.join('\n') + '\n';
}

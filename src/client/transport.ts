/**
 * How the client reaches a daemon: BERTH_HOST, then DOCKER_HOST, then -H, else the default socket.
 */
import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import type * as https from 'node:https';
import { createRequire } from 'node:module';
import * as path from 'node:path';

export const DEFAULT_HOST = 'unix:///run/berth/berth.sock';

export interface Endpoint {
  /** As given, e.g. unix:///run/berth/berth.sock or tcp://127.0.0.1:2375 */
  host: string;
  socketPath?: string;
  hostname?: string;
  port?: number;
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer; verify: boolean };
}

export function resolveHost(
  flagHost?: string,
  env: NodeJS.ProcessEnv = process.env,
  fallback = DEFAULT_HOST,
): string {
  return flagHost || env.BERTH_HOST || env.DOCKER_HOST || fallback;
}

export function parseEndpoint(host: string, env: NodeJS.ProcessEnv = process.env): Endpoint {
  if (host.startsWith('unix://')) return { host, socketPath: host.slice(7) };
  if (host.startsWith('/')) return { host: `unix://${host}`, socketPath: host };
  if (host.startsWith('tcp://') || host.startsWith('http://') || host.startsWith('https://')) {
    const u = new URL(host.replace(/^tcp:/, 'http:'));
    const verify = env.DOCKER_TLS_VERIFY !== undefined && env.DOCKER_TLS_VERIFY !== '';
    const certPath = env.DOCKER_CERT_PATH;
    const ep: Endpoint = { host, hostname: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port || 2375) };
    if (usesTls(host, env)) {
      const read = (f: string) => (certPath ? readFileSync(path.join(certPath, f)) : undefined);
      ep.tls = { ca: read('ca.pem'), cert: read('cert.pem'), key: read('key.pem'), verify };
    }
    return ep;
  }
  throw new Error(`invalid host ${JSON.stringify(host)}: use unix:///path or tcp://host:port`);
}

/** Whether the client speaks TLS to a host: https://, or tcp:// or http:// with DOCKER_TLS_VERIFY set. */
export function usesTls(host: string, env: NodeJS.ProcessEnv = process.env): boolean {
  if (host.startsWith('https://')) return true;
  if (!host.startsWith('tcp://') && !host.startsWith('http://')) return false;
  return env.DOCKER_TLS_VERIFY !== undefined && env.DOCKER_TLS_VERIFY !== '';
}

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  stream: http.IncomingMessage;
}

/**
 * Where a request goes. `servername` is always given, so that Node's agent does not work it out
 * itself: it tests the host with net.isIP, whose IPv6 pattern costs Node 20 10-50 ms of CPU for a
 * name like "localhost", on every request (most of a short CLI command). TLS gets the host name
 * for SNI unless it is an address, as Node would do.
 */
export function requestTarget(ep: Endpoint): http.RequestOptions & { servername: string } {
  if (ep.socketPath) return { socketPath: ep.socketPath, servername: '' };
  const name = ep.hostname ?? '';
  const isAddress = /^[\d.]+$/.test(name) || name.includes(':');
  return { host: ep.hostname, port: ep.port, servername: ep.tls && !isAddress ? name : '' };
}

// node:https (with node:tls) adds ~10 ms to every CLI start: loaded only for a TLS daemon.
const load = createRequire(import.meta.url);
function httpsModule(): typeof https {
  return load('node:https') as typeof https;
}

/** The module whose request() speaks to the endpoint: http, or https for TLS. */
export function requestModule(ep: Endpoint): typeof http | typeof https {
  return ep.tls ? httpsModule() : http;
}

export function makeAgent(ep: Endpoint): http.Agent {
  if (ep.tls)
    return new (httpsModule().Agent)({
      keepAlive: true,
      ca: ep.tls.ca,
      cert: ep.tls.cert,
      key: ep.tls.key,
      rejectUnauthorized: ep.tls.verify,
    });
  return new http.Agent({ keepAlive: true });
}

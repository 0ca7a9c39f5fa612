/**
 * The Engine API's HTTP plumbing: a small router that serves every route with and without the
 * `/vX.Y` prefix, Docker's standard headers, and errors mapped from engine error kinds in one place.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { BerthError, httpStatus, invalidArgument } from '../common/errors.js';
import { log } from '../common/log.js';

export const API_VERSION = '1.41';
export const MIN_API_VERSION = '1.24';
export const SERVER_HEADER = 'Berth/0.1.0 (linux)';

export interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  params: Record<string, string>;
  query: URLSearchParams;
  /** The API version the client asked for (path prefix), or the server's. */
  version: string;
}

export type Handler = (ctx: Ctx) => Promise<void> | void;

interface Route {
  method: string;
  re: RegExp;
  keys: string[];
  handler: Handler;
}

export class Router {
  private readonly routes: Route[] = [];

  /**
   * Adds a route. Pattern segments `{name}` match one path segment; `{name*}` matches greedily
   * across slashes (image names arrive unescaped: `/images/127.0.0.1:5000/a/b:1/json`).
   */
  add(method: string, pattern: string, handler: Handler): void {
    const keys: string[] = [];
    const re = pattern.replace(/\{(\w+)(\*?)\}/g, (_m, key: string, star: string) => {
      keys.push(key);
      return star ? '(.+)' : '([^/]+)';
    });
    this.routes.push({ method, re: new RegExp(`^${re}/?$`), keys, handler });
  }

  match(
    method: string,
    path: string,
  ): { handler: Handler; params: Record<string, string> } | 'method' | undefined {
    let pathMatched = false;
    for (const r of this.routes) {
      const m = r.re.exec(path);
      if (!m) continue;
      pathMatched = true;
      if (r.method !== method && !(method === 'HEAD' && r.method === 'GET')) continue;
      const params: Record<string, string> = {};
      r.keys.forEach((k, i) => (params[k] = safeDecode(m[i + 1])));
      return { handler: r.handler, params };
    }
    return pathMatched ? 'method' : undefined;
  }
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

export function compareVersions(a: string, b: string): number {
  const [a1, a2] = a.split('.').map(Number);
  const [b1, b2] = b.split('.').map(Number);
  return a1 - b1 || a2 - b2;
}

export function standardHeaders(res: ServerResponse): void {
  res.setHeader('Api-Version', API_VERSION);
  res.setHeader('Docker-Experimental', 'false');
  res.setHeader('Ostype', 'linux');
  res.setHeader('Server', SERVER_HEADER);
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const data = JSON.stringify(body) + '\n';
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) });
  res.end(data);
}

export function sendEmpty(res: ServerResponse, status: number): void {
  if (status === 204 || status === 304) res.writeHead(status);
  else res.writeHead(status, { 'Content-Length': 0 });
  res.end();
}

export function sendError(res: ServerResponse, err: unknown): void {
  const status = err instanceof BerthError ? httpStatus(err.kind) : 500;
  const message = err instanceof Error ? err.message : String(err);
  if (status >= 500) log.error('request failed', { error: message, stack: (err as Error)?.stack });
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, status, { message });
}

/** Reads the whole request body (bounded). */
export async function readBody(req: IncomingMessage, limit = 32 * 1024 * 1024): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw invalidArgument(`request body too large (over ${limit} bytes)`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** Parses a JSON request body; an empty body gives `fallback`. */
export async function readJson<T>(req: IncomingMessage, fallback?: T): Promise<T> {
  const body = await readBody(req);
  if (body.length === 0) {
    if (fallback !== undefined) return fallback;
    throw invalidArgument('bad parameter: request body is empty');
  }
  try {
    return JSON.parse(body.toString('utf8')) as T;
  } catch (err) {
    throw invalidArgument(`invalid JSON: ${(err as Error).message}`);
  }
}

/** Query booleans arrive as 1/0, true/false, True/False. */
export function queryBool(q: URLSearchParams, key: string, dflt = false): boolean {
  const v = q.get(key);
  if (v === null) return dflt;
  return !['', '0', 'no', 'false', 'none'].includes(v.toLowerCase());
}

export function queryInt(q: URLSearchParams, key: string, dflt: number): number {
  const v = q.get(key);
  if (v === null || v === '') return dflt;
  const n = Number(v);
  if (!Number.isFinite(n)) throw invalidArgument(`invalid value for ${key}: ${JSON.stringify(v)}`);
  return Math.trunc(n);
}

/**
 * `filters` as `{"label":{"a=b":true}}` (Go CLI) or `{"label":["a=b"]}` (docker-py).
 * Returns each key's list of values.
 */
export function parseFilters(q: URLSearchParams): Record<string, string[]> {
  const raw = q.get('filters');
  if (!raw) return {};
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    throw invalidArgument(`invalid filter: ${raw}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw invalidArgument(`invalid filter: ${raw}`);
  const out: Record<string, string[]> = {};
  for (const [k, val] of Object.entries(v as Record<string, unknown>)) {
    if (Array.isArray(val)) out[k] = val.map(String);
    else if (typeof val === 'object' && val !== null)
      out[k] = Object.entries(val as Record<string, unknown>)
        .filter(([, on]) => on)
        .map(([x]) => x);
    else throw invalidArgument(`invalid filter: ${raw}`);
  }
  return out;
}

/** Rejects filter keys an endpoint does not know, like Docker (`invalid filter 'x'`). */
export function checkFilterKeys(filters: Record<string, string[]>, allowed: string[]): void {
  for (const k of Object.keys(filters))
    if (!allowed.includes(k)) throw invalidArgument(`invalid filter '${k}'`);
}

/** A JSON message stream (pull, push, build, load): one chunk per message, `\r\n`-terminated. */
export class JsonStream {
  constructor(private readonly res: ServerResponse) {}

  start(): void {
    if (!this.res.headersSent) {
      this.res.writeHead(200, { 'Content-Type': 'application/json' });
      this.res.flushHeaders();
    }
  }

  send(msg: unknown): void {
    this.start();
    this.res.write(JSON.stringify(msg) + '\r\n');
  }

  error(err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    this.send({ errorDetail: { message }, error: message });
  }

  end(): void {
    this.start();
    this.res.end();
  }
}

/** `since`/`until` query values: unix seconds (fractional) or RFC 3339. */
export function timeParam(v: string | null): number | undefined {
  if (!v) return undefined;
  const n = Number(v);
  if (Number.isFinite(n)) return n;
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw invalidArgument(`invalid time value: ${v}`);
  return t / 1000;
}

/**
 * Berth Hub's HTTP front: the OCI Distribution Spec v1.1 routes (distribution.ts) behind the
 * auth gate (gate.ts), the token endpoint (when auth is on), `docker search`'s /v1/search and the
 * web pages.
 */
import * as http from 'node:http';
import { log } from '../common/log.js';
import { parseScope } from './auth.js';
import { distribution } from './distribution.js';
import { type HubContext, type HubOptions, principalOrAnonymous } from './gate.js';
import { ociError } from './http.js';
import { searchRoute } from './search.js';
import type { HubStorage } from './storage.js';
import { webPage } from './web.js';

export function createHubServer(storage: HubStorage, opts: HubOptions = {}): http.Server {
  return http.createServer((req, res) => {
    res.setHeader('Docker-Distribution-API-Version', 'registry/2.0');
    const url = new URL(req.url ?? '/', 'http://hub');
    handle({ storage, opts, req, res, url }).catch((err: unknown) => {
      log.error('hub request failed', { error: String(err) });
      req.resume();
      if (!res.headersSent) ociError(res, 500, 'UNKNOWN', String((err as Error).message ?? err));
      else res.destroy();
    });
  });
}

/** Dot segments, encoded slashes or dots and backslashes: never part of a valid name. */
const PATH_TRICK = /(^|\/)\.\.?(\/|$)|%2e|%2f|%5c|\\|\/\//i;

async function handle(ctx: HubContext): Promise<void> {
  const { req, res } = ctx;
  const rawPath = (req.url ?? '/').split('?')[0];
  if (PATH_TRICK.test(rawPath)) {
    req.resume();
    if (rawPath.startsWith('/v2/'))
      return ociError(res, 400, 'NAME_INVALID', 'invalid repository name', { path: rawPath });
    res.writeHead(400, { 'Content-Type': 'text/plain' });
    res.end('bad path\n');
    return;
  }
  if (rawPath === '/token') return tokenEndpoint(ctx);
  if (rawPath === '/v1/search') return searchRoute(ctx, await principalOrAnonymous(ctx));
  if (rawPath.startsWith('/v2/') || rawPath === '/v2') return distribution(ctx, rawPath);
  return webPage(ctx, rawPath);
}

/** GET /token?service=&scope=… with optional Basic auth (Docker's token flow), POST for OAuth2's password grant. */
async function tokenEndpoint(ctx: HubContext): Promise<void> {
  const { req, res, url } = ctx;
  const auth = ctx.opts.auth;
  const answer = (status: number, body: unknown, headers: Record<string, string> = {}) => {
    const data = JSON.stringify(body);
    res.writeHead(status, {
      'Content-Type': 'application/json',
      'Content-Length': Buffer.byteLength(data),
      'Cache-Control': 'no-store',
      ...headers,
    });
    res.end(data);
  };
  if (!auth) {
    req.resume();
    return answer(404, { details: 'this hub does not use tokens' });
  }
  let user: string | undefined;
  let password: string | undefined;
  let params = url.searchParams;
  if (req.method === 'POST') {
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const c of req) {
      n += (c as Buffer).length;
      if (n > 64 * 1024) return answer(413, { details: 'request too large' });
      chunks.push(c as Buffer);
    }
    params = new URLSearchParams(Buffer.concat(chunks).toString());
    if (params.get('grant_type') !== 'password')
      return answer(400, {
        error: 'unsupported_grant_type',
        details: 'only the password grant is supported',
      });
    user = params.get('username') ?? undefined;
    password = params.get('password') ?? '';
  } else if (req.method === 'GET') {
    req.resume();
    const h = req.headers.authorization;
    if (h && /^Basic /i.test(h)) {
      const decoded = Buffer.from(h.slice(6).trim(), 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon < 0) return answer(400, { details: 'malformed basic credentials' });
      user = decoded.slice(0, colon);
      password = decoded.slice(colon + 1);
    }
  } else {
    req.resume();
    return answer(405, { details: 'method not allowed' });
  }
  const service = params.get('service');
  if (service && service !== auth.service)
    return answer(400, { details: `unknown service ${JSON.stringify(service)}` });
  if (user !== undefined && !(await auth.users.authenticate(user, password ?? '')))
    return answer(
      401,
      { details: 'incorrect username or password' },
      { 'WWW-Authenticate': 'Basic realm="Berth Hub"' },
    );
  const scopes = params
    .getAll('scope')
    .flatMap((s) => s.split(' '))
    .filter(Boolean);
  const requested = [];
  for (const s of scopes) {
    const a = parseScope(s);
    if (!a) return answer(400, { details: `invalid scope ${JSON.stringify(s)}` });
    requested.push(a);
  }
  const t = await auth.issue(user, requested, (r) => ctx.storage.repoMeta(r));
  if (req.method === 'POST')
    return answer(200, {
      access_token: t.token,
      token_type: 'Bearer',
      expires_in: t.expiresIn,
      scope: t.access.map((a) => `${a.type}:${a.name}:${a.actions.join(',')}`).join(' '),
    });
  answer(200, { token: t.token, access_token: t.token, expires_in: t.expiresIn, issued_at: t.issuedAt });
}

export type { HubOptions } from './gate.js';

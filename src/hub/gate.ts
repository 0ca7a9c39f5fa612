/**
 * The registry's auth gate: who the caller is (a verified bearer token, or anonymous) and whether
 * it may take an action on a repository; answers 401 with the `WWW-Authenticate: Bearer` challenge
 * a client needs, or 403 DENIED.
 */
import type * as http from 'node:http';
import { granted, type HubAuth, type Principal, TokenError } from './auth.js';
import { ociError } from './http.js';
import type { PullThrough } from './proxy.js';
import type { HubStorage } from './storage.js';

export interface HubOptions {
  /** Accounts and tokens; without it the hub is anonymous (anyone pulls and pushes). */
  auth?: HubAuth;
  /** Fetches manifests and blobs the hub does not have from an upstream registry. */
  proxy?: PullThrough;
  /** The token endpoint's absolute URL; default http://<Host header>/token. */
  realm?: string;
}

export interface HubContext {
  storage: HubStorage;
  opts: HubOptions;
  req: http.IncomingMessage;
  res: http.ServerResponse;
  url: URL;
}

export function realmOf(ctx: HubContext): string {
  return ctx.opts.realm ?? `http://${ctx.req.headers.host ?? '127.0.0.1'}/token`;
}

function challenge(ctx: HubContext, scope?: string, error?: string): string {
  const parts = [`realm="${realmOf(ctx)}"`, `service="${ctx.opts.auth!.service}"`];
  if (scope) parts.push(`scope="${scope}"`);
  if (error) parts.push(`error="${error}"`);
  return `Bearer ${parts.join(',')}`;
}

function unauthorized(ctx: HubContext, message: string, scope?: string, error?: string): void {
  ctx.req.resume();
  ctx.res.setHeader('WWW-Authenticate', challenge(ctx, scope, error));
  ociError(ctx.res, 401, 'UNAUTHORIZED', message);
}

/**
 * The caller's verified token, or undefined for none. A bad or expired token is answered here
 * (401 with an invalid_token challenge) and `false` returned.
 */
async function bearer(ctx: HubContext, scope?: string): Promise<Principal | undefined | false> {
  const h = ctx.req.headers.authorization;
  if (!ctx.opts.auth || !h || !/^Bearer /i.test(h)) return undefined;
  try {
    return await ctx.opts.auth.verify(h.slice(7).trim());
  } catch (err) {
    if (!(err instanceof TokenError)) throw err;
    unauthorized(ctx, err.message, scope, 'invalid_token');
    return false;
  }
}

/** For routes open to anyone but showing more to a signed-in caller (search, catalog). */
export async function principalOrAnonymous(ctx: HubContext): Promise<Principal | undefined> {
  if (!ctx.opts.auth) return undefined;
  const h = ctx.req.headers.authorization;
  if (!h || !/^Bearer /i.test(h)) return undefined;
  try {
    return await ctx.opts.auth.verify(h.slice(7).trim());
  } catch {
    return undefined;
  }
}

/** May the caller see this repository in listings (catalog, search, web)? */
export async function canList(ctx: HubContext, p: Principal | undefined, repo: string): Promise<boolean> {
  const meta = await ctx.storage.repoMeta(repo);
  if (!meta.private || !ctx.opts.auth) return true;
  return (await ctx.opts.auth.allowed(p?.user, repo, meta)).includes('pull');
}

/** `/v2/`: with auth on, a client must show a valid token (so `docker login` checks the password). */
export async function authorizeBase(ctx: HubContext): Promise<boolean> {
  if (!ctx.opts.auth) return true;
  const p = await bearer(ctx);
  if (p === false) return false;
  if (!p) {
    unauthorized(ctx, 'authentication required');
    return false;
  }
  return true;
}

/**
 * Gates an action on a repository; answers 401 (with the challenge a client needs to get a
 * better token) or 403 DENIED (the account can never do it) and returns false.
 */
export async function authorize(
  ctx: HubContext,
  repo: string,
  action: 'pull' | 'push' | 'delete',
): Promise<boolean> {
  const auth = ctx.opts.auth;
  if (!auth) return true;
  const scope = `repository:${repo}:${action === 'pull' ? 'pull' : action === 'push' ? 'pull,push' : 'delete'}`;
  const p = await bearer(ctx, scope);
  if (p === false) return false;
  if (p && granted(p, repo).includes(action)) return true;
  const meta = await ctx.storage.repoMeta(repo);
  if (action === 'pull' && !meta.private) return true;
  if (p?.user && !(await auth.allowed(p.user, repo, meta)).includes(action)) {
    ctx.req.resume();
    ociError(ctx.res, 403, 'DENIED', 'requested access to the resource is denied', {
      repository: repo,
      action,
    });
    return false;
  }
  unauthorized(ctx, 'authentication required', scope, p ? 'insufficient_scope' : undefined);
  return false;
}

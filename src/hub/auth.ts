/**
 * The hub's token service, as Docker Hub's: clients that meet a `WWW-Authenticate: Bearer
 * realm,service,scope` challenge ask `GET <realm>?service=…&scope=repository:<name>:pull,push`
 * (HTTP Basic with an account, or anonymous) and get a JWT listing the granted actions; the
 * registry checks each request's token against the action it needs.
 *
 * Tokens are ES256 JWTs signed by a key the hub generates once and keeps in `<root>/auth/`
 * (0600). Who may do what is decided here, once: admins everything; a user everything under
 * `<user>/`; everyone (anonymous included) pulls repositories that are not private.
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  randomUUID,
} from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import { writeFileAtomic } from '../common/atomic.js';
import { errnoCode } from '../common/errors.js';
import { UserStore } from './accounts.js';
import type { RepoMeta } from './storage.js';

export type Action = 'pull' | 'push' | 'delete';

export interface AccessEntry {
  type: string;
  name: string;
  actions: string[];
}

/** Who is asking, from a verified token. `user` is undefined for anonymous tokens. */
export interface Principal {
  user?: string;
  admin: boolean;
  access: AccessEntry[];
}

export class TokenError extends Error {
  constructor(
    message: string,
    readonly reason: 'expired' | 'invalid',
  ) {
    super(message);
  }
}

const ISSUER = 'berth-hub';

/** Parses `repository:name:pull,push` (and `registry:catalog:*`); undefined when malformed. */
export function parseScope(scope: string): AccessEntry | undefined {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first <= 0 || last === first) return undefined;
  const type = scope.slice(0, first).replace(/\(.*\)$/, '');
  const name = scope.slice(first + 1, last);
  const actions = scope
    .slice(last + 1)
    .split(',')
    .filter(Boolean);
  if (!name || !actions.length) return undefined;
  return { type, name, actions };
}

export class HubAuth {
  readonly users: UserStore;
  private key: KeyObject | undefined;
  private publicKey: KeyObject | undefined;
  private kid = '';

  constructor(
    readonly root: string,
    readonly service: string,
    readonly tokenTtl = 300,
  ) {
    this.users = new UserStore(root);
  }

  async init(): Promise<void> {
    const keyFile = path.join(this.root, 'auth', 'token-key.pem');
    let pem: string;
    try {
      pem = await fsp.readFile(keyFile, 'utf8');
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
      const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
      await fsp.mkdir(path.dirname(keyFile), { recursive: true, mode: 0o700 });
      await writeFileAtomic(keyFile, pem, 0o600);
    }
    this.key = createPrivateKey(pem);
    this.publicKey = createPublicKey(this.key);
    const der = this.publicKey.export({ type: 'spki', format: 'der' });
    this.kid = createHash('sha256').update(der).digest('hex').slice(0, 16);
  }

  /** The actions `user` may take on `repo` (undefined user = anonymous). */
  async allowed(user: string | undefined, repo: string, meta: RepoMeta): Promise<Action[]> {
    const u = user ? await this.users.get(user) : undefined;
    if (u?.admin) return ['pull', 'push', 'delete'];
    if (u && repo.startsWith(`${user}/`)) return ['pull', 'push', 'delete'];
    return meta.private ? [] : ['pull'];
  }

  /** Issues a token for what was asked, narrowed to what is allowed. */
  async issue(
    user: string | undefined,
    requested: AccessEntry[],
    repoMeta: (repo: string) => Promise<RepoMeta>,
  ): Promise<{ token: string; expiresIn: number; issuedAt: string; access: AccessEntry[] }> {
    const access: AccessEntry[] = [];
    const u = user ? await this.users.get(user) : undefined;
    for (const r of requested) {
      if (r.type === 'repository') {
        const may = await this.allowed(user, r.name, await repoMeta(r.name));
        const want = r.actions.includes('*') ? ['pull', 'push', 'delete'] : r.actions;
        const actions = want.filter((a): a is Action => (may as string[]).includes(a));
        if (actions.length) access.push({ type: r.type, name: r.name, actions });
      } else if (r.type === 'registry' && r.name === 'catalog' && r.actions.includes('*')) {
        // The catalog lists only what the caller may pull, so anyone may ask for it.
        access.push({ type: 'registry', name: 'catalog', actions: ['*'] });
      }
    }
    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({ access, admin: !!u?.admin })
      .setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid: this.kid })
      .setIssuer(ISSUER)
      .setSubject(user ?? '')
      .setAudience(this.service)
      .setIssuedAt(now)
      .setNotBefore(now - 1)
      .setExpirationTime(now + this.tokenTtl)
      .setJti(randomUUID())
      .sign(this.key!);
    return { token, expiresIn: this.tokenTtl, issuedAt: new Date(now * 1000).toISOString(), access };
  }

  /** Verifies a bearer token (signature, issuer, audience, time) and that its user still exists. */
  async verify(token: string): Promise<Principal> {
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token, this.publicKey!, {
        issuer: ISSUER,
        audience: this.service,
        algorithms: ['ES256'],
      }));
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) throw new TokenError('token expired', 'expired');
      throw new TokenError('invalid token', 'invalid');
    }
    const user = typeof payload.sub === 'string' && payload.sub ? payload.sub : undefined;
    const u = user ? await this.users.get(user) : undefined;
    if (user && !u) throw new TokenError('token names an unknown account', 'invalid');
    const access = Array.isArray(payload.access) ? (payload.access as AccessEntry[]) : [];
    return { user, admin: !!u?.admin, access };
  }
}

/** The actions a principal's token grants on a repository. */
export function granted(p: Principal, repo: string): string[] {
  return p.access.filter((a) => a.type === 'repository' && a.name === repo).flatMap((a) => a.actions);
}

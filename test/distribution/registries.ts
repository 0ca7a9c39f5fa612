/**
 * Registries for distribution tests: Debian's reference registry (docker-registry) on a loopback
 * port with its own storage, optionally behind htpasswd basic auth; and a token-auth front (a
 * token server plus a registry that demands bearer tokens with the right scope) over Berth Hub.
 */
import bcrypt from 'bcryptjs';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHubServer } from '../../src/hub/server.js';
import { FsHubStorage } from '../../src/hub/storage.js';
import { BERTH, run } from '../helpers/daemon.js';
import { cleanupDir } from '../helpers/daemon.js';

export const REFERENCE_REGISTRY = '/usr/bin/docker-registry';
export const hasReferenceRegistry = existsSync(REFERENCE_REGISTRY);

/** Prepares a Berth Hub root with accounts (token auth), seeded with hello-world and busybox. */
export async function seedAuthHub(root: string, users: Record<string, string>): Promise<void> {
  writeFileSync(path.join(root, 'config.json'), JSON.stringify({ auth: true }));
  const seed = await run(process.execPath, [BERTH, 'hub', 'seed', '--root', root]);
  assert.equal(seed.code, 0, seed.stderr);
  for (const [user, password] of Object.entries(users)) {
    const add = await run(process.execPath, [BERTH, 'hub', 'user', 'add', user, '--root', root], {
      input: `${password}\n`,
    });
    assert.equal(add.code, 0, add.stderr);
  }
}

export async function freePort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function listen(server: http.Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return (server.address() as AddressInfo).port;
}

export interface RunningRegistry {
  /** host:port */
  host: string;
  dir: string;
  stop(): Promise<void>;
}

/** Starts docker-registry on 127.0.0.1 with storage under a fresh directory. */
export async function startReferenceRegistry(users: Record<string, string> = {}): Promise<RunningRegistry> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-refreg-'));
  const port = await freePort();
  const auth = Object.keys(users).length
    ? `auth:\n  htpasswd:\n    realm: basic-realm\n    path: ${dir}/htpasswd\n`
    : '';
  if (auth)
    writeFileSync(
      path.join(dir, 'htpasswd'),
      Object.entries(users)
        .map(([u, p]) => `${u}:${bcrypt.hashSync(p, 5)}`)
        .join('\n') + '\n',
    );
  writeFileSync(
    path.join(dir, 'config.yml'),
    `version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: ${dir}/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:${port}
${auth}`,
  );
  let output = '';
  const proc: ChildProcess = spawn(REFERENCE_REGISTRY, ['serve', path.join(dir, 'config.yml')], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const host = `127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    const status = await new Promise<number>((resolve) => {
      const req = http.get(`http://${host}/v2/`, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', () => resolve(0));
    });
    if (status === 200 || status === 401) break;
    if (i > 100 || proc.exitCode !== null) {
      proc.kill('SIGKILL');
      throw new Error(`docker-registry did not start: ${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    host,
    dir,
    async stop() {
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        await exited;
      }
      await cleanupDir(dir);
    },
  };
}

export interface TokenRegistry extends RunningRegistry {
  /** Every request that reached the front: method, path, authorization kind. */
  log: { method: string; path: string; auth: string; contentRange?: string }[];
  /** Scopes asked for at the token endpoint, with the account. */
  tokenRequests: { account: string; scopes: string[] }[];
}

/**
 * Berth Hub behind a token-auth front like Docker Hub's: `/token` issues bearer tokens for the
 * scopes a user may have (basic auth; anonymous users may pull only), and every `/v2/` request
 * needs a token whose scope covers the repository and the action.
 */
export async function startTokenRegistry(users: Record<string, string>): Promise<TokenRegistry> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-tokreg-'));
  const storage = new FsHubStorage(path.join(dir, 'hub'));
  await storage.init();
  const hub = createHubServer(storage);
  const hubPort = await listen(hub);
  const tokens = new Map<string, Set<string>>();
  const log: TokenRegistry['log'] = [];
  const tokenRequests: TokenRegistry['tokenRequests'] = [];
  let realm = '';
  const front = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://front');
    const authz = String(req.headers.authorization ?? '');
    log.push({
      method: req.method ?? '',
      path: url.pathname,
      auth: authz.split(' ')[0] || 'none',
      contentRange: req.headers['content-range'] as string | undefined,
    });
    if (url.pathname === '/token') {
      let account = '';
      if (authz.startsWith('Basic ')) {
        const [u, ...rest] = Buffer.from(authz.slice(6), 'base64').toString().split(':');
        if (users[u] === undefined || users[u] !== rest.join(':')) {
          res.writeHead(401, { 'Content-Type': 'application/json' });
          res.end(JSON.stringify({ details: 'incorrect username or password' }));
          return;
        }
        account = u;
      }
      const scopes = url.searchParams.getAll('scope');
      tokenRequests.push({ account, scopes });
      const granted = new Set<string>();
      for (const s of scopes) {
        const m = /^repository:([^:]+):(.+)$/.exec(s);
        if (!m) continue;
        for (const action of m[2].split(','))
          if (action === 'pull' || (action === 'push' && account)) granted.add(`${m[1]}:${action}`);
      }
      const token = randomBytes(16).toString('hex');
      tokens.set(token, granted);
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ token, access_token: token, expires_in: 300 }));
      return;
    }
    const m = /^\/v2\/(.+?)\/(blobs|manifests|tags)\//.exec(url.pathname);
    const repo = m?.[1];
    const action = req.method === 'GET' || req.method === 'HEAD' ? 'pull' : 'push';
    const granted = authz.startsWith('Bearer ') ? tokens.get(authz.slice(7)) : undefined;
    const mountFrom = url.searchParams.get('from');
    const allowed =
      granted &&
      (!repo || (granted.has(`${repo}:${action}`) && (!mountFrom || granted.has(`${mountFrom}:pull`))));
    if (!allowed) {
      const scope = repo ? `,scope="repository:${repo}:${action === 'push' ? 'pull,push' : 'pull'}"` : '';
      res.writeHead(granted ? 403 : 401, {
        'Content-Type': 'application/json',
        'WWW-Authenticate': `Bearer realm="${realm}",service="berth-test"${scope}`,
      });
      res.end(
        JSON.stringify({
          errors: [
            granted
              ? { code: 'DENIED', message: 'requested access to the resource is denied' }
              : { code: 'UNAUTHORIZED', message: 'authentication required' },
          ],
        }),
      );
      req.resume();
      return;
    }
    const headers = { ...req.headers };
    delete headers.authorization;
    const up = http.request(
      { host: '127.0.0.1', port: hubPort, method: req.method, path: req.url, headers },
      (ur) => {
        res.writeHead(ur.statusCode ?? 500, ur.headers);
        ur.pipe(res);
      },
    );
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  const port = await listen(front);
  realm = `http://127.0.0.1:${port}/token`;
  return {
    host: `127.0.0.1:${port}`,
    dir,
    log,
    tokenRequests,
    async stop() {
      front.closeAllConnections();
      hub.closeAllConnections();
      await new Promise((r) => front.close(r));
      await new Promise((r) => hub.close(r));
      await cleanupDir(dir);
    },
  };
}

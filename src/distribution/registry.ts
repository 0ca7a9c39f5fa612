/**
 * A registry client (OCI Distribution / Docker Registry v2): manifests, blobs, uploads
 * (monolithic, chunked, cross-repository mount) and authentication — basic auth and the token
 * flow (`WWW-Authenticate: Bearer realm,service,scope`), anonymous or with credentials.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import { PassThrough, type Readable } from 'node:stream';
import { type Digest, isDigest, sha256Digest } from '../common/digest.js';
import { BerthError, invalidArgument, notFound, unavailable } from '../common/errors.js';
import { log } from '../common/log.js';
import { type Credentials, hasCredentials } from './auth.js';

export const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

export interface Endpoint {
  /** e.g. http://127.0.0.1:5000 */
  base: string;
  /** Repository path on that registry, e.g. library/busybox */
  repo: string;
  /**
   * An insecure registry (Docker's `insecure-registries`): `base` is https, its certificate is not
   * verified, and when the first exchange fails below HTTP (refused, not TLS, ...) the client goes
   * on over plain http, as Docker does.
   */
  httpFallback?: boolean;
}

export interface ClientOptions {
  credentials?: Credentials;
  /** Actions asked for in token scopes on `repo` (default pull). */
  actions?: ('pull' | 'push')[];
  /** Other repositories to ask pull access to (cross-repository mounts). */
  extraPullRepos?: string[];
  userAgent?: string;
}

interface Response {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Readable;
}

const MAX_MANIFEST = 4 * 1024 * 1024;
/** Blobs up to this size go in one PUT; bigger ones in PATCH chunks of CHUNK_SIZE. */
export const MONOLITHIC_LIMIT = 32 * 1024 * 1024;
export const CHUNK_SIZE = 32 * 1024 * 1024;

export type UploadResult = 'pushed' | 'exists' | { mountedFrom: string };

export class RegistryClient {
  private authorization: string | undefined;
  private pinged = false;
  private readonly opts: ClientOptions;
  /** The registry's base URL; becomes http:// when an insecure registry does not speak TLS. */
  private base: string;
  /** Whether the registry has answered over `base` (no fallback after that). */
  private schemeKnown: boolean;

  constructor(
    readonly ep: Endpoint,
    opts: ClientOptions = {},
  ) {
    this.opts = opts;
    this.base = ep.base;
    this.schemeKnown = !ep.httpFallback;
  }

  private async request(
    method: string,
    pathOrUrl: string,
    headers: Record<string, string> = {},
    body?: Buffer | Readable,
    withAuth = true,
  ): Promise<Response> {
    const url = new URL(pathOrUrl, this.base);
    const toRegistry = url.host === new URL(this.base).host;
    try {
      const res = await this.send(url, method, headers, body, withAuth);
      if (toRegistry) this.schemeKnown = true;
      return res;
    } catch (err) {
      // Only a request that can be sent again (no streamed body) falls back, and only the first.
      if (this.schemeKnown || !toRegistry || url.protocol !== 'https:' || (body && !Buffer.isBuffer(body)))
        throw err;
      this.schemeKnown = true;
      this.base = this.base.replace(/^https:/, 'http:');
      log.debug('insecure registry: https failed, using http', { host: url.host, error: String(err) });
      url.protocol = 'http:';
      return this.send(url, method, headers, body, withAuth);
    }
  }

  private send(
    url: URL,
    method: string,
    headers: Record<string, string>,
    body: Buffer | Readable | undefined,
    withAuth: boolean,
  ): Promise<Response> {
    const mod = url.protocol === 'https:' ? https : http;
    // Credentials go only to the registry itself, never to a host a redirect points at.
    const sameHost = url.host === new URL(this.base).host;
    return new Promise((resolve, reject) => {
      const req = mod.request(
        url,
        {
          method,
          // An insecure registry's certificate is not checked (Docker's InsecureSkipVerify).
          ...(this.ep.httpFallback && url.protocol === 'https:' && sameHost
            ? { rejectUnauthorized: false }
            : {}),
          headers: {
            'User-Agent': this.opts.userAgent ?? 'berth/0.1.0',
            ...(withAuth && sameHost && this.authorization ? { Authorization: this.authorization } : {}),
            ...headers,
          },
          timeout: 30_000,
        },
        (res) => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res }),
      );
      req.on('timeout', () => req.destroy(new Error(`timeout talking to ${url.host}`)));
      req.on('error', (err) => reject(unavailable(`registry ${url.host}: ${err.message}`)));
      if (body && !Buffer.isBuffer(body)) {
        body.on('error', (e) => req.destroy(e));
        body.pipe(req);
      } else req.end(body);
    });
  }

  /** A request that authenticates and retries once when challenged (bodies must be replayable). */
  private async call(
    method: string,
    p: string,
    headers: Record<string, string> = {},
    body?: Buffer,
  ): Promise<Response> {
    let res = await this.request(method, p, headers, body);
    if (res.status === 401 && (await this.authenticate(res)))
      res = await this.request(method, p, headers, body);
    return res;
  }

  /**
   * Authenticates before a request whose body cannot be replayed (a streamed upload): pings
   * `/v2/` once and answers its challenge.
   */
  async ensureAuth(): Promise<void> {
    if (this.pinged) return;
    this.pinged = true;
    const res = await this.request('GET', '/v2/');
    if (res.status === 401) {
      if (!(await this.authenticate(res))) throw authError(res.status, '', this.ep.repo);
    } else res.body.resume();
  }

  /** Checks the credentials (for `login`): the registry's `/v2/` must accept them. */
  async login(): Promise<void> {
    const res = await this.request('GET', '/v2/', {}, undefined, false);
    if (res.status === 401) {
      if (!(await this.authenticate(res, true)))
        throw new BerthError('Unauthorized', 'unauthorized: incorrect username or password');
      const again = await this.request('GET', '/v2/');
      const text = await readText(again.body, 64 * 1024).catch(() => '');
      if (again.status === 401 || again.status === 403)
        throw new BerthError(
          'Unauthorized',
          `unauthorized: ${registryMessage(text) || 'incorrect username or password'}`,
        );
      return;
    }
    res.body.resume();
    if (res.status !== 200) throw unavailable(`registry answered ${res.status} on /v2/`);
  }

  private scopes(): string[] {
    const actions = this.opts.actions ?? ['pull'];
    return [
      `repository:${this.ep.repo}:${actions.join(',')}`,
      ...(this.opts.extraPullRepos ?? []).map((r) => `repository:${r}:pull`),
    ];
  }

  /** Answers a 401 challenge: basic auth, or a bearer token from the realm. */
  private async authenticate(res: Response, forLogin = false): Promise<boolean> {
    res.body.resume();
    const challenge = String(res.headers['www-authenticate'] ?? '');
    const creds = this.opts.credentials;
    const basic =
      creds && hasCredentials(creds) && creds.username
        ? `Basic ${Buffer.from(`${creds.username}:${creds.password ?? ''}`).toString('base64')}`
        : undefined;
    if (/^Basic\b/i.test(challenge)) {
      if (!basic || this.authorization === basic) return false;
      this.authorization = basic;
      return true;
    }
    if (!/^Bearer\b/i.test(challenge)) return false;
    const params = parseChallenge(challenge.slice(6));
    if (!params.realm) return false;
    let realm: URL;
    try {
      realm = new URL(params.realm);
    } catch {
      throw unavailable(`registry sent a bad token realm: ${params.realm}`);
    }
    if (params.service) realm.searchParams.set('service', params.service);
    if (!forLogin) for (const s of this.scopes()) realm.searchParams.append('scope', s);
    if (creds?.username) realm.searchParams.set('account', creds.username);
    const headers: Record<string, string> = basic ? { Authorization: basic } : {};
    if (creds?.registrytoken) {
      this.authorization = `Bearer ${creds.registrytoken}`;
      return true;
    }
    const t = await this.request('GET', realm.toString(), headers, undefined, false);
    const text = await readText(t.body, 64 * 1024).catch(() => '');
    if (t.status === 401 || t.status === 403) {
      if (forLogin) return false;
      throw authError(t.status, text, this.ep.repo);
    }
    if (t.status !== 200) throw unavailable(`token server answered ${t.status}: ${text.slice(0, 200)}`);
    let token: string | undefined;
    try {
      const j = JSON.parse(text) as { token?: string; access_token?: string };
      token = j.token || j.access_token;
    } catch {
      // handled below
    }
    if (!token) throw unavailable('token server sent no token');
    if (this.authorization === `Bearer ${token}`) return false;
    this.authorization = `Bearer ${token}`;
    return true;
  }

  /** Fetches a manifest (index or image manifest) by tag or digest, verifying a digest reference. */
  async getManifest(reference: string): Promise<{ body: Buffer; mediaType: string; digest: Digest }> {
    const res = await this.call('GET', `/v2/${this.ep.repo}/manifests/${reference}`, {
      Accept: MANIFEST_ACCEPT,
    });
    if (res.status === 404 || res.status === 401 || res.status === 403) {
      const text = await readText(res.body, 64 * 1024).catch(() => '');
      throw errorFor(res.status, text, this.ep.repo);
    }
    if (res.status !== 200) {
      res.body.resume();
      throw unavailable(`registry answered ${res.status} for manifest ${reference}`);
    }
    const body = await readBuffer(res.body, MAX_MANIFEST, 'manifest');
    const digest = sha256Digest(body);
    if (isDigest(reference) && digest !== reference)
      throw invalidArgument(
        `manifest verification failed for digest ${reference}: the registry sent ${digest}`,
      );
    const len = res.headers['content-length'];
    if (len !== undefined && Number(len) !== body.length)
      throw unavailable(`manifest ${reference}: the registry sent ${body.length} of ${len} bytes`);
    return { body, mediaType: String(res.headers['content-type'] ?? '').split(';')[0], digest };
  }

  /** Resolves a tag or digest with HEAD (for the digest only). */
  async headManifest(reference: string): Promise<{ digest?: Digest; size?: number } | undefined> {
    const res = await this.call('HEAD', `/v2/${this.ep.repo}/manifests/${reference}`, {
      Accept: MANIFEST_ACCEPT,
    });
    res.body.resume();
    if (res.status === 404) return undefined;
    if (res.status !== 200) throw unavailable(`registry answered ${res.status} for manifest ${reference}`);
    const d = String(res.headers['docker-content-digest'] ?? '');
    return { digest: isDigest(d) ? d : undefined, size: Number(res.headers['content-length'] ?? NaN) };
  }

  /** Lists the repository's tags, following `Link` pagination. */
  async listTags(): Promise<string[]> {
    const tags: string[] = [];
    let next: string | undefined = `/v2/${this.ep.repo}/tags/list`;
    for (let pages = 0; next && pages < 1000; pages++) {
      const res = await this.call('GET', next);
      const text = await readText(res.body, MAX_MANIFEST);
      if (res.status !== 200) throw errorFor(res.status, text, this.ep.repo);
      const j = JSON.parse(text) as { tags?: string[] | null };
      tags.push(...(j.tags ?? []));
      const link = /<([^>]+)>;\s*rel="?next"?/.exec(String(res.headers.link ?? ''));
      next = link?.[1];
    }
    return tags;
  }

  /** Streams a blob from `offset` (for resuming). */
  async getBlob(digest: Digest, offset = 0): Promise<{ stream: Readable; size: number | undefined }> {
    const headers: Record<string, string> = offset ? { Range: `bytes=${offset}-` } : {};
    let res = await this.call('GET', `/v2/${this.ep.repo}/blobs/${digest}`, headers);
    for (let hops = 0; hops < 5 && [301, 302, 303, 307, 308].includes(res.status); hops++) {
      res.body.resume();
      res = await this.request('GET', String(res.headers.location), headers);
    }
    if (res.status === 404) {
      res.body.resume();
      throw notFound(`blob ${digest} not found in ${this.ep.repo}`);
    }
    if (res.status === 416 && offset) {
      res.body.resume();
      throw invalidArgument(
        `blob ${digest} is shorter than its descriptor says (nothing past byte ${offset})`,
      );
    }
    if (res.status !== 200 && res.status !== 206) {
      res.body.resume();
      throw unavailable(`registry answered ${res.status} for blob ${digest}`);
    }
    if (offset && res.status !== 206) {
      res.body.resume();
      throw unavailable(`registry does not support resuming blob ${digest} (no Range support)`);
    }
    const len = res.headers['content-length'];
    return { stream: res.body, size: len === undefined ? undefined : Number(len) };
  }

  /**
   * A blob as one stream that survives dropped connections: when the body ends early or fails,
   * the rest is fetched with `Range` (up to `retries` times). Bytes are checked by the consumer.
   */
  resumableBlob(digest: Digest, size: number, retries = 3): Readable {
    // Room for a few socket reads while the consumer writes to disk.
    const out = new PassThrough({ highWaterMark: 1024 * 1024 });
    let received = 0;
    const attempt = async (): Promise<void> => {
      const { stream } = await this.getBlob(digest, received);
      out.once('close', () => stream.destroy());
      await new Promise<void>((resolve, reject) => {
        let settled = false;
        const fail = (e: Error) => {
          if (settled) return;
          settled = true;
          stream.unpipe(out);
          stream.destroy();
          reject(e);
        };
        stream.on('data', (c: Buffer) => {
          received += c.length;
          if (received > size)
            fail(invalidArgument(`blob ${digest}: the registry sent more than ${size} bytes`));
          else if (!out.write(c)) {
            stream.pause();
            out.once('drain', () => stream.resume());
          }
        });
        stream.on('error', (e) => fail(new RetryableError(e.message)));
        stream.on('aborted', () => fail(new RetryableError('connection dropped')));
        stream.on('end', () => {
          if (settled) return;
          settled = true;
          if (received < size)
            reject(new RetryableError(`connection closed after ${received} of ${size} bytes`));
          else resolve();
        });
      });
      out.end();
    };
    const run = async () => {
      for (let left = retries; ; left--) {
        try {
          await attempt();
          return;
        } catch (err) {
          const retryable = err instanceof RetryableError || isKind5xx(err);
          if (!retryable || left <= 0 || out.destroyed) {
            out.destroy(
              err instanceof RetryableError
                ? unavailable(`downloading blob ${digest}: ${err.message}`)
                : (err as Error),
            );
            return;
          }
          await new Promise((r) => setTimeout(r, 200));
        }
      }
    };
    void run();
    return out;
  }

  async hasBlob(digest: Digest): Promise<boolean> {
    const res = await this.call('HEAD', `/v2/${this.ep.repo}/blobs/${digest}`);
    res.body.resume();
    if (res.status === 401 || res.status === 403) throw authError(res.status, '', this.ep.repo);
    return res.status === 200;
  }

  /**
   * Uploads a blob unless it is there: a cross-repository mount when `mountFrom` names a repository
   * on this registry holding it, else one PUT (small) or PATCH chunks then PUT (big).
   */
  async uploadBlob(
    digest: Digest,
    size: number,
    open: (start: number, end: number) => Readable,
    opts: { mountFrom?: string[]; onBytes?: (n: number) => void } = {},
  ): Promise<UploadResult> {
    await this.ensureAuth();
    for (const from of opts.mountFrom ?? []) {
      const q = new URLSearchParams({ mount: digest, from });
      const res = await this.call('POST', `/v2/${this.ep.repo}/blobs/uploads/?${q}`, {
        'Content-Length': '0',
      });
      res.body.resume();
      if (res.status === 201) return { mountedFrom: from };
      if (res.status === 202 && res.headers.location) {
        // The registry opened an upload session instead; cancel it and try the next source.
        const del = await this.request('DELETE', String(res.headers.location)).catch(() => undefined);
        del?.body.resume();
      }
    }
    const start = await this.call('POST', `/v2/${this.ep.repo}/blobs/uploads/`, { 'Content-Length': '0' });
    const startText = await readText(start.body, 64 * 1024).catch(() => '');
    if (start.status === 401 || start.status === 403) throw authError(start.status, startText, this.ep.repo);
    if (start.status !== 202 || !start.headers.location)
      throw unavailable(`registry refused an upload (${start.status}): ${registryMessage(startText)}`);
    let location = new URL(String(start.headers.location), this.base);
    const counted = (s: Readable, base: number) => {
      let n = base;
      s.on('data', (c: Buffer) => opts.onBytes?.((n += c.length)));
      return s;
    };
    if (size <= MONOLITHIC_LIMIT) {
      location.searchParams.set('digest', digest);
      const put = await this.request(
        'PUT',
        location.toString(),
        { 'Content-Type': 'application/octet-stream', 'Content-Length': String(size) },
        size ? counted(open(0, size), 0) : Buffer.alloc(0),
      );
      const text = await readText(put.body, 64 * 1024).catch(() => '');
      if (put.status !== 201) throw uploadError(put.status, text, digest);
      return 'pushed';
    }
    for (let offset = 0; offset < size; offset += CHUNK_SIZE) {
      const end = Math.min(size, offset + CHUNK_SIZE);
      const patch = await this.request(
        'PATCH',
        location.toString(),
        {
          'Content-Type': 'application/octet-stream',
          'Content-Length': String(end - offset),
          'Content-Range': `${offset}-${end - 1}`,
        },
        counted(open(offset, end), offset),
      );
      const text = await readText(patch.body, 64 * 1024).catch(() => '');
      if (patch.status !== 202 || !patch.headers.location) throw uploadError(patch.status, text, digest);
      location = new URL(String(patch.headers.location), this.base);
    }
    location.searchParams.set('digest', digest);
    const put = await this.request('PUT', location.toString(), { 'Content-Length': '0' }, Buffer.alloc(0));
    const text = await readText(put.body, 64 * 1024).catch(() => '');
    if (put.status !== 201) throw uploadError(put.status, text, digest);
    return 'pushed';
  }

  /** Monolithic upload of bytes in memory (seeding). */
  async putBlob(digest: Digest, data: Buffer): Promise<void> {
    const { Readable } = await import('node:stream');
    await this.uploadBlob(digest, data.length, (s, e) => Readable.from([data.subarray(s, e)]));
  }

  async putManifest(reference: string, body: Buffer, mediaType: string): Promise<Digest> {
    const res = await this.call(
      'PUT',
      `/v2/${this.ep.repo}/manifests/${reference}`,
      { 'Content-Type': mediaType, 'Content-Length': String(body.length) },
      body,
    );
    const text = await readText(res.body, 64 * 1024).catch(() => '');
    if (res.status === 401 || res.status === 403) throw authError(res.status, text, this.ep.repo);
    if (res.status !== 201)
      throw unavailable(
        `manifest upload failed (${res.status}): ${registryMessage(text) || text.slice(0, 200)}`,
      );
    return sha256Digest(body);
  }
}

class RetryableError extends Error {}

function isKind5xx(err: unknown): boolean {
  return err instanceof BerthError && err.kind === 'Unavailable';
}

function parseChallenge(s: string): Record<string, string> {
  const params: Record<string, string> = {};
  for (const m of s.matchAll(/(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/g))
    params[m[1].toLowerCase()] = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3];
  return params;
}

/** The first error's message of a registry's `{"errors":[…]}` answer. */
export function registryMessage(text: string): string {
  try {
    const e = (JSON.parse(text) as { errors?: { code: string; message: string }[] }).errors?.[0];
    return e ? [e.code && e.code.toLowerCase().replace(/_/g, ' '), e.message].filter(Boolean).join(': ') : '';
  } catch {
    return '';
  }
}

function errorCode(text: string): string {
  try {
    return (JSON.parse(text) as { errors?: { code: string }[] }).errors?.[0]?.code ?? '';
  } catch {
    return '';
  }
}

function authError(status: number, text: string, repo: string): BerthError {
  const msg = registryMessage(text);
  return new BerthError(
    status === 401 ? 'Unauthorized' : 'Forbidden',
    msg
      ? `${status === 401 ? 'unauthorized' : 'denied'}: ${msg.replace(/^(unauthorized|denied): /, '')}`
      : `${status === 401 ? 'unauthorized: authentication required' : 'denied: requested access to the resource is denied'} (${repo})`,
  );
}

function uploadError(status: number, text: string, digest: Digest): BerthError {
  if (status === 401 || status === 403) return authError(status, text, '');
  return unavailable(
    `blob upload of ${digest} failed (${status}): ${registryMessage(text) || text.slice(0, 200)}`,
  );
}

function errorFor(status: number, text: string, repo: string): BerthError {
  const code = errorCode(text);
  let message = '';
  try {
    message = (JSON.parse(text) as { errors?: { message: string }[] }).errors?.[0]?.message ?? '';
  } catch {
    // not JSON
  }
  if (status === 404 && (code === 'MANIFEST_UNKNOWN' || code === ''))
    return notFound(`manifest unknown: ${message || 'manifest unknown'}`);
  if (status === 404 && code === 'NAME_UNKNOWN') return notFound(`repository does not exist: ${message}`);
  if (status === 404) return notFound(`${code.toLowerCase().replace(/_/g, ' ')}: ${message}`);
  return new BerthError(
    status === 401 ? 'Unauthorized' : 'Forbidden',
    `pull access denied for ${repo}, repository does not exist or may require 'docker login': ${
      code === 'UNAUTHORIZED' || code === 'DENIED' || !code ? message || 'denied' : `${code}: ${message}`
    }`,
  );
}

async function readBuffer(s: Readable, limit: number, what = 'registry answer'): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of s) {
    n += (c as Buffer).length;
    if (n > limit) {
      s.destroy();
      throw invalidArgument(`${what} too large (over ${limit} bytes)`);
    }
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

async function readText(s: Readable, limit: number): Promise<string> {
  return (await readBuffer(s, limit)).toString('utf8');
}

/**
 * A registry client (OCI Distribution / Docker Registry v2): manifests, blobs, uploads, and the
 * anonymous token flow (`WWW-Authenticate: Bearer realm,service,scope`).
 */
import * as http from 'node:http';
import * as https from 'node:https';
import type { Readable } from 'node:stream';
import { type Digest, isDigest, sha256Digest } from '../common/digest.js';
import { BerthError, invalidArgument, notFound, unavailable } from '../common/errors.js';

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
}

interface Response {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Readable;
}

const MAX_MANIFEST = 4 * 1024 * 1024;

export class RegistryClient {
  private token: string | undefined;

  constructor(
    readonly ep: Endpoint,
    private readonly userAgent = 'berth/0.1.0',
  ) {}

  private request(
    method: string,
    pathOrUrl: string,
    headers: Record<string, string> = {},
    body?: Buffer | Readable,
  ): Promise<Response> {
    const url = new URL(pathOrUrl, this.ep.base);
    const mod = url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = mod.request(
        url,
        {
          method,
          headers: {
            'User-Agent': this.userAgent,
            ...(this.token ? { Authorization: `Bearer ${this.token}` } : {}),
            ...headers,
          },
          timeout: 30_000,
        },
        (res) => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res }),
      );
      req.on('timeout', () => req.destroy(new Error(`timeout talking to ${url.host}`)));
      req.on('error', (err) => reject(unavailable(`registry ${url.host}: ${err.message}`)));
      if (body && !Buffer.isBuffer(body)) body.pipe(req);
      else req.end(body);
    });
  }

  /** A request that retries once after fetching a bearer token when challenged. */
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

  private async authenticate(res: Response): Promise<boolean> {
    res.body.resume();
    const challenge = String(res.headers['www-authenticate'] ?? '');
    if (!/^Bearer /i.test(challenge)) return false;
    const params: Record<string, string> = {};
    for (const m of challenge.slice(7).matchAll(/(\w+)="([^"]*)"/g)) params[m[1]] = m[2];
    if (!params.realm) return false;
    const u = new URL(params.realm);
    if (params.service) u.searchParams.set('service', params.service);
    u.searchParams.set('scope', params.scope ?? `repository:${this.ep.repo}:pull`);
    const t = await this.request('GET', u.toString());
    const text = await readText(t.body, 64 * 1024);
    if (t.status !== 200) return false;
    const j = JSON.parse(text) as { token?: string; access_token?: string };
    this.token = j.token ?? j.access_token;
    return !!this.token;
  }

  /** Fetches a manifest (index or image manifest) by tag or digest, verifying a digest reference. */
  async getManifest(reference: string): Promise<{ body: Buffer; mediaType: string; digest: Digest }> {
    const res = await this.call('GET', `/v2/${this.ep.repo}/manifests/${reference}`, {
      Accept: MANIFEST_ACCEPT,
    });
    if (res.status === 404 || res.status === 401 || res.status === 403) {
      const text = await readText(res.body, 64 * 1024).catch(() => '');
      throw errorFor(res.status, text, reference);
    }
    if (res.status !== 200) {
      res.body.resume();
      throw unavailable(`registry answered ${res.status} for manifest ${reference}`);
    }
    const body = await readBuffer(res.body, MAX_MANIFEST);
    const digest = sha256Digest(body);
    if (isDigest(reference) && digest !== reference)
      throw invalidArgument(
        `manifest verification failed for digest ${reference}: the registry sent ${digest}`,
      );
    return { body, mediaType: String(res.headers['content-type'] ?? '').split(';')[0], digest };
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
    if (res.status !== 200 && res.status !== 206) {
      res.body.resume();
      throw unavailable(`registry answered ${res.status} for blob ${digest}`);
    }
    if (offset && res.status !== 206)
      throw unavailable('registry does not support resuming (no Range support)');
    const len = res.headers['content-length'];
    return { stream: res.body, size: len === undefined ? undefined : Number(len) };
  }

  async hasBlob(digest: Digest): Promise<boolean> {
    const res = await this.call('HEAD', `/v2/${this.ep.repo}/blobs/${digest}`);
    res.body.resume();
    return res.status === 200;
  }

  /** Monolithic upload: POST for a session, then PUT with the digest. */
  async putBlob(digest: Digest, data: Buffer | (() => Readable), size: number): Promise<void> {
    const start = await this.call('POST', `/v2/${this.ep.repo}/blobs/uploads/`, { 'Content-Length': '0' });
    start.body.resume();
    if (start.status === 201) return;
    if (start.status !== 202 || !start.headers.location)
      throw unavailable(`registry refused an upload (${start.status})`);
    const loc = new URL(String(start.headers.location), this.ep.base);
    loc.searchParams.set('digest', digest);
    const body = Buffer.isBuffer(data) ? data : data();
    const put = await this.request(
      'PUT',
      loc.toString(),
      { 'Content-Type': 'application/octet-stream', 'Content-Length': String(size) },
      body,
    );
    const text = await readText(put.body, 64 * 1024).catch(() => '');
    if (put.status !== 201) throw unavailable(`blob upload failed (${put.status}): ${text}`);
  }

  async putManifest(reference: string, body: Buffer, mediaType: string): Promise<Digest> {
    const res = await this.call(
      'PUT',
      `/v2/${this.ep.repo}/manifests/${reference}`,
      { 'Content-Type': mediaType, 'Content-Length': String(body.length) },
      body,
    );
    const text = await readText(res.body, 64 * 1024).catch(() => '');
    if (res.status !== 201) throw unavailable(`manifest upload failed (${res.status}): ${text}`);
    return sha256Digest(body);
  }
}

function errorFor(status: number, text: string, reference: string): BerthError {
  let code = '';
  let message = '';
  try {
    const e = (JSON.parse(text) as { errors?: { code: string; message: string }[] }).errors?.[0];
    code = e?.code ?? '';
    message = e?.message ?? '';
  } catch {
    // not JSON
  }
  if (status === 404 && (code === 'MANIFEST_UNKNOWN' || code === ''))
    return notFound(`manifest unknown: ${message || 'manifest unknown'}`);
  if (status === 404 && code === 'NAME_UNKNOWN') return notFound(`repository does not exist: ${message}`);
  return new BerthError(
    status === 401 ? 'Unauthorized' : 'Forbidden',
    `pull access denied for ${reference}, repository does not exist or may require 'docker login': ${message || code}`,
  );
}

async function readBuffer(s: Readable, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of s) {
    n += (c as Buffer).length;
    if (n > limit) throw invalidArgument('registry answer too large');
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

async function readText(s: Readable, limit: number): Promise<string> {
  return (await readBuffer(s, limit)).toString('utf8');
}

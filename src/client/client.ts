/**
 * The typed Engine API client. The berth CLI and compose talk to daemons only through this, so
 * they work against berthd and against a real Docker Engine alike.
 */
import * as http from 'node:http';
import type { Readable } from 'node:stream';
import {
  type Endpoint,
  makeAgent,
  parseEndpoint,
  type RawResponse,
  requestModule,
  requestTarget,
} from './transport.js';
import type {
  HistoryItem,
  ImageInspect,
  ImageSummary,
  PruneReport,
  RemoveItem,
  SystemInfo,
  VersionInfo,
} from './types.js';

export const CLIENT_MAX_API = '1.41';

/** An error answered by the daemon: HTTP status and Docker's `message`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** The daemon could not be reached at all. */
export class ConnectError extends Error {
  constructor(
    readonly host: string,
    readonly code: string | undefined,
    message: string,
  ) {
    super(message);
    this.name = 'ConnectError';
  }
}

export interface RequestOptions {
  method: string;
  path: string;
  query?: Record<string, string | number | boolean | string[] | undefined>;
  body?: unknown;
  /** Raw request body stream, sent chunked. */
  stream?: Readable;
  headers?: Record<string, string>;
}

export type JsonMessage = Record<string, unknown>;

export class Client {
  readonly endpoint: Endpoint;
  private readonly agent: http.Agent;
  private negotiated: string | undefined;

  constructor(host: string) {
    this.endpoint = parseEndpoint(host);
    this.agent = makeAgent(this.endpoint);
  }

  close(): void {
    this.agent.destroy();
  }

  /** Negotiates the API version once, like Docker's client: min(server's, ours). */
  async apiVersion(): Promise<string> {
    if (this.negotiated) return this.negotiated;
    const res = await this.raw({ method: 'HEAD', path: '/_ping' }, false);
    res.stream.resume();
    const server = String(res.headers['api-version'] ?? '1.24');
    this.negotiated = compare(server, CLIENT_MAX_API) < 0 ? server : CLIENT_MAX_API;
    return this.negotiated;
  }

  async raw(opts: RequestOptions, versioned = true): Promise<RawResponse> {
    const prefix = versioned ? `/v${await this.apiVersion()}` : '';
    const qs = encodeQuery(opts.query);
    const headers: Record<string, string> = { 'User-Agent': 'Berth-Client/0.1.0', ...opts.headers };
    let payload: Buffer | undefined;
    if (opts.body !== undefined) {
      payload = Buffer.from(JSON.stringify(opts.body));
      headers['Content-Type'] = 'application/json';
      headers['Content-Length'] = String(payload.length);
    } else if (!opts.stream && opts.method !== 'GET' && opts.method !== 'HEAD' && opts.method !== 'DELETE') {
      headers['Content-Length'] = '0';
    }
    const ep = this.endpoint;
    const reqOpts: http.RequestOptions = {
      method: opts.method,
      path: prefix + opts.path + qs,
      headers,
      agent: this.agent,
      ...requestTarget(ep),
    };
    return new Promise<RawResponse>((resolve, reject) => {
      const req = requestModule(ep).request(reqOpts, (res) =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, stream: res }),
      );
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (['ENOENT', 'ECONNREFUSED', 'EACCES', 'ENOTFOUND', 'EHOSTUNREACH'].includes(err.code ?? ''))
          reject(
            new ConnectError(
              ep.host,
              err.code,
              `Cannot connect to the Berth daemon at ${ep.host}. Is the daemon running?`,
            ),
          );
        else reject(err);
      });
      if (opts.stream) {
        opts.stream.on('error', (e) => req.destroy(e));
        opts.stream.pipe(req);
      } else req.end(payload);
    });
  }

  /** A request whose answer is JSON (or empty); non-2xx becomes ApiError. */
  async json<T>(opts: RequestOptions): Promise<T> {
    const res = await this.raw(opts);
    const body = await readAll(res.stream);
    if (res.status >= 400) throw toApiError(res.status, body);
    if (body.length === 0) return undefined as T;
    return JSON.parse(body.toString('utf8')) as T;
  }

  /** A request answered with a stream; non-2xx becomes ApiError. */
  async stream(opts: RequestOptions): Promise<RawResponse> {
    const res = await this.raw(opts);
    if (res.status >= 400) throw toApiError(res.status, await readAll(res.stream));
    return res;
  }

  /** Reads a JSON message stream (progress, events), calling `onMessage` for each. */
  async jsonStream(opts: RequestOptions, onMessage: (msg: JsonMessage) => void): Promise<void> {
    const res = await this.stream(opts);
    let buf = '';
    for await (const chunk of res.stream) {
      buf += (chunk as Buffer).toString('utf8');
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line) onMessage(JSON.parse(line) as JsonMessage);
      }
    }
    if (buf.trim()) onMessage(JSON.parse(buf) as JsonMessage);
  }

  // --- system ---
  async ping(): Promise<boolean> {
    const res = await this.raw({ method: 'GET', path: '/_ping' }, false);
    await readAll(res.stream);
    return res.status === 200;
  }
  version(): Promise<VersionInfo> {
    return this.json({ method: 'GET', path: '/version' });
  }
  info(): Promise<SystemInfo> {
    return this.json({ method: 'GET', path: '/info' });
  }

  // --- containers ---
  createContainer(
    body: Record<string, unknown>,
    name?: string,
    platform?: string,
  ): Promise<{ Id: string; Warnings: string[] | null }> {
    return this.json({ method: 'POST', path: '/containers/create', query: { name, platform }, body });
  }
  async startContainer(id: string): Promise<void> {
    await this.json({ method: 'POST', path: `/containers/${id}/start` });
  }
  async stopContainer(id: string, t?: number): Promise<void> {
    await this.json({ method: 'POST', path: `/containers/${id}/stop`, query: { t } });
  }
  async restartContainer(id: string, t?: number): Promise<void> {
    await this.json({ method: 'POST', path: `/containers/${id}/restart`, query: { t } });
  }
  async killContainer(id: string, signal?: string): Promise<void> {
    await this.json({ method: 'POST', path: `/containers/${id}/kill`, query: { signal } });
  }
  async pauseContainer(id: string): Promise<void> {
    await this.json({ method: 'POST', path: `/containers/${id}/pause` });
  }
  async updateContainer(id: string, body: Record<string, unknown>): Promise<{ Warnings: string[] | null }> {
    return this.json({ method: 'POST', path: `/containers/${id}/update`, body });
  }
  async unpauseContainer(id: string): Promise<void> {
    await this.json({ method: 'POST', path: `/containers/${id}/unpause` });
  }
  async renameContainer(id: string, name: string): Promise<void> {
    await this.json({ method: 'POST', path: `/containers/${id}/rename`, query: { name } });
  }
  async removeContainer(id: string, opts: { force?: boolean; volumes?: boolean } = {}): Promise<void> {
    await this.json({
      method: 'DELETE',
      path: `/containers/${id}`,
      query: { force: opts.force ? 1 : undefined, v: opts.volumes ? 1 : undefined },
    });
  }
  async resizeContainer(id: string, h: number, w: number): Promise<void> {
    await this.json({ method: 'POST', path: `/containers/${id}/resize`, query: { h, w } });
  }
  listContainers(
    opts: { all?: boolean; limit?: number; size?: boolean; filters?: Record<string, string[]> } = {},
  ): Promise<ContainerSummary[]> {
    return this.json({
      method: 'GET',
      path: '/containers/json',
      query: {
        all: opts.all ? 1 : undefined,
        limit: opts.limit,
        size: opts.size ? 1 : undefined,
        filters: filtersParam(opts.filters),
      },
    });
  }
  inspectContainer(id: string): Promise<ContainerInspect> {
    return this.json({ method: 'GET', path: `/containers/${id}/json` });
  }
  pruneContainers(
    filters?: Record<string, string[]>,
  ): Promise<{ ContainersDeleted: string[] | null; SpaceReclaimed: number }> {
    return this.json({
      method: 'POST',
      path: '/containers/prune',
      query: { filters: filtersParam(filters) },
    });
  }
  /**
   * Starts waiting; resolves `ready` once the daemon acknowledged (headers), and `result` at the end.
   * docker run must not start the container before the wait is acknowledged.
   */
  async waitContainer(
    id: string,
    condition?: string,
  ): Promise<{ result: Promise<{ StatusCode: number; Error: { Message: string } | null }> }> {
    const res = await this.stream({ method: 'POST', path: `/containers/${id}/wait`, query: { condition } });
    const result = readAll(res.stream).then(
      (b) => JSON.parse(b.toString('utf8')) as { StatusCode: number; Error: { Message: string } | null },
    );
    // A caller that gives up waiting (a failed start) must not leave an unhandled rejection.
    result.catch(() => undefined);
    return { result };
  }
  logs(id: string, query: Record<string, string | number | boolean | undefined>): Promise<RawResponse> {
    return this.stream({ method: 'GET', path: `/containers/${id}/logs`, query });
  }
  async statPath(
    id: string,
    p: string,
  ): Promise<{ name: string; size: number; mode: number; linkTarget: string } | undefined> {
    const res = await this.raw({ method: 'HEAD', path: `/containers/${id}/archive`, query: { path: p } });
    res.stream.resume();
    if (res.status === 404) return undefined;
    if (res.status >= 400) throw new ApiError(res.status, `stat ${p}: status ${res.status}`);
    const h = res.headers['x-docker-container-path-stat'];
    return JSON.parse(Buffer.from(String(h), 'base64').toString()) as {
      name: string;
      size: number;
      mode: number;
      linkTarget: string;
    };
  }
  async getArchive(id: string, p: string): Promise<Readable> {
    return (await this.stream({ method: 'GET', path: `/containers/${id}/archive`, query: { path: p } }))
      .stream;
  }
  async putArchive(id: string, p: string, tarStream: Readable): Promise<void> {
    const res = await this.stream({
      method: 'PUT',
      path: `/containers/${id}/archive`,
      query: { path: p },
      stream: tarStream,
      headers: { 'Content-Type': 'application/x-tar' },
    });
    await readAll(res.stream);
  }
  async exportContainer(id: string): Promise<Readable> {
    return (await this.stream({ method: 'GET', path: `/containers/${id}/export` })).stream;
  }
  containerChanges(id: string): Promise<{ Path: string; Kind: number }[] | null> {
    return this.json({ method: 'GET', path: `/containers/${id}/changes` });
  }
  commitContainer(
    container: string,
    opts: {
      repo?: string;
      tag?: string;
      comment?: string;
      author?: string;
      changes?: string[];
      pause?: boolean;
    },
  ): Promise<{ Id: string }> {
    return this.json({
      method: 'POST',
      path: '/commit',
      query: {
        container,
        repo: opts.repo,
        tag: opts.tag,
        comment: opts.comment,
        author: opts.author,
        changes: opts.changes,
        pause: opts.pause === false ? 0 : 1,
      },
    });
  }
  topContainer(id: string, psArgs?: string): Promise<{ Titles: string[]; Processes: string[][] }> {
    return this.json({ method: 'GET', path: `/containers/${id}/top`, query: { ps_args: psArgs } });
  }
  statsOnce(id: string): Promise<Record<string, unknown>> {
    return this.json({ method: 'GET', path: `/containers/${id}/stats`, query: { stream: 0 } });
  }
  createExec(container: string, body: Record<string, unknown>): Promise<{ Id: string }> {
    return this.json({ method: 'POST', path: `/containers/${container}/exec`, body });
  }
  inspectExec(id: string): Promise<{ ExitCode: number; Running: boolean; Pid: number }> {
    return this.json({ method: 'GET', path: `/exec/${id}/json` });
  }
  async resizeExec(id: string, h: number, w: number): Promise<void> {
    await this.json({ method: 'POST', path: `/exec/${id}/resize`, query: { h, w } });
  }
  async startExecDetached(id: string, tty: boolean): Promise<void> {
    await this.json({ method: 'POST', path: `/exec/${id}/start`, body: { Detach: true, Tty: tty } });
  }

  /** A hijacked connection (`Upgrade: tcp`), as docker attach and docker run use. */
  async hijack(
    p: string,
    query: RequestOptions['query'],
    body?: unknown,
  ): Promise<import('node:net').Socket> {
    const prefix = `/v${await this.apiVersion()}`;
    const payload = body === undefined ? Buffer.alloc(0) : Buffer.from(JSON.stringify(body));
    const ep = this.endpoint;
    return new Promise((resolve, reject) => {
      const req = requestModule(ep).request({
        method: 'POST',
        path: prefix + p + encodeQuery(query),
        headers: {
          'User-Agent': 'Berth-Client/0.1.0',
          Connection: 'Upgrade',
          Upgrade: 'tcp',
          'Content-Type': body === undefined ? 'text/plain' : 'application/json',
          'Content-Length': String(payload.length),
        },
        ...requestTarget(ep),
      });
      req.on('upgrade', (_res, socket, head) => {
        if (head.length) socket.unshift(head);
        resolve(socket);
      });
      req.on('response', (res) => {
        readAll(res).then((b) => reject(toApiError(res.statusCode ?? 500, b)), reject);
      });
      req.on('error', (err: NodeJS.ErrnoException) =>
        reject(
          ['ENOENT', 'ECONNREFUSED'].includes(err.code ?? '')
            ? new ConnectError(
                ep.host,
                err.code,
                `Cannot connect to the Berth daemon at ${ep.host}. Is the daemon running?`,
              )
            : err,
        ),
      );
      req.end(payload);
    });
  }

  // --- events ---
  events(
    opts: { since?: string; until?: string; filters?: Record<string, string[]> },
    onEvent: (m: JsonMessage) => void,
  ): Promise<void> {
    return this.jsonStream(
      {
        method: 'GET',
        path: '/events',
        query: { since: opts.since, until: opts.until, filters: filtersParam(opts.filters) },
      },
      onEvent,
    );
  }

  // --- images ---
  listImages(
    opts: { all?: boolean; digests?: boolean; filters?: Record<string, string[]> } = {},
  ): Promise<ImageSummary[]> {
    return this.json({
      method: 'GET',
      path: '/images/json',
      query: {
        all: opts.all ? 1 : undefined,
        digests: opts.digests ? 1 : undefined,
        filters: filtersParam(opts.filters),
      },
    });
  }
  inspectImage(name: string): Promise<ImageInspect> {
    return this.json({ method: 'GET', path: `/images/${name}/json` });
  }
  imageHistory(name: string): Promise<HistoryItem[]> {
    return this.json({ method: 'GET', path: `/images/${name}/history` });
  }
  async tagImage(source: string, repo: string, tag?: string): Promise<void> {
    await this.json({ method: 'POST', path: `/images/${source}/tag`, query: { repo, tag } });
  }
  removeImage(name: string, opts: { force?: boolean; noPrune?: boolean } = {}): Promise<RemoveItem[]> {
    return this.json({
      method: 'DELETE',
      path: `/images/${name}`,
      query: { force: opts.force ? 1 : undefined, noprune: opts.noPrune ? 1 : undefined },
    });
  }
  pruneImages(filters?: Record<string, string[]>): Promise<PruneReport> {
    return this.json({ method: 'POST', path: '/images/prune', query: { filters: filtersParam(filters) } });
  }
  loadImages(input: Readable, quiet: boolean, onMessage: (m: JsonMessage) => void): Promise<void> {
    return this.jsonStream(
      {
        method: 'POST',
        path: '/images/load',
        query: { quiet: quiet ? 1 : 0 },
        stream: input,
        headers: { 'Content-Type': 'application/x-tar' },
      },
      onMessage,
    );
  }
  /** POST /build: the context (a tar, or a bare Dockerfile) streams as the body. */
  build(
    context: Readable,
    query: Record<string, string | number | boolean | string[] | undefined>,
    onMessage: (m: JsonMessage) => void,
  ): Promise<void> {
    return this.jsonStream(
      {
        method: 'POST',
        path: '/build',
        query,
        stream: context,
        headers: { 'Content-Type': 'application/x-tar', 'X-Registry-Config': 'e30=' },
      },
      onMessage,
    );
  }
  pruneBuildCache(
    query: { all?: boolean } = {},
  ): Promise<{ CachesDeleted: string[] | null; SpaceReclaimed: number }> {
    return this.json({ method: 'POST', path: '/build/prune', query: { all: query.all ? 1 : undefined } });
  }
  async saveImages(names: string[]): Promise<Readable> {
    const res = await this.stream({ method: 'GET', path: '/images/get', query: { names } });
    return res.stream;
  }
  pullImage(
    name: string,
    opts: { tag?: string; platform?: string; registryAuth?: string },
    onMessage: (m: JsonMessage) => void,
  ): Promise<void> {
    return this.jsonStream(
      {
        method: 'POST',
        path: '/images/create',
        query: { fromImage: name, tag: opts.tag, platform: opts.platform },
        headers: { 'X-Registry-Auth': opts.registryAuth ?? 'e30=' },
      },
      onMessage,
    );
  }
  /** Pushes `name` (`tag`, or every tag of the repository when empty). */
  pushImage(
    name: string,
    opts: { tag?: string; registryAuth?: string },
    onMessage: (m: JsonMessage) => void,
  ): Promise<void> {
    return this.jsonStream(
      {
        method: 'POST',
        path: `/images/${name}/push`,
        query: { tag: opts.tag },
        headers: { 'X-Registry-Auth': opts.registryAuth ?? 'e30=' },
      },
      onMessage,
    );
  }
  /** Checks credentials with the registry (`POST /auth`). */
  login(auth: { username: string; password: string; serveraddress: string }): Promise<{
    Status: string;
    IdentityToken?: string;
  }> {
    return this.json({ method: 'POST', path: '/auth', body: auth });
  }
  distributionInspect(
    name: string,
    registryAuth?: string,
  ): Promise<{ Descriptor: { mediaType: string; digest: string; size: number }; Platforms: unknown[] }> {
    return this.json({
      method: 'GET',
      path: `/distribution/${name}/json`,
      headers: { 'X-Registry-Auth': registryAuth ?? 'e30=' },
    });
  }
  importImage(
    input: Readable,
    opts: { repo?: string; tag?: string; message?: string; changes?: string[]; platform?: string },
    onMessage: (m: JsonMessage) => void,
  ): Promise<void> {
    return this.jsonStream(
      {
        method: 'POST',
        path: '/images/create',
        query: {
          fromSrc: '-',
          repo: opts.repo,
          tag: opts.tag,
          message: opts.message,
          changes: opts.changes,
          platform: opts.platform,
        },
        stream: input,
        headers: { 'Content-Type': 'application/x-tar' },
      },
      onMessage,
    );
  }
}

export interface ContainerSummary {
  Id: string;
  Names: string[];
  Image: string;
  ImageID: string;
  Command: string;
  Created: number;
  State: string;
  Status: string;
  Labels: Record<string, string> | null;
  Ports: { IP?: string; PrivatePort: number; PublicPort?: number; Type: string }[];
  SizeRw?: number;
  SizeRootFs?: number;
  [key: string]: unknown;
}

export interface ContainerInspect {
  Id: string;
  Name: string;
  State: {
    Status: string;
    Running: boolean;
    Paused: boolean;
    ExitCode: number;
    Error: string;
    StartedAt: string;
    FinishedAt: string;
    Pid: number;
  };
  Config: { Tty: boolean; OpenStdin: boolean; Image: string; [key: string]: unknown };
  HostConfig: Record<string, unknown>;
  [key: string]: unknown;
}

function compare(a: string, b: string): number {
  const [a1, a2] = a.split('.').map(Number);
  const [b1, b2] = b.split('.').map(Number);
  return a1 - b1 || a2 - b2;
}

export function filtersParam(filters?: Record<string, string[]>): string | undefined {
  if (!filters || Object.keys(filters).length === 0) return undefined;
  const out: Record<string, Record<string, boolean>> = {};
  for (const [k, vs] of Object.entries(filters)) {
    out[k] = {};
    for (const v of vs) out[k][v] = true;
  }
  return JSON.stringify(out);
}

function encodeQuery(q?: RequestOptions['query']): string {
  if (!q) return '';
  const parts: string[] = [];
  for (const [k, v] of Object.entries(q)) {
    if (v === undefined) continue;
    const vals = Array.isArray(v) ? v : [v];
    for (const x of vals) parts.push(`${encodeURIComponent(k)}=${encodeURIComponent(String(x))}`);
  }
  return parts.length ? `?${parts.join('&')}` : '';
}

export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

function toApiError(status: number, body: Buffer): ApiError {
  const text = body.toString('utf8');
  try {
    const j = JSON.parse(text) as { message?: string };
    if (typeof j.message === 'string') return new ApiError(status, j.message);
  } catch {
    // not JSON: use the text
  }
  return new ApiError(status, text.trim() || `request failed with status ${status}`);
}

/**
 * Container routes: the Engine API's containers/* translated onto the containers room.
 */
import type { Duplex } from 'node:stream';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { pipeline } from 'node:stream/promises';
import { conflict, invalidArgument } from '../common/errors.js';
import { archivePath, exportRoot, extractToPath, statPath } from '../engine/containers/archive.js';
import { cgroupPids, sampleCgroup } from '../engine/runtime/cgroups.js';
import { familiarString, parseReference } from '../common/reference.js';
import type { ContainerRecord } from '../engine/containers/containers.js';
import { labelMatch, type WaitCondition } from '../engine/containers/service.js';
import { type LogEntry, toUtcNano } from '../engine/containers/logs.js';
import type { Engine } from '../engine/engine.js';
import { mountPlaceholders } from '../engine/volumes/mounts.js';
import { publicMount } from '../engine/volumes/volumes.js';
import { humanDurationSince } from './format.js';
import {
  checkFilterKeys,
  type Ctx,
  parseFilters,
  queryBool,
  queryInt,
  readJson,
  type Router,
  sendEmpty,
  sendJson,
  timeParam,
} from './http.js';
import { DetachWatcher, frame, parseDetachKeys, writeFrameHeader } from './streams.js';

const execFileAsync = promisify(execFile);

export function containerRoutes(router: Router, engine: Engine): void {
  const svc = engine.containers;

  router.add('POST', '/containers/create', async (ctx) => {
    const body = await readJson<unknown>(ctx.req);
    const name = ctx.query.get('name') ?? undefined;
    sendJson(ctx.res, 201, await svc.create(body, name));
  });

  router.add('GET', '/containers/json', async (ctx) => {
    const all = queryBool(ctx.query, 'all');
    const limit = queryInt(ctx.query, 'limit', -1);
    const f = parseFilters(ctx.query);
    checkFilterKeys(f, [
      'id',
      'name',
      'label',
      'status',
      'exited',
      'ancestor',
      'before',
      'since',
      'volume',
      'health',
    ]);
    let list = svc.list().filter((r) => matches(r, f, engine));
    if (!all && limit <= 0 && !f.status && !f.exited)
      list = list.filter((r) => r.state.Running || r.state.Restarting);
    list.sort((a, b) => Date.parse(b.created) - Date.parse(a.created));
    if (limit > 0) list = list.slice(0, limit);
    const out = list.map((r) => summary(r, engine));
    if (queryBool(ctx.query, 'size'))
      await Promise.all(list.map(async (r, i) => Object.assign(out[i], await svc.sizes(r.id))));
    sendJson(ctx.res, 200, out);
  });

  router.add('POST', '/containers/prune', async (ctx) => {
    const f = parseFilters(ctx.query);
    checkFilterKeys(f, ['label', 'until']);
    const removed = await svc.prune(f.label ?? []);
    sendJson(ctx.res, 200, { ContainersDeleted: removed.length ? removed : null, SpaceReclaimed: 0 });
  });

  router.add('GET', '/containers/{id}/json', async (ctx) => {
    const rec = svc.get(ctx.params.id);
    const out = inspect(rec, engine);
    if (queryBool(ctx.query, 'size')) Object.assign(out, await svc.sizes(rec.id));
    sendJson(ctx.res, 200, out);
  });

  router.add('POST', '/containers/{id}/start', async (ctx) => {
    ctx.req.resume();
    const started = await svc.start(ctx.params.id);
    sendEmpty(ctx.res, started ? 204 : 304);
  });

  router.add('POST', '/containers/{id}/stop', async (ctx) => {
    ctx.req.resume();
    const t = ctx.query.get('t');
    const stopped = await svc.stop(ctx.params.id, t === null ? undefined : queryInt(ctx.query, 't', 10));
    sendEmpty(ctx.res, stopped ? 204 : 304);
  });

  router.add('POST', '/containers/{id}/restart', async (ctx) => {
    const t = ctx.query.get('t');
    await svc.restart(ctx.params.id, t === null ? undefined : queryInt(ctx.query, 't', 10));
    sendEmpty(ctx.res, 204);
  });

  router.add('POST', '/containers/{id}/kill', async (ctx) => {
    await svc.kill(ctx.params.id, ctx.query.get('signal') || 'SIGKILL');
    sendEmpty(ctx.res, 204);
  });

  router.add('POST', '/containers/{id}/pause', async (ctx) => {
    await svc.pause(ctx.params.id);
    sendEmpty(ctx.res, 204);
  });

  router.add('POST', '/containers/{id}/update', async (ctx) => {
    const body = await readJson<unknown>(ctx.req);
    const warnings = await svc.update(ctx.params.id, body);
    sendJson(ctx.res, 200, { Warnings: warnings.length ? warnings : null });
  });

  router.add('POST', '/containers/{id}/unpause', async (ctx) => {
    await svc.unpause(ctx.params.id);
    sendEmpty(ctx.res, 204);
  });

  router.add('POST', '/containers/{id}/rename', async (ctx) => {
    const name = ctx.query.get('name');
    if (!name) throw invalidArgument('name is required');
    await svc.rename(ctx.params.id, name);
    sendEmpty(ctx.res, 204);
  });

  router.add('POST', '/containers/{id}/resize', (ctx) => {
    svc.resize(ctx.params.id, queryInt(ctx.query, 'h', 0), queryInt(ctx.query, 'w', 0));
    ctx.res.writeHead(200, { 'Content-Length': 0 });
    ctx.res.end();
  });

  router.add('DELETE', '/containers/{id}', async (ctx) => {
    await svc.remove(ctx.params.id, {
      force: queryBool(ctx.query, 'force'),
      volumes: queryBool(ctx.query, 'v'),
    });
    sendEmpty(ctx.res, 204);
  });

  router.add('POST', '/containers/{id}/wait', async (ctx) => {
    const rec = svc.get(ctx.params.id);
    const cond = (ctx.query.get('condition') || 'not-running') as WaitCondition;
    if (!['not-running', 'next-exit', 'removed'].includes(cond))
      throw invalidArgument(`invalid condition: "${cond}"`);
    const waiting = svc.waitFor(rec.id, cond);
    // The client starts the container only once these headers arrive (docker run).
    ctx.res.writeHead(200, { 'Content-Type': 'application/json' });
    ctx.res.flushHeaders();
    const code = await waiting;
    // Error is for failures of the wait itself; a failed start was already reported by /start.
    ctx.res.end(JSON.stringify({ Error: null, StatusCode: code }) + '\n');
  });

  router.add('GET', '/containers/{id}/logs', async (ctx) => {
    const rec = svc.get(ctx.params.id);
    const q = ctx.query;
    const stdout = queryBool(q, 'stdout');
    const stderr = queryBool(q, 'stderr');
    if (!stdout && !stderr) throw invalidArgument('Bad parameters: you must choose at least one stream');
    const tailRaw = q.get('tail');
    const tail = !tailRaw || tailRaw === 'all' || Number(tailRaw) < 0 ? undefined : Number(tailRaw);
    if (tail !== undefined && !Number.isFinite(tail))
      throw invalidArgument(`invalid value for "tail": ${tailRaw}`);
    const timestamps = queryBool(q, 'timestamps');
    const res = ctx.res;
    res.writeHead(200, {});
    res.flushHeaders();
    const closed = new Promise<void>((resolve) => res.on('close', () => resolve()));
    await svc.logs(
      rec.id,
      {
        stdout,
        stderr,
        since: timeParam(q.get('since')),
        until: timeParam(q.get('until')),
        tail,
        follow: queryBool(q, 'follow'),
      },
      (entries) => {
        if (res.destroyed) return;
        if (!res.write(encodeLogEntries(entries, { timestamps, tty: rec.config.Tty })))
          return Promise.race([new Promise<void>((r) => res.once('drain', () => r())), closed]);
      },
      closed,
    );
    res.end();
  });

  router.add('GET', '/containers/{id}/stats', async (ctx) => {
    const rec = svc.get(ctx.params.id);
    const stream = queryBool(ctx.query, 'stream', true) && !queryBool(ctx.query, 'one-shot');
    const sample = () => {
      const running = svc.get(rec.id).state.Running;
      const s = running ? sampleCgroup(svc.cgroupOf(rec.id)) : undefined;
      return { read: new Date().toISOString(), s };
    };
    const shape = (cur: ReturnType<typeof sample>, prev: ReturnType<typeof sample> | undefined) => ({
      read: cur.read,
      preread: prev?.read ?? '0001-01-01T00:00:00Z',
      pids_stats: cur.s?.pids_stats ?? {},
      blkio_stats: cur.s?.blkio_stats ?? { io_service_bytes_recursive: null },
      num_procs: 0,
      storage_stats: {},
      cpu_stats: cur.s?.cpu_stats ?? { cpu_usage: { total_usage: 0 }, throttling_data: {} },
      precpu_stats: prev?.s?.cpu_stats ?? { cpu_usage: { total_usage: 0 }, throttling_data: {} },
      memory_stats: cur.s?.memory_stats ?? {},
      name: `/${rec.name}`,
      id: rec.id,
    });
    if (!stream) {
      // Like Docker: a second sample a moment later, so the CPU percentage has a delta.
      const first = sample();
      const oneShot = queryBool(ctx.query, 'one-shot');
      if (!oneShot) await new Promise((r) => setTimeout(r, 500));
      const second = oneShot ? first : sample();
      sendJson(ctx.res, 200, shape(second, oneShot ? undefined : first));
      return;
    }
    ctx.res.writeHead(200, { 'Content-Type': 'application/json' });
    let prev: ReturnType<typeof sample> | undefined;
    let open = true;
    ctx.res.on('close', () => (open = false));
    while (open) {
      const cur = sample();
      ctx.res.write(JSON.stringify(shape(cur, prev)) + '\n');
      prev = cur;
      if (!cur.s) break;
      await new Promise((r) => setTimeout(r, 1000));
    }
    ctx.res.end();
  });

  router.add('GET', '/containers/{id}/top', async (ctx) => {
    const rec = svc.get(ctx.params.id);
    if (!rec.state.Running) throw conflict(`Container ${rec.id} is not running`);
    const psArgs = ctx.query.get('ps_args') || '-ef';
    const pids = new Set(cgroupPids(svc.cgroupOf(rec.id)));
    let out: string;
    try {
      out = (await execFileAsync('ps', psArgs.split(/\s+/).filter(Boolean), { maxBuffer: 16 * 1024 * 1024 }))
        .stdout;
    } catch (err) {
      throw invalidArgument(`Error running ps: ${(err as Error).message}`);
    }
    const lines = out.split('\n').filter(Boolean);
    const titles = lines[0].trim().split(/\s+/);
    const pidCol = titles.indexOf('PID');
    if (pidCol < 0) throw invalidArgument(`Couldn't find PID field in ps output`);
    const processes = lines
      .slice(1)
      .map((l) => {
        const fields = l.trim().split(/\s+/);
        return [...fields.slice(0, titles.length - 1), fields.slice(titles.length - 1).join(' ')];
      })
      .filter((f) => pids.has(Number(f[pidCol])));
    sendJson(ctx.res, 200, { Titles: titles, Processes: processes });
  });

  router.add('GET', '/containers/{id}/archive', async (ctx) => {
    const p = ctx.query.get('path');
    if (!p) throw invalidArgument('path is required');
    await svc.withPathRoot(ctx.params.id, p, async (root, p) => {
      if (ctx.req.method === 'HEAD') {
        const { stat } = await statPath(root, p);
        ctx.res.writeHead(200, {
          'X-Docker-Container-Path-Stat': Buffer.from(JSON.stringify(stat)).toString('base64'),
        });
        ctx.res.end();
        return;
      }
      const { stat, tar } = await archivePath(root, p);
      ctx.res.writeHead(200, {
        'Content-Type': 'application/x-tar',
        'X-Docker-Container-Path-Stat': Buffer.from(JSON.stringify(stat)).toString('base64'),
      });
      await pipeline(tar, ctx.res);
    });
  });

  router.add('PUT', '/containers/{id}/archive', async (ctx) => {
    const p = ctx.query.get('path');
    if (!p) throw invalidArgument('path is required');
    await svc.withPathRoot(ctx.params.id, p, (root, p) => extractToPath(root, p, ctx.req), true);
    ctx.res.writeHead(200, { 'Content-Length': 0 });
    ctx.res.end();
  });

  router.add('GET', '/containers/{id}/export', async (ctx) => {
    await svc.withRootfs(ctx.params.id, async (root) => {
      ctx.res.writeHead(200, { 'Content-Type': 'application/x-tar' });
      await pipeline(exportRoot(root, mountPlaceholders(svc.get(ctx.params.id).mounts)), ctx.res);
    });
  });

  router.add('GET', '/containers/{id}/changes', async (ctx) => {
    const list = await svc.diff(ctx.params.id);
    sendJson(ctx.res, 200, list.length ? list : null);
  });

  router.add('POST', '/commit', async (ctx) => {
    const q = ctx.query;
    const container = q.get('container');
    if (!container) throw invalidArgument('container is required');
    const body = await readJson<Record<string, unknown> | null>(
      ctx.req,
      null as unknown as Record<string, unknown>,
    );
    const repo = q.get('repo') ?? '';
    const tag = q.get('tag') ?? '';
    const id = await svc.commit(container, {
      repo: repo ? (tag ? `${repo}:${tag}` : repo) : undefined,
      comment: q.get('comment') ?? undefined,
      author: q.get('author') ?? undefined,
      changes: q
        .getAll('changes')
        .flatMap((c) => c.split('\n'))
        .filter(Boolean),
      pause: queryBool(q, 'pause', true),
      config: body && typeof body === 'object' ? (body as never) : undefined,
    });
    sendJson(ctx.res, 201, { Id: id });
  });

  router.add('POST', '/containers/{id}/attach', (ctx) => {
    // Without an Upgrade header: raw stream on the plain connection (dockerode's default).
    const rec = svc.get(ctx.params.id);
    const socket = ctx.req.socket;
    socket.write('HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\n\r\n');
    attachStream(engine, rec, ctx.query, socket);
  });
}

/** `docker attach` / `docker run`: the hijacked connection after the 101. */
export function handleAttachUpgrade(
  engine: Engine,
  id: string,
  query: URLSearchParams,
  socket: Duplex,
  head: Buffer,
): void {
  const rec = engine.containers.get(id);
  socket.write(
    'HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n',
  );
  attachStream(engine, rec, query, socket, head);
}

function attachStream(
  engine: Engine,
  rec: ContainerRecord,
  q: URLSearchParams,
  socket: Duplex,
  head?: Buffer,
): void {
  const svc = engine.containers;
  const tty = rec.config.Tty;
  const wantOut = queryBool(q, 'stdout');
  const wantErr = queryBool(q, 'stderr');
  const wantIn = queryBool(q, 'stdin');
  const write = (stream: 'stdout' | 'stderr', data: Buffer) => {
    if ((stream === 'stdout' && !wantOut) || (stream === 'stderr' && !wantErr)) return;
    if (!socket.writableEnded && !socket.destroyed) socket.write(tty ? data : frame(stream, data));
  };
  let ended = false;
  const finish = () => {
    if (ended) return;
    ended = true;
    handle?.detach();
    if (!socket.destroyed) socket.end();
  };
  let handle: ReturnType<typeof svc.attach> | undefined;
  if (queryBool(q, 'stream', false) || !queryBool(q, 'logs')) {
    try {
      handle = svc.attach(
        rec.id,
        { onOutput: write, onEnd: finish },
        { stdin: wantIn && rec.config.OpenStdin },
      );
    } catch (err) {
      socket.end(
        tty
          ? Buffer.from(String((err as Error).message) + '\r\n')
          : frame('system', Buffer.from((err as Error).message + '\n')),
      );
      return;
    }
  }
  let keys: number[];
  try {
    keys = parseDetachKeys(q.get('detachKeys'));
  } catch {
    keys = parseDetachKeys(null);
  }
  const detach = new DetachWatcher(keys);
  const onStdin = (data: Buffer) => {
    const r = detach.feed(data);
    if (r.forward.length) handle?.write(r.forward);
    if (r.detach) finish();
  };
  if (head?.length) onStdin(head);
  socket.on('data', onStdin);
  socket.on('end', () => handle?.end());
  socket.on('error', () => finish());
  socket.on('close', () => {
    ended = true;
    handle?.detach();
  });
  if (!handle) finish();
}

function matches(r: ContainerRecord, f: Record<string, string[]>, engine: Engine): boolean {
  if (f.id && !f.id.some((p) => r.id.startsWith(p))) return false;
  if (f.name && !f.name.some((p) => new RegExp(p).test(r.name) || new RegExp(p).test(`/${r.name}`)))
    return false;
  if (f.label && !f.label.every((l) => labelMatch(r.config.Labels, l))) return false;
  if (f.status) {
    for (const s of f.status)
      if (!['created', 'restarting', 'running', 'removing', 'paused', 'exited', 'dead'].includes(s))
        throw invalidArgument(`invalid filter 'status=${s}'`);
    if (!f.status.includes(r.state.Status)) return false;
  }
  if (
    f.volume &&
    !f.volume.some((v) => (r.mounts ?? []).some((m) => m.Name === v || m.Source === v || m.Destination === v))
  )
    return false;
  if (f.health) {
    for (const h of f.health)
      if (!['starting', 'healthy', 'unhealthy', 'none'].includes(h))
        throw invalidArgument(`Unrecognised filter value for health: ${h}`);
    if (!f.health.includes(r.state.Health?.Status ?? 'none')) return false;
  }
  if (f.exited && !(r.state.Status === 'exited' && f.exited.includes(String(r.state.ExitCode)))) return false;
  if (f.ancestor) {
    const ok = f.ancestor.some((a) => {
      const img = engine.images.tryResolve(a);
      return img ? img.record.id === r.imageId : r.image === a;
    });
    if (!ok) return false;
  }
  if (f.before) {
    const b = engine.containers.get(f.before[0]);
    if (!(Date.parse(r.created) < Date.parse(b.created))) return false;
  }
  if (f.since) {
    const s = engine.containers.get(f.since[0]);
    if (!(Date.parse(r.created) > Date.parse(s.created))) return false;
  }
  return true;
}

/** Log entries as one buffer: raw (TTY) or in Docker's 8-byte-header frames, optionally timestamped. */
/** Largest frame payload when log records are coalesced (clients read a frame into one buffer). */
const LOG_FRAME_MAX = 64 * 1024;

/**
 * Log records in Docker's framing. Consecutive records of one stream share a frame (up to
 * LOG_FRAME_MAX): the stream is the same bytes to any demultiplexer, and a client writes once
 * per frame, so 200,000 one-line frames would cost it 200,000 writes.
 */
function encodeLogEntries(entries: LogEntry[], o: { timestamps: boolean; tty: boolean }): Buffer {
  const stamps = o.timestamps ? entries.map((e) => `${toUtcNano(e.time)} `) : undefined;
  let size = 0;
  for (let i = 0; i < entries.length; i++)
    size += entries[i].length + (stamps ? stamps[i].length : 0) + (o.tty ? 0 : 8);
  const out = Buffer.allocUnsafe(size);
  let pos = 0;
  let header = -1; // where the open frame's header is
  let headerStream: LogEntry['stream'] = 'stdout';
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    const len = e.length + (stamps ? stamps[i].length : 0);
    if (!o.tty) {
      const open = header >= 0 ? pos - header - 8 : -1;
      if (open < 0 || headerStream !== e.stream || open + len > LOG_FRAME_MAX) {
        if (header >= 0) writeFrameHeader(out, header, headerStream, open);
        header = pos;
        headerStream = e.stream;
        pos += 8;
      }
    }
    if (stamps) pos += out.write(stamps[i], pos, 'latin1');
    pos += e.copyTo(out, pos);
  }
  if (header >= 0) writeFrameHeader(out, header, headerStream, pos - header - 8);
  return out.subarray(0, pos);
}

function statusText(r: ContainerRecord): string {
  const s = r.state;
  if (s.Restarting) return `Restarting (${s.ExitCode}) ${humanDurationSince(s.FinishedAt)} ago`;
  if (s.Running) {
    const health = s.Health
      ? s.Health.Status === 'starting'
        ? ' (health: starting)'
        : ` (${s.Health.Status})`
      : '';
    return `Up ${humanDurationSince(s.StartedAt)}${s.Paused ? ' (Paused)' : health}`;
  }
  if (s.Status === 'removing') return 'Removal In Progress';
  if (s.Status === 'created') return 'Created';
  if (s.Status === 'dead') return 'Dead';
  return `Exited (${s.ExitCode}) ${humanDurationSince(s.FinishedAt)} ago`;
}

function displayImage(r: ContainerRecord): string {
  try {
    return familiarString(parseReference(r.image));
  } catch {
    return r.image;
  }
}

function summary(r: ContainerRecord, engine: Engine): Record<string, unknown> {
  const net = engine.network.summary(r.id);
  return {
    Id: r.id,
    Names: [`/${r.name}`],
    Image: displayImage(r),
    ImageID: r.imageId,
    Command: [r.path, ...r.args].join(' '),
    Created: Math.floor(Date.parse(r.created) / 1000),
    Ports: net.Ports,
    Labels: r.config.Labels,
    State: r.state.Status,
    Status: statusText(r),
    HostConfig: { NetworkMode: r.hostConfig.NetworkMode },
    NetworkSettings: { Networks: net.Networks },
    Mounts: (r.mounts ?? []).map(publicMount),
  };
}

function inspect(r: ContainerRecord, engine: Engine): Record<string, unknown> {
  const bundle = engine.containers.bundle(r.id);
  return {
    Id: r.id,
    Created: r.created,
    Path: r.path,
    Args: r.args,
    State: { ...r.state, Status: r.state.Status },
    Image: r.imageId,
    ResolvConfPath: `${bundle}/resolv.conf`,
    HostnamePath: `${bundle}/hostname`,
    HostsPath: `${bundle}/hosts`,
    LogPath: engine.containers.logPath(r.id),
    Name: `/${r.name}`,
    RestartCount: r.restartCount,
    Driver: 'overlay2',
    Platform: 'linux',
    MountLabel: '',
    ProcessLabel: '',
    AppArmorProfile: '',
    ExecIDs: null,
    HostConfig: { ...r.hostConfig, ...engine.network.hostConfigView(r.id) },
    GraphDriver: { Data: null, Name: 'overlay2' },
    Mounts: (r.mounts ?? []).map(publicMount),
    Config: { ...r.config, Image: r.image },
    NetworkSettings: engine.network.settings(r.id),
  };
}

export type { Ctx };

/**
 * Exec routes: create, start (hijacked or plain raw stream, or detached), inspect, resize.
 */
import type { Duplex } from 'node:stream';
import type { Engine } from '../engine/engine.js';
import { API_VERSION, type Ctx, queryInt, readJson, type Router, sendJson, SERVER_HEADER } from './http.js';
import { frame } from './streams.js';

interface StartBody {
  Detach?: boolean;
  Tty?: boolean;
}

export function execRoutes(router: Router, engine: Engine): void {
  router.add('POST', '/containers/{id}/exec', async (ctx) => {
    const body = await readJson<unknown>(ctx.req);
    sendJson(ctx.res, 201, { Id: engine.execs.create(ctx.params.id, body) });
  });

  router.add('GET', '/exec/{id}/json', (ctx) => sendJson(ctx.res, 200, engine.execs.inspect(ctx.params.id)));

  router.add('POST', '/exec/{id}/resize', (ctx) => {
    engine.execs.resize(ctx.params.id, queryInt(ctx.query, 'h', 0), queryInt(ctx.query, 'w', 0));
    ctx.res.writeHead(200, { 'Content-Length': 0 });
    ctx.res.end();
  });

  router.add('POST', '/exec/{id}/start', async (ctx: Ctx) => {
    const body = await readJson<StartBody>(ctx.req, {});
    const e = engine.execs.get(ctx.params.id);
    if (body.Detach) {
      await engine.execs.start(e.id, {
        onOutput: () => undefined,
        onEnd: () => undefined,
        tty: body.Tty,
        detach: true,
      });
      ctx.res.writeHead(200, { 'Content-Length': 0 });
      ctx.res.end();
      return;
    }
    // Without Upgrade (dockerode, testcontainers): 200 + raw stream on the plain connection.
    const socket = ctx.req.socket;
    socket.write(
      `HTTP/1.1 200 OK\r\nApi-Version: ${API_VERSION}\r\nContent-Type: application/vnd.docker.raw-stream\r\nDocker-Experimental: false\r\nOstype: linux\r\nServer: ${SERVER_HEADER}\r\n\r\n`,
    );
    await streamExec(engine, e.id, body, socket);
  });
}

/** `docker exec` (hijacked): the body is the first Content-Length bytes; what follows is stdin. */
export function handleExecUpgrade(
  engine: Engine,
  id: string,
  headers: Record<string, string | string[] | undefined>,
  socket: Duplex,
  head: Buffer,
): void {
  const e = engine.execs.get(id);
  const len = Number(headers['content-length'] ?? 0);
  let buf = head;
  const begin = (bodyBytes: Buffer, rest: Buffer) => {
    let body: StartBody = {};
    try {
      body = bodyBytes.length ? (JSON.parse(bodyBytes.toString()) as StartBody) : {};
    } catch {
      body = {};
    }
    socket.write(
      `HTTP/1.1 101 UPGRADED\r\nApi-Version: ${API_VERSION}\r\nConnection: Upgrade\r\nContent-Type: application/vnd.docker.raw-stream\r\nDocker-Experimental: false\r\nOstype: linux\r\nServer: ${SERVER_HEADER}\r\nUpgrade: tcp\r\n\r\n`,
    );
    void streamExec(engine, e.id, body, socket, rest);
  };
  if (buf.length >= len) return begin(buf.subarray(0, len), buf.subarray(len));
  const onData = (c: Buffer) => {
    buf = Buffer.concat([buf, c]);
    if (buf.length >= len) {
      socket.off('data', onData);
      begin(buf.subarray(0, len), buf.subarray(len));
    }
  };
  socket.on('data', onData);
}

async function streamExec(
  engine: Engine,
  id: string,
  body: StartBody,
  socket: Duplex,
  early?: Buffer,
): Promise<void> {
  const e = engine.execs.get(id);
  const tty = body.Tty ?? e.config.Tty;
  const pending: Buffer[] = early?.length ? [early] : [];
  let stdinEnded = false;
  const collect = (d: Buffer) => pending.push(d);
  const onEnd = () => (stdinEnded = true);
  socket.on('data', collect);
  socket.on('end', onEnd);
  socket.on('error', () => undefined);
  const handle = await engine.execs
    .start(id, {
      tty,
      onOutput: (stream, data) => {
        if (
          (stream === 'stdout' && !e.config.AttachStdout) ||
          (stream === 'stderr' && !e.config.AttachStderr)
        )
          return;
        if (!socket.destroyed) socket.write(tty ? data : frame(stream, data));
      },
      onEnd: () => {
        if (!socket.destroyed) socket.end();
      },
    })
    .catch((err: unknown) => {
      socket.end(frame('stdout', Buffer.from(`${(err as Error).message}\r\n`)));
      return undefined;
    });
  socket.off('data', collect);
  socket.off('end', onEnd);
  if (!handle) return;
  const wantsStdin = e.config.AttachStdin;
  if (wantsStdin) for (const b of pending) handle.write(b);
  if (stdinEnded && wantsStdin && !tty) handle.end();
  socket.on('data', (d: Buffer) => {
    if (wantsStdin) handle.write(d);
  });
  socket.on('end', () => {
    if (wantsStdin && !tty) handle.end();
  });
}

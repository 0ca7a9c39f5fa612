/**
 * The Engine API server: versioned and unversioned routes on one router, Docker's headers.
 */
import * as http from 'node:http';
import type { Duplex } from 'node:stream';
import { BerthError, httpStatus } from '../common/errors.js';
import type { Engine } from '../engine/engine.js';
import {
  API_VERSION,
  compareVersions,
  type Ctx,
  MIN_API_VERSION,
  Router,
  sendError,
  sendJson,
  standardHeaders,
} from './http.js';
import { buildRoutes } from './build.js';
import { containerRoutes, handleAttachUpgrade } from './containers.js';
import { distributionRoutes } from './distribution.js';
import { searchRoutes } from './search.js';
import { execRoutes, handleExecUpgrade } from './exec.js';
import { imageRoutes } from './images.js';
import { networkRoutes } from './networks.js';
import { systemRoutes } from './system.js';
import { volumeRoutes } from './volumes.js';

const VERSION_PREFIX = /^\/v(\d+\.\d+)(\/.*)$/;

/** Handlers for `Upgrade: tcp` requests (attach, exec start) register here. */
export type UpgradeHandler = (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void;

export function buildRouter(engine: Engine): Router {
  const router = new Router();
  systemRoutes(router, engine);
  distributionRoutes(router, engine);
  searchRoutes(router, engine);
  imageRoutes(router, engine);
  containerRoutes(router, engine);
  execRoutes(router, engine);
  networkRoutes(router, engine);
  volumeRoutes(router, engine);
  buildRoutes(router, engine);
  return router;
}

export function createApiServer(engine: Engine): http.Server {
  const router = buildRouter(engine);
  const server = http.createServer({ maxHeaderSize: 1024 * 1024, keepAliveTimeout: 0 }, (req, res) => {
    void dispatch(router, req, res);
  });
  server.headersTimeout = 0;
  server.requestTimeout = 0;
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) =>
    handleUpgrade(engine, req, socket, head),
  );
  return server;
}

/** Hijacked streams (`Upgrade: tcp`): attach now; exec start joins it with the exec room. */
function handleUpgrade(engine: Engine, req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
  socket.on('error', () => undefined);
  const url = new URL(req.url ?? '/', 'http://berth');
  const m = VERSION_PREFIX.exec(url.pathname);
  const p = m ? m[2] : url.pathname;
  try {
    const attach = /^\/containers\/([^/]+)\/attach\/?$/.exec(p);
    if (req.method === 'POST' && attach) {
      handleAttachUpgrade(engine, decodeURIComponent(attach[1]), url.searchParams, socket, head);
      return;
    }
    const exec = /^\/exec\/([^/]+)\/start\/?$/.exec(p);
    if (req.method === 'POST' && exec) {
      handleExecUpgrade(engine, decodeURIComponent(exec[1]), req.headers, socket, head);
      return;
    }
    rawError(socket, 404, 'page not found');
  } catch (err) {
    const status = err instanceof BerthError ? httpStatus(err.kind) : 500;
    rawError(socket, status, err instanceof Error ? err.message : String(err));
  }
}

function rawError(socket: Duplex, status: number, message: string): void {
  const body = JSON.stringify({ message }) + '\n';
  socket.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}\r\nApi-Version: ${API_VERSION}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

async function dispatch(router: Router, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  standardHeaders(res);
  const url = new URL(req.url ?? '/', 'http://berth');
  let path = url.pathname;
  let version = API_VERSION;
  const m = VERSION_PREFIX.exec(path);
  if (m) {
    version = m[1];
    path = m[2];
    if (compareVersions(version, API_VERSION) > 0) {
      sendJson(res, 400, {
        message: `client version ${version} is too new. Maximum supported API version is ${API_VERSION}`,
      });
      return;
    }
    if (compareVersions(version, MIN_API_VERSION) < 0) {
      sendJson(res, 400, {
        message: `client version ${version} is too old. Minimum supported API version is ${MIN_API_VERSION}, please upgrade your client to a newer version`,
      });
      return;
    }
  }
  const found = router.match(req.method ?? 'GET', path);
  if (found === undefined || found === 'method') {
    // Docker answers unknown routes with 404 and this message.
    req.resume();
    sendJson(res, 404, { message: 'page not found' });
    return;
  }
  const ctx: Ctx = { req, res, params: found.params, query: url.searchParams, version };
  try {
    await found.handler(ctx);
  } catch (err) {
    // Read what the client is still sending, so it sees our answer rather than a broken pipe.
    req.resume();
    sendError(res, err);
  }
}

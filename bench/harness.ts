/**
 * The benchmark's shared pieces: a daemon under test, Engine API calls on its socket, timing.
 */
import { createReadStream } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import * as http from 'node:http';

export interface Daemon {
  name: string;
  socket: string;
  proc: ChildProcess;
  dir: string;
}

export function ping(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.request({ socketPath: socket, path: '/_ping', timeout: 500 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => {
      req.destroy();
      resolve(false);
    });
    req.end();
  });
}

export function api(
  socket: string,
  method: string,
  p: string,
  body?: string | NodeJS.ReadableStream,
  contentType = 'application/x-tar',
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { socketPath: socket, path: p, method, headers: body ? { 'Content-Type': contentType } : {} },
      (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (data += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data }));
      },
    );
    req.on('error', reject);
    if (body && typeof body !== 'string') body.pipe(req);
    else req.end(body);
  });
}

export async function timed(fn: () => Promise<void>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

export async function load(d: Daemon, file: string): Promise<void> {
  const r = await api(d.socket, 'POST', '/images/load?quiet=1', createReadStream(file));
  if (r.status !== 200 || r.body.includes('"error"')) throw new Error(`${d.name} load failed: ${r.body}`);
}

export interface Workload {
  name: string;
  setup?: (d: Daemon) => Promise<void>;
  once: (d: Daemon) => Promise<void>;
  after?: (d: Daemon) => Promise<void>;
  /** once after the runs (stop what setup started) */
  teardown?: (d: Daemon) => Promise<void>;
  runs: number;
}

/** A loopback TCP port nothing listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = http.createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

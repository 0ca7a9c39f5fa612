/** Shared pieces of the compose end-to-end tests: projects on disk, berth compose and docker-compose runners. */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BERTH, berth, FIXTURES, request, run, type RunResult, type TestDaemon } from '../helpers/daemon.js';

export const DOCKER_COMPOSE = '/usr/bin/docker-compose';

export function projectDir(files: Record<string, string>, name = 'proj'): string {
  const dir = path.join(mkdtempSync(path.join(os.tmpdir(), 'berth-compose-')), name);
  for (const [f, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
    writeFileSync(path.join(dir, f), text);
  }
  return dir;
}

/** `berth compose` run inside the project directory (so the default file and project name apply). */
export function compose(
  d: TestDaemon,
  dir: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<RunResult> {
  return run(
    '/bin/sh',
    ['-c', 'cd "$0" && exec "$@"', dir, process.execPath, BERTH, '-H', d.host, 'compose', ...args],
    {
      env: { BERTH_HOST: '', DOCKER_HOST: '', ...env },
    },
  );
}

/** docker-compose 1.29 (Debian's) against the test daemon. */
export function dockerCompose(d: TestDaemon, dir: string, args: string[]): Promise<RunResult> {
  return run('/bin/sh', ['-c', 'cd "$0" && exec "$@"', dir, DOCKER_COMPOSE, ...args], {
    env: { DOCKER_HOST: d.host, COMPOSE_INTERACTIVE_NO_CLI: '1', DOCKER_BUILDKIT: '0' },
  });
}

export async function loadBusybox(d: TestDaemon): Promise<void> {
  const r = await berth(d, ['load', '-i', path.join(FIXTURES, 'busybox-1.38.0-musl-docker-archive.tar')]);
  if (r.code !== 0) throw new Error(r.stderr);
  await berth(d, ['tag', 'busybox:1.38.0-musl', 'busybox:latest']);
}

/**
 * A redis image made from the host's Debian redis-server: the binary, its shared libraries and
 * the dynamic loader, imported as one layer.
 */
export async function makeRedisImage(d: TestDaemon, tag = 'redis:test'): Promise<void> {
  const ldd = spawnSync('ldd', ['/usr/bin/redis-server'], { encoding: 'utf8' });
  if (ldd.status !== 0) throw new Error('redis-server is not installed');
  const libs = [...ldd.stdout.matchAll(/(\/\S+) \(0x/g)].map((m) => m[1]);
  const stage = mkdtempSync(path.join(os.tmpdir(), 'berth-redis-'));
  mkdirSync(path.join(stage, 'data'));
  const tarFile = path.join(stage, 'redis.tar');
  const t = spawnSync(
    'tar',
    ['-chf', tarFile, '-C', '/', 'usr/bin/redis-server', ...libs.map((l) => l.slice(1))],
    {
      encoding: 'utf8',
    },
  );
  if (t.status !== 0) throw new Error(t.stderr);
  spawnSync('tar', ['-rf', tarFile, '-C', stage, 'data']);
  const r = await berth(d, [
    'import',
    '-c',
    'CMD ["/usr/bin/redis-server", "--protected-mode", "no", "--save", "", "--appendonly", "no"]',
    '-c',
    'WORKDIR /data',
    '-c',
    'EXPOSE 6379',
    tarFile,
    tag,
  ]);
  spawnSync('rm', ['-rf', stage]);
  if (r.code !== 0) throw new Error(r.stderr);
}

/** Whether the daemon serves an API route (features other rooms add: networks, volumes, build). */
export async function serves(d: TestDaemon, method: string, p: string): Promise<boolean> {
  const r = await request(d, method, p);
  return r.status !== 404 || !/page not found/.test(r.body.toString());
}

export async function containerNames(d: TestDaemon): Promise<string[]> {
  const r = await berth(d, ['ps', '-a', '--format', '{{.Names}}']);
  return r.stdout.split('\n').filter(Boolean).sort();
}

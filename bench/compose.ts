/**
 * Compose workloads: `up -d` and `down` of the 3-service project (redis, a client pinging it by
 * name, a service built from a local Dockerfile), images present, with berth compose and with
 * docker-compose 1.29, each against every daemon of the run.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

interface Daemon {
  name: string;
  socket: string;
}

export interface ComposeWorkload {
  name: string;
  setup?: (d: Daemon) => Promise<void>;
  once: (d: Daemon) => Promise<void>;
  after?: (d: Daemon) => Promise<void>;
  teardown?: (d: Daemon) => Promise<void>;
  runs: number;
}

const PROJECT = `
services:
  redis:
    image: benchredis:1
    stop_signal: SIGKILL
  client:
    image: busybox:1.38.0-musl
    command: ["sh", "-c", "until echo PING | nc -w 1 redis 6379 | grep -q PONG; do sleep 0.2; done; exec sleep 300"]
    depends_on: [redis]
    stop_signal: SIGKILL
  web:
    build: ./web
    stop_signal: SIGKILL
`;

function projectDir(): string {
  const dir = path.join(mkdtempSync(path.join(os.tmpdir(), 'bench-compose-')), 'benchstack');
  mkdirSync(path.join(dir, 'web'), { recursive: true });
  writeFileSync(path.join(dir, 'compose.yaml'), PROJECT);
  writeFileSync(
    path.join(dir, 'web', 'Dockerfile'),
    'FROM busybox:1.38.0-musl\nCOPY index.html /www/\nCMD ["httpd", "-f", "-h", "/www"]\n',
  );
  writeFileSync(path.join(dir, 'web', 'index.html'), '<p>bench</p>\n');
  return dir;
}

/** A redis image from the host's Debian redis-server (binary, libraries, loader), as one layer. */
function redisTar(): string | undefined {
  const ldd = spawnSync('ldd', ['/usr/bin/redis-server'], { encoding: 'utf8' });
  if (ldd.status !== 0) return undefined;
  const libs = [...ldd.stdout.matchAll(/(\/\S+) \(0x/g)].map((m) => m[1].slice(1));
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'bench-redis-')), 'redis.tar');
  const r = spawnSync('tar', ['-chf', file, '-C', '/', 'usr/bin/redis-server', ...libs]);
  return r.status === 0 ? file : undefined;
}

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): void {
  const r = spawnSync(cmd, args, {
    cwd,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 300_000,
  });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
}

export function composeWorkloads(
  root: string,
  dockerCli: string,
  loadBusybox: (d: Daemon) => Promise<void>,
): ComposeWorkload[] {
  const redis = redisTar();
  if (!redis) {
    console.log('redis-server not installed: no compose workloads');
    return [];
  }
  const dir = projectDir();
  process.once('exit', () => {
    rmSync(path.dirname(dir), { recursive: true, force: true });
    rmSync(path.dirname(redis), { recursive: true, force: true });
  });
  const berthCompose = (d: Daemon, args: string[]) =>
    run(
      process.execPath,
      [path.join(root, 'bin/berth.js'), '-H', `unix://${d.socket}`, 'compose', ...args],
      dir,
      {
        BERTH_HOST: '',
        DOCKER_HOST: '',
      },
    );
  const dockerCompose = (d: Daemon, args: string[]) =>
    run('/usr/bin/docker-compose', args, dir, { DOCKER_HOST: `unix://${d.socket}`, DOCKER_BUILDKIT: '0' });
  const prepared = new Set<string>();
  const prepare = async (d: Daemon) => {
    if (prepared.has(d.name)) return;
    prepared.add(d.name);
    await loadBusybox(d);
    run(
      dockerCli,
      [
        '-H',
        `unix://${d.socket}`,
        'import',
        '-c',
        'CMD ["/usr/bin/redis-server", "--protected-mode", "no"]',
        redis,
        'benchredis:1',
      ],
      dir,
    );
    // A first round builds the web image for both tools (their image names differ), so the
    // measured runs find every image present.
    berthCompose(d, ['up', '-d']);
    berthCompose(d, ['down']);
    dockerCompose(d, ['up', '-d']);
    dockerCompose(d, ['down']);
  };
  const out: ComposeWorkload[] = [];
  for (const [tool, exec] of [
    ['berth compose', berthCompose],
    ['docker-compose', dockerCompose],
  ] as const) {
    out.push(
      {
        name: `${tool} up -d (3 services)`,
        setup: async (d) => {
          await prepare(d);
          berthCompose(d, ['down']);
        },
        once: async (d) => exec(d, ['up', '-d']),
        after: async (d) => exec(d, ['down']),
        runs: 5,
      },
      {
        name: `${tool} down (3 services)`,
        setup: async (d) => {
          await prepare(d);
          berthCompose(d, ['down']);
          exec(d, ['up', '-d']);
        },
        once: async (d) => exec(d, ['down']),
        // `after` runs after each measured down: bring the project back for the next one.
        after: async (d) => exec(d, ['up', '-d']),
        // and down at the end: its networks (bridges) must not outlive the daemon
        teardown: async (d) => exec(d, ['down']),
        runs: 5,
      },
    );
  }
  return out;
}

/**
 * Issue 3's container workloads (run latency, 30 concurrent starts, exec, logs of 200,000 lines)
 * and memory figures (idle daemon RSS, RSS added per running container), the same for both engines.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { api, type Daemon, type Workload } from './harness.js';

const DOCKER_CLI = '/usr/local/bin/docker';

/**
 * The engine's own CLI as a user runs it: `berth` (bin/berth, what setup.sh links onto PATH) for
 * berthd, the docker CLI for dockerd.
 */
function ownCli(d: Daemon, root: string): string[] {
  return d.name === 'berth' ? [path.join(root, 'bin/berth')] : [DOCKER_CLI];
}

function cli(argv: string[], d: Daemon, args: string[]): string {
  const r = spawnSync(argv[0], [...argv.slice(1), '-H', `unix://${d.socket}`, ...args], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, BERTH_HOST: '', DOCKER_HOST: '' },
  });
  if (r.status !== 0) throw new Error(`${d.name}: ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

async function createStarted(d: Daemon, image: string, cmd: string[], name?: string): Promise<string> {
  const body = JSON.stringify({ Image: image, Cmd: cmd, HostConfig: { NetworkMode: 'none' } });
  const r = await apiJson(d, 'POST', `/containers/create${name ? `?name=${name}` : ''}`, body);
  const id = (JSON.parse(r) as { Id: string }).Id;
  await apiJson(d, 'POST', `/containers/${id}/start`);
  return id;
}

async function apiJson(d: Daemon, method: string, p: string, body?: string): Promise<string> {
  const r = await api(d.socket, method, p, body, 'application/json');
  if (r.status >= 300 && r.status !== 304) throw new Error(`${d.name} ${method} ${p}: ${r.status} ${r.body}`);
  return r.body;
}

async function removeAll(d: Daemon, ids: string[]): Promise<void> {
  await Promise.all(ids.map((id) => api(d.socket, 'DELETE', `/containers/${id}?force=1`)));
}

export function containerWorkloads(
  image: string,
  root: string,
  prepare: (d: Daemon) => Promise<void>,
): Workload[] {
  let batch: string[] = [];
  const list: Workload[] = [
    {
      name: 'own CLI: run --rm busybox true',
      once: async (d) => void cli(ownCli(d, root), d, ['run', '--rm', '--network', 'none', image, 'true']),
      runs: 10,
    },
    {
      name: '30 containers started at once',
      once: async (d) => {
        batch = await Promise.all(
          Array.from({ length: 30 }, () => createStarted(d, image, ['sleep', '600'])),
        );
      },
      after: async (d) => removeAll(d, batch),
      runs: 3,
    },
    {
      name: 'docker CLI: exec true',
      setup: async (d) => void (await createStarted(d, image, ['sleep', '3600'], 'bench-exec')),
      once: async (d) => void cli([DOCKER_CLI], d, ['exec', 'bench-exec', 'true']),
      runs: 10,
    },
    {
      name: 'docker CLI: logs of 200,000 lines',
      setup: async (d) => {
        const id = await createStarted(d, image, ['seq', '1', '200000'], 'bench-logs');
        await apiJson(d, 'POST', `/containers/${id}/wait`);
      },
      once: async (d) => {
        const out = cli([DOCKER_CLI], d, ['logs', 'bench-logs']);
        if (!out.endsWith('\n200000\n')) throw new Error(`${d.name}: logs incomplete`);
      },
      runs: 5,
    },
  ];
  return list.map((w) => ({
    ...w,
    setup: async (d: Daemon) => {
      await prepare(d);
      await w.setup?.(d);
    },
  }));
}

interface Proc {
  pid: number;
  ppid: number;
  rssKiB: number;
  cmdline: string;
}

function processes(): Proc[] {
  const out: Proc[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const status = readFileSync(`/proc/${name}/status`, 'utf8');
      const ppid = Number(/^PPid:\s+(\d+)/m.exec(status)?.[1] ?? 0);
      const rssKiB = Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0);
      const cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8').replace(/\0/g, ' ');
      out.push({ pid: Number(name), ppid, rssKiB, cmdline });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** RSS of the daemon and its children, plus the per-container monitors (conmon, containerd-shim). */
function engineRssKiB(d: Daemon): { daemon: number; monitors: number } {
  const all = processes();
  const tree = new Set([d.proc.pid!]);
  for (let grew = true; grew;) {
    grew = false;
    for (const p of all)
      if (!tree.has(p.pid) && tree.has(p.ppid) && !/conmon|containerd-shim/.test(p.cmdline)) {
        tree.add(p.pid);
        grew = true;
      }
  }
  const daemon = all.filter((p) => tree.has(p.pid)).reduce((n, p) => n + p.rssKiB, 0);
  const monitors = all
    .filter((p) => /^(\S*\/)?(conmon|containerd-shim\S*) /.test(p.cmdline) && p.cmdline.includes(d.dir))
    .reduce((n, p) => n + p.rssKiB, 0);
  return { daemon, monitors };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Idle RSS, then the RSS added by each of 10 running containers (daemon growth + monitors). */
const IDLE_SETTLE_MS = 5000;

export async function memoryFigures(
  d: Daemon,
  image: string,
): Promise<{ idleMiB: number; perContainerMiB: number }> {
  // Idle: the same settling time for both engines after their last request (Go's scavenger and
  // berthd's idle trim both give memory back within it).
  await sleep(IDLE_SETTLE_MS);
  const idle = engineRssKiB(d);
  const ids: string[] = [];
  for (let i = 0; i < 10; i++) ids.push(await createStarted(d, image, ['sleep', '600']));
  await sleep(IDLE_SETTLE_MS);
  const busy = engineRssKiB(d);
  await removeAll(d, ids);
  return {
    idleMiB: idle.daemon / 1024,
    perContainerMiB: (busy.daemon - idle.daemon + busy.monitors - idle.monitors) / 10 / 1024,
  };
}

/**
 * Test daemons: each gets its own data root, exec root and socket, and is stopped by PID.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, promises as fsp, readFileSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const BERTH = path.join(ROOT, 'bin', 'berth.js');
export const BERTHD = path.join(ROOT, 'bin', 'berthd.js');
export const FIXTURES = path.resolve(ROOT, '..', 'shared', 'fixtures', 'images');
export const DOCKER_CLI = '/usr/local/bin/docker';

export interface TestDaemon {
  dir: string;
  dataRoot: string;
  execRoot: string;
  socket: string;
  host: string;
  proc: ChildProcess;
  logs(): string;
  stop(): Promise<void>;
}

/** `reuse.dir` restarts a daemon on the state another (killed) test daemon left. */
export async function startDaemon(
  extraArgs: string[] = [],
  config: Record<string, unknown> = {},
  reuse: { dir?: string } = {},
): Promise<TestDaemon> {
  const dir = reuse.dir ?? mkdtempSync(path.join(os.tmpdir(), 'berth-test-'));
  // Each test daemon gets its own bridge, subnets and iptables chains, so daemons run side by side.
  const net = reuse.dir ? readNetConfig(dir) : testNetConfig();
  writeFileSync(path.join(dir, 'daemon.json'), JSON.stringify({ ...net, ...config }));
  const dataRoot = path.join(dir, 'data');
  const execRoot = path.join(dir, 'run');
  const socket = path.join(dir, 'berth.sock');
  let output = '';
  const proc = spawn(
    process.execPath,
    [
      BERTHD,
      '--data-root',
      dataRoot,
      '--exec-root',
      execRoot,
      '-H',
      `unix://${socket}`,
      '--config-file',
      path.join(dir, 'daemon.json'),
      ...extraArgs,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  proc.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const daemon: TestDaemon = {
    dir,
    dataRoot,
    execRoot,
    socket,
    host: `unix://${socket}`,
    proc,
    logs: () => output,
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
      await removeContainers(dataRoot);
      await removeNetworking(dataRoot, { ...net, ...config });
      await cleanupDir(dir);
    },
  };
  for (let i = 0; i < 200; i++) {
    if (proc.exitCode !== null) throw new Error(`berthd exited early: ${output}`);
    if (await pingSocket(socket)) return daemon;
    await new Promise((r) => setTimeout(r, 50));
  }
  await daemon.stop();
  throw new Error(`berthd did not come up: ${output}`);
}

/** A bridge, a /24 for it and a /16 pool for user networks, and chain names of this daemon's own. */
export function testNetConfig(): Record<string, unknown> {
  const r = randomBytes(3);
  const a = 64 + (r[0] % 128);
  const tag = r.toString('hex');
  return {
    bridge: `bt${tag}`,
    bip: `10.${a}.${r[1]}.1/24`,
    'default-address-pools': [{ base: `10.${a}.0.0/16`, size: 24 }],
    'iptables-chain-prefix': `BT${tag}`,
  };
}

function readNetConfig(dir: string): Record<string, unknown> {
  try {
    const c = JSON.parse(readFileSync(path.join(dir, 'daemon.json'), 'utf8')) as Record<string, unknown>;
    return c.bridge ? c : testNetConfig();
  } catch {
    return testNetConfig();
  }
}

/** Deletes the bridges and iptables chains a test daemon made (a killed daemon leaves them). */
export async function removeNetworking(dataRoot: string, cfg: Record<string, unknown>): Promise<void> {
  const bridges = new Set<string>();
  if (typeof cfg.bridge === 'string') bridges.add(cfg.bridge);
  const netDir = path.join(dataRoot, 'network', 'networks');
  for (const f of await fsp.readdir(netDir).catch(() => [] as string[])) {
    try {
      const rec = JSON.parse(await fsp.readFile(path.join(netDir, f), 'utf8')) as { bridge?: string };
      if (rec.bridge) bridges.add(rec.bridge);
    } catch {
      // half-written: nothing to learn
    }
  }
  for (const b of bridges) spawnSync('ip', ['link', 'del', b]);
  const p = cfg['iptables-chain-prefix'];
  if (typeof p !== 'string') return;
  const jumps: [string, string, string[]][] = [
    ['nat', 'PREROUTING', ['-m', 'addrtype', '--dst-type', 'LOCAL', '-j', p]],
    ['nat', 'OUTPUT', ['-m', 'addrtype', '--dst-type', 'LOCAL', '-j', p]],
    ['nat', 'POSTROUTING', ['-j', `${p}-POSTROUTING`]],
    ['filter', 'FORWARD', ['-j', `${p}-FORWARD`]],
  ];
  for (const [t, c, rule] of jumps)
    for (let i = 0; i < 5; i++)
      if (spawnSync('iptables', ['-w', '-t', t, '-D', c, ...rule]).status !== 0) break;
  for (const [t, c] of [
    ['nat', p],
    ['nat', `${p}-POSTROUTING`],
    ['filter', `${p}-FORWARD`],
  ]) {
    spawnSync('iptables', ['-w', '-t', t, '-F', c]);
    spawnSync('iptables', ['-w', '-t', t, '-X', c]);
  }
}

/** Stops and deletes, by their conmon PIDs, any containers a test left running. */
async function removeContainers(dataRoot: string): Promise<void> {
  const execRoot = path.join(path.dirname(dataRoot), 'run');
  let ids: string[] = [];
  try {
    ids = await fsp.readdir(path.join(execRoot, 'containers'));
  } catch {
    return;
  }
  for (const id of ids) {
    spawnSync('runc', ['--root', path.join(execRoot, 'runc'), 'delete', '--force', id]);
    try {
      const pid = Number(await fsp.readFile(path.join(execRoot, 'containers', id, 'conmon.pid'), 'utf8'));
      if (pid) process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
    for (const c of [
      'memory',
      'cpu',
      'cpuacct',
      'pids',
      'blkio',
      'devices',
      'freezer',
      'cpuset',
      'systemd',
      'unified',
    ])
      await fsp.rmdir(`/sys/fs/cgroup/${c}/berth/${id}`).catch(() => undefined);
  }
}

/** Unmounts anything left under dir (deepest first), then removes it. */
export async function cleanupDir(dir: string): Promise<void> {
  const mounts = (await fsp.readFile('/proc/self/mountinfo', 'utf8'))
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((m) => m && (m === dir || m.startsWith(dir + '/')))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) spawnSync('umount', ['-l', m]);
  await fsp.rm(dir, { recursive: true, force: true });
}

export function pingSocket(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.request({ socketPath: socket, path: '/_ping', method: 'GET', timeout: 1000 }, (res) => {
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

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion with optional stdin, bounded by a timeout. */
export function run(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; input?: Buffer | string; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        code: code ?? (signal ? 128 : 1),
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
      });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input);
  });
}

/** The berth CLI against a test daemon. */
export function berth(
  d: TestDaemon,
  args: string[],
  opts: { input?: Buffer | string } = {},
): Promise<RunResult> {
  return run(process.execPath, [BERTH, '-H', d.host, ...args], {
    ...opts,
    // Credentials live in the test's own Docker config, shared with the docker() helper.
    env: { BERTH_HOST: '', DOCKER_HOST: '', DOCKER_CONFIG: path.join(d.dir, 'docker-config') },
  });
}

/** The real docker CLI against a test daemon. */
export function docker(
  d: TestDaemon,
  args: string[],
  opts: { input?: Buffer | string } = {},
): Promise<RunResult> {
  return run(DOCKER_CLI, ['-H', d.host, ...args], {
    ...opts,
    env: { DOCKER_CONFIG: path.join(d.dir, 'docker-config'), DOCKER_CLI_HINTS: 'false' },
  });
}

/** A raw HTTP request to a test daemon's socket. */
export function request(
  d: TestDaemon,
  method: string,
  urlPath: string,
  body?: Buffer | string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: d.socket, path: urlPath, method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
      );
    });
    req.on('error', reject);
    // A daemon may answer (an early 400) and close while the body is still going out.
    req.on('socket', (sock) => sock.on('error', () => undefined));
    req.end(body);
  });
}

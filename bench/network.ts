/**
 * Networking workloads: `run --rm` on the default bridge, bulk TCP through a published port on
 * 127.0.0.1 and connection setup through it. Both engines get a bridge of the bench's own.
 */
import { spawnSync } from 'node:child_process';
import * as net from 'node:net';
import { freePort } from './harness.js';

// Names of this bench run's own, so two benches on one machine do not share a bridge or chains.
const TAG = process.pid % 100000;
export const BERTH_BENCH_NET = {
  bridge: `bb${TAG}`,
  bip: `10.251.${TAG % 250}.1/24`,
  'iptables-chain-prefix': `BB${TAG}`,
};
export const DOCKER_BENCH_BRIDGE = { name: `db${TAG}`, addr: `10.252.${TAG % 250}.1/24` };

interface Target {
  name: string;
  socket: string;
}

const BULK_BYTES = 256 * 1024 * 1024;

function cli(docker: string, d: Target, args: string[]): string {
  const r = spawnSync(docker, ['-H', `unix://${d.socket}`, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${d.name}: docker ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

async function connectRetry(port: number): Promise<net.Socket> {
  for (let i = 0; i < 100; i++) {
    const s = await new Promise<net.Socket | undefined>((resolve) => {
      const c = net.connect({ host: '127.0.0.1', port });
      c.once('connect', () => resolve(c));
      c.once('error', () => resolve(undefined));
    });
    if (s) return s;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`cannot connect to 127.0.0.1:${port}`);
}

/**
 * Pushes BULK_BYTES into a container whose reader answers "OK" once it has read that many, so the
 * clock stops only when every byte has reached the container (a proxy that accepts and drops the
 * connection, or a sink that is not listening yet, is an error, not a fast run).
 */
async function pushBulk(port: number): Promise<void> {
  const s = await connectRetry(port);
  const chunk = Buffer.alloc(1024 * 1024);
  let answer = '';
  let closed = false;
  const done = new Promise<void>((resolve, reject) => {
    s.on('data', (b: Buffer) => {
      answer += b.toString('latin1');
      if (answer.includes('OK')) {
        s.destroy();
        resolve();
      }
    });
    s.once('close', () => {
      closed = true;
      if (!answer.includes('OK')) reject(new Error(`sink closed before reading ${BULK_BYTES} bytes`));
    });
  });
  done.catch(() => undefined);
  s.on('error', () => undefined);
  for (let sent = 0; !closed && sent < BULK_BYTES; sent += chunk.length)
    if (!s.write(chunk)) await Promise.race([new Promise((r) => s.once('drain', r)), done]);
  await done;
}

/** One HTTP/1.0 request: connect, request, full answer. */
function oneRequest(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.on('connect', () => s.write('GET /i.html HTTP/1.0\r\n\r\n'));
    s.on('data', () => undefined);
    s.on('end', () => resolve());
    s.on('error', reject);
  });
}

export interface NetWorkload<T extends Target> {
  name: string;
  setup?: (d: T) => Promise<void>;
  once: (d: T) => Promise<void>;
  teardown?: (d: T) => Promise<void>;
  runs: number;
}

export function networkWorkloads<T extends Target>(
  docker: string,
  image: string,
  scale: number,
  loadImage: (d: T) => Promise<void>,
): NetWorkload<T>[] {
  const sinks = new Map<string, { id: string; port: number }>();
  const webs = new Map<string, { id: string; port: number }>();
  return [
    {
      name: 'docker run --rm busybox true (bridge)',
      setup: loadImage,
      once: async (d) => {
        cli(docker, d, ['run', '--rm', image, 'true']);
      },
      runs: Math.max(10, 10 * scale),
    },
    {
      name: `TCP ${BULK_BYTES >> 20} MiB host->container, -p 127.0.0.1`,
      setup: async (d) => {
        const port = await freePort();
        const id = cli(docker, d, [
          'run',
          '-d',
          '-p',
          `127.0.0.1:${port}:5001`,
          image,
          'sh',
          '-c',
          `exec nc -lk -p 5001 -e sh -c 'head -c ${BULK_BYTES} >/dev/null && echo OK'`,
        ]);
        sinks.set(d.name, { id, port });
      },
      once: async (d) => {
        await pushBulk(sinks.get(d.name)!.port);
      },
      teardown: async (d) => {
        cli(docker, d, ['rm', '-f', sinks.get(d.name)!.id]);
      },
      runs: Math.max(3, 3 * scale),
    },
    {
      name: 'HTTP request via -p 127.0.0.1 (connect)',
      setup: async (d) => {
        const port = await freePort();
        const id = cli(docker, d, [
          'run',
          '-d',
          '-p',
          `127.0.0.1:${port}:80`,
          image,
          'sh',
          '-c',
          'echo hi > /i.html; exec httpd -f -p 80 -h /',
        ]);
        webs.set(d.name, { id, port });
        for (let i = 0; i < 100; i++) {
          try {
            await oneRequest(port);
            break;
          } catch {
            await new Promise((r) => setTimeout(r, 50));
          }
        }
      },
      once: async (d) => {
        await oneRequest(webs.get(d.name)!.port);
      },
      teardown: async (d) => {
        cli(docker, d, ['rm', '-f', webs.get(d.name)!.id]);
      },
      runs: Math.max(50, 50 * scale),
    },
  ];
}

/** A bridge for dockerd (`--bridge` wants an existing one). */
export function makeDockerBridge(): void {
  const b = DOCKER_BENCH_BRIDGE;
  spawnSync('ip', ['link', 'add', b.name, 'type', 'bridge']);
  spawnSync('ip', ['addr', 'add', b.addr, 'dev', b.name]);
  spawnSync('ip', ['link', 'set', b.name, 'up']);
}

/**
 * Removes what dockerd's iptables=true left (its DOCKER* chains, the jumps to them, the rules for its
 * bridge) and the bench bridges, unless DOCKER chains existed before the bench (a real Docker owns
 * them then).
 */
export function cleanupNetworking(dockerChainsBefore: boolean): void {
  spawnSync('ip', ['link', 'del', DOCKER_BENCH_BRIDGE.name]);
  spawnSync('ip', ['link', 'del', BERTH_BENCH_NET.bridge]);
  if (dockerChainsBefore) return;
  for (const table of ['filter', 'nat']) {
    const rules = spawnSync('iptables', ['-w', '-t', table, '-S'], { encoding: 'utf8' }).stdout.split('\n');
    // dockerd also writes its bridge's MASQUERADE and FORWARD rules straight into the built-in chains
    const own = new RegExp(`^-A (FORWARD|POSTROUTING) (.* ${DOCKER_BENCH_BRIDGE.name}( .*)?)$`);
    for (const r of rules) {
      const m = own.exec(r);
      if (m) spawnSync('sh', ['-c', `iptables -w -t ${table} -D ${m[1]} ${m[2]}`]);
    }
    for (const r of rules) {
      const m = /^-A (\S+) (.*-j DOCKER\S*.*)$/.exec(r);
      if (m && !m[1].startsWith('DOCKER'))
        spawnSync('sh', ['-c', `iptables -w -t ${table} -D ${m[1]} ${m[2]}`]);
    }
    for (const r of rules) {
      const m = /^-N (DOCKER\S*)$/.exec(r);
      if (m) {
        spawnSync('iptables', ['-w', '-t', table, '-F', m[1]]);
        spawnSync('iptables', ['-w', '-t', table, '-X', m[1]]);
      }
    }
  }
}

export function dockerChainsExist(): boolean {
  return /:DOCKER /.test(spawnSync('iptables-save', { encoding: 'utf8' }).stdout);
}

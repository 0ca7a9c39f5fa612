/**
 * `npm run bench`: workloads against a berthd started here and, when `dockerd` is on PATH, the
 * same workloads against a real Docker Engine in the same run. Prints medians and ratios.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, promises as fsp } from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildContext } from './build-context.js';
import { composeWorkloads } from './compose.js';
import { bigImageArchive, manyImagesArchive } from './images.js';
import { api, type Daemon, freePort, load, median, ping, timed, type Workload } from './harness.js';
import { containerWorkloads, memoryFigures } from './containers.js';
import { hubServingFigures } from './hubserve.js';
import {
  BERTH_BENCH_NET,
  cleanupNetworking,
  DOCKER_BENCH_BRIDGE,
  dockerChainsExist,
  makeDockerBridge,
  networkWorkloads,
} from './network.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CACHE = path.join(ROOT, '.cache', 'bench');
const DOCKER_CLI = '/usr/local/bin/docker';
const REGISTRY_IMAGE_MB = 130;
const REGISTRY_IMAGE_LAYERS = 5;

function which(cmd: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

async function waitUp(d: Daemon): Promise<Daemon> {
  for (let i = 0; i < 600; i++) {
    if (await ping(d.socket)) return d;
    if (d.proc.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${d.name} did not start`);
}

async function startBerthd(): Promise<Daemon> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-bench-'));
  const socket = path.join(dir, 'berth.sock');
  await fsp.writeFile(path.join(dir, 'none.json'), JSON.stringify(BERTH_BENCH_NET));
  const proc = spawn(
    process.execPath,
    [
      path.join(ROOT, 'bin/berthd.js'),
      '--data-root',
      path.join(dir, 'data'),
      '--exec-root',
      path.join(dir, 'run'),
      '-H',
      `unix://${socket}`,
      '--config-file',
      path.join(dir, 'none.json'),
    ],
    { stdio: 'ignore' },
  );
  return waitUp({ name: 'berth', socket, proc, dir });
}

async function startDockerd(bin: string): Promise<Daemon> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'docker-bench-'));
  const socket = path.join(dir, 'docker.sock');
  await fsp.writeFile(path.join(dir, 'none.json'), '{}');
  const proc = spawn(
    bin,
    [
      '--data-root',
      path.join(dir, 'data'),
      '--exec-root',
      path.join(dir, 'exec'),
      '--pidfile',
      path.join(dir, 'docker.pid'),
      '-H',
      `unix://${socket}`,
      '--bridge',
      DOCKER_BENCH_BRIDGE.name,
      '--containerd-namespace',
      `bench${process.pid}`,
      '--config-file',
      path.join(dir, 'none.json'),
    ],
    { stdio: 'ignore' },
  );
  return waitUp({ name: 'docker', socket, proc, dir });
}

async function stop(d: Daemon): Promise<void> {
  // Containers outlive their daemon (conmon / shims): remove them all first.
  const list = await api(d.socket, 'GET', '/containers/json?all=1').catch(() => undefined);
  if (list?.status === 200)
    for (const c of JSON.parse(list.body) as { Id: string }[])
      await api(d.socket, 'DELETE', `/containers/${c.Id}?force=1&v=1`).catch(() => undefined);
  if (d.proc.exitCode === null) {
    const exited = new Promise((r) => d.proc.once('exit', r));
    d.proc.kill('SIGTERM');
    const t = setTimeout(() => d.proc.kill('SIGKILL'), 20_000);
    await exited;
    clearTimeout(t);
  }
  const mounts = (await fsp.readFile('/proc/self/mountinfo', 'utf8'))
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((m) => m && m.startsWith(d.dir + '/'))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) spawnSync('umount', ['-l', m]);
  await fsp.rm(d.dir, { recursive: true, force: true });
}

async function removeImage(d: Daemon, name: string): Promise<void> {
  await api(d.socket, 'DELETE', `/images/${name}?force=1`);
}

async function main(): Promise<void> {
  const runsScale = Number(process.env.BENCH_RUNS ?? '1');
  // BENCH_FILTER=regex runs only the matching workloads
  const filter = process.env.BENCH_FILTER ? new RegExp(process.env.BENCH_FILTER) : undefined;
  const wants = (name: string) => !filter || filter.test(name);
  const big = wants('load 200 MB image') ? await bigImageArchive(CACHE) : '';
  const many = wants('images list') ? await manyImagesArchive(CACHE) : '';
  const workloads: Workload[] = [
    {
      name: 'load 200 MB image (5 layers)',
      once: (d) => load(d, big),
      after: (d) => removeImage(d, 'bench/big:latest'),
      runs: Math.max(3, 3 * runsScale),
    },
    {
      name: 'images list (100 images), API',
      setup: (d) => load(d, many),
      once: async (d) => {
        const r = await api(d.socket, 'GET', '/images/json');
        if (JSON.parse(r.body).length < 100) throw new Error(`${d.name}: expected 100 images`);
      },
      runs: Math.max(20, 20 * runsScale),
    },
  ];
  const busybox = path.resolve(
    ROOT,
    '..',
    'shared',
    'fixtures',
    'images',
    'busybox-1.38.0-musl-docker-archive.tar',
  );
  if (existsSync(busybox) && existsSync(DOCKER_CLI))
    workloads.push({
      name: 'docker run --rm --network none busybox true',
      setup: (d) => load(d, busybox),
      once: async (d) => {
        const r = spawnSync(DOCKER_CLI, [
          '-H',
          `unix://${d.socket}`,
          'run',
          '--rm',
          '--network',
          'none',
          'busybox:1.38.0-musl',
          'true',
        ]);
        if (r.status !== 0) throw new Error(`${d.name}: run failed: ${r.stderr}`);
      },
      runs: Math.max(10, 10 * runsScale),
    });
  if (existsSync(busybox) && existsSync(DOCKER_CLI))
    workloads.push(...containerWorkloads('busybox:1.38.0-musl', ROOT, (d) => load(d, busybox)));
  if (existsSync(busybox) && existsSync(DOCKER_CLI)) {
    // Both engines get the same client: the docker CLI with the classic builder.
    const ctxDir = await buildContext(CACHE);
    const build = (d: Daemon, extra: string[]) => {
      const r = spawnSync(
        DOCKER_CLI,
        [
          '-H',
          `unix://${d.socket}`,
          'build',
          '-q',
          '--network',
          'none',
          '-t',
          'bench/build',
          ...extra,
          ctxDir,
        ],
        { env: { ...process.env, DOCKER_BUILDKIT: '0' } },
      );
      if (r.status !== 0) throw new Error(`${d.name}: build failed: ${r.stderr}`);
    };
    workloads.push(
      {
        name: 'build ~8 steps, 20 MB + 200 files, cold',
        setup: (d) => load(d, busybox),
        once: async (d) => build(d, ['--no-cache']),
        runs: Math.max(3, 3 * runsScale),
      },
      {
        name: 'build ~8 steps, fully cached rebuild',
        setup: async (d) => build(d, []),
        once: async (d) => build(d, []),
        runs: Math.max(5, 5 * runsScale),
      },
    );
  }
  if (existsSync(busybox) && existsSync(DOCKER_CLI) && existsSync('/usr/bin/docker-compose'))
    workloads.push(...composeWorkloads(ROOT, DOCKER_CLI, (d) => load(d as Daemon, busybox)));
  const registry = existsSync('/usr/bin/docker-registry') ? await startRegistry() : undefined;
  const registryArchive = await bigImageArchive(CACHE, REGISTRY_IMAGE_MB, REGISTRY_IMAGE_LAYERS);
  if (registry) workloads.push(...registryWorkloads(registry, registryArchive));
  else console.log('docker-registry not installed: no push/pull workloads');
  if (existsSync(busybox) && existsSync(DOCKER_CLI))
    workloads.push(
      ...networkWorkloads<Daemon>(DOCKER_CLI, 'busybox:1.38.0-musl', runsScale, (d) => load(d, busybox)),
    );
  if (filter) workloads.splice(0, workloads.length, ...workloads.filter((w) => filter.test(w.name)));
  const dockerChainsBefore = dockerChainsExist();
  const daemons: Daemon[] = [await startBerthd()];
  // BENCH_NO_DOCKER=1 measures berth alone (several people benchmarking at once must not share one dockerd)
  const dockerd = process.env.BENCH_NO_DOCKER ? undefined : which('dockerd');
  try {
    if (dockerd) {
      makeDockerBridge();
      daemons.push(await startDockerd(dockerd));
    } else console.log('dockerd not on PATH: measuring berth only (apt-get install docker.io to compare)');
    const results: Record<string, Record<string, number>> = {};
    // BENCH_ONLY=<substring> runs the matching workloads only.
    const only = process.env.BENCH_ONLY;
    for (const w of workloads.filter((x) => !only || x.name.includes(only))) {
      results[w.name] = {};
      for (const d of daemons) {
        await w.setup?.(d);
        const times: number[] = [];
        for (let i = 0; i < w.runs; i++) {
          times.push(await timed(() => w.once(d)));
          await w.after?.(d);
        }
        await w.teardown?.(d);
        results[w.name][d.name] = median(times);
      }
    }
    const memory: Record<string, { idleMiB: number; perContainerMiB: number }> = {};
    if (existsSync(busybox) && (!only || 'memory'.includes(only)))
      for (const d of daemons) {
        await load(d, busybox);
        memory[d.name] = await memoryFigures(d, 'busybox:1.38.0-musl');
      }
    let serving: { hub: number; registry: number } | undefined;
    if (registry && (!only || 'serving'.includes(only)) && (!filter || filter.test('serving'))) {
      const b = daemons.find((x) => x.name === 'berth')!;
      await load(b, registryArchive);
      serving = await hubServingFigures(b, registry.host, ROOT);
    }
    console.log(
      '\nworkload'.padEnd(48) + 'berth (ms)'.padStart(12) + 'docker (ms)'.padStart(14) + 'ratio'.padStart(9),
    );
    for (const [name, r] of Object.entries(results)) {
      const ratio = r.docker ? (r.berth / r.docker).toFixed(2) : '-';
      console.log(
        name.padEnd(48) +
          r.berth.toFixed(1).padStart(12) +
          (r.docker?.toFixed(1) ?? '-').padStart(14) +
          ratio.padStart(9),
      );
    }
    for (const [label, key] of [
      ['memory: idle daemon RSS (MiB)', 'idleMiB'],
      ['memory: RSS per running container (MiB)', 'perContainerMiB'],
    ] as const) {
      const b = memory.berth?.[key];
      const k = memory.docker?.[key];
      if (b === undefined) continue;
      console.log(
        label.padEnd(40) +
          b.toFixed(1).padStart(12) +
          (k?.toFixed(1) ?? '-').padStart(14) +
          (k ? (b / k).toFixed(2) : '-').padStart(9),
      );
    }
    if (serving)
      console.log(
        `serving: 8 clients fetch all layers of a ${REGISTRY_IMAGE_MB} MB image: Berth Hub ${serving.hub.toFixed(0)} ms, reference registry ${serving.registry.toFixed(0)} ms, ratio ${(serving.hub / serving.registry).toFixed(2)}`,
      );
    // The compose target: berth compose on berthd against docker-compose 1.29 on Docker Engine.
    for (const op of ['up -d', 'down']) {
      const ours = results[`berth compose ${op} (3 services)`]?.berth;
      const theirs = results[`docker-compose ${op} (3 services)`]?.docker;
      if (ours && theirs)
        console.log(
          `compose ${op}: berth compose/berthd ${ours.toFixed(0)} ms vs docker-compose/dockerd ${theirs.toFixed(0)} ms, ratio ${(ours / theirs).toFixed(2)}`,
        );
    }
  } finally {
    for (const d of daemons) await stop(d);
    await registry?.stop();
    // without a dockerd of ours, Docker's chains (if any) belong to someone else
    cleanupNetworking(dockerChainsBefore || !dockerd);
  }
}

interface BenchRegistry {
  host: string;
  /** Restarts it on empty storage (a push then finds no blob to mount or skip). */
  reset(): Promise<void>;
  stop(): Promise<void>;
}

/** Debian's reference registry on a free loopback port (insecure for both engines by default). */
async function startRegistry(): Promise<BenchRegistry> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-registry-'));
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  await fsp.writeFile(
    path.join(dir, 'config.yml'),
    `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/storage\n  delete:\n    enabled: true\nhttp:\n  addr: ${host}\n`,
  );
  let proc: ChildProcess;
  const start = async () => {
    proc = spawn('/usr/bin/docker-registry', ['serve', path.join(dir, 'config.yml')], { stdio: 'ignore' });
    for (let i = 0; i < 100; i++) {
      const up = await new Promise<boolean>((resolve) => {
        http
          .get(`http://${host}/v2/`, (res) => {
            res.resume();
            resolve(res.statusCode === 200);
          })
          .on('error', () => resolve(false));
      });
      if (up) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('docker-registry did not start');
  };
  const halt = async () => {
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGTERM');
    await exited;
  };
  await start();
  return {
    host,
    async reset() {
      await halt();
      await fsp.rm(path.join(dir, 'storage'), { recursive: true, force: true });
      await start();
    },
    async stop() {
      await halt();
      await fsp.rm(dir, { recursive: true, force: true });
    },
  };
}

/** A JSON-message stream request (push, pull) that must end without an error message. */
async function streamed(d: Daemon, p: string): Promise<void> {
  const r = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = http.request(
      { socketPath: d.socket, path: p, method: 'POST', headers: { 'X-Registry-Auth': 'e30=' } },
      (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (data += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data }));
      },
    );
    req.on('error', reject);
    req.end();
  });
  if (r.status !== 200 || r.body.includes('"error"'))
    throw new Error(`${d.name} ${p}: ${r.status} ${r.body}`);
}

/**
 * Push of a ~130 MB, 5-layer image (redis-sized, as issue 4's targets say) to a new repository each run, and a cold pull of it (the image
 * and its layers removed between runs), both against the same local reference registry.
 */
function registryWorkloads(registry: BenchRegistry, archive: string): Workload[] {
  const reg = registry.host;
  const tag = async (d: Daemon, target: string) => {
    const [repo, t] = target.split(/:(?=[^:/]+$)/);
    const r = await api(
      d.socket,
      'POST',
      `/images/bench/big:latest/tag?repo=${encodeURIComponent(repo)}&tag=${t}`,
    );
    if (r.status !== 201) throw new Error(`${d.name}: tag failed: ${r.body}`);
  };
  return [
    {
      name: `cold pull ${REGISTRY_IMAGE_MB} MB image (${REGISTRY_IMAGE_LAYERS} layers)`,
      // Each engine pulls what it pushed itself (Docker gzips on push; Berth keeps blobs as stored).
      setup: async (d) => {
        await load(d, archive);
        const repo = `${reg}/bench/pull-${d.name}`;
        await tag(d, `${repo}:latest`);
        await streamed(d, `/images/${repo}/push?tag=latest`);
        await removeImage(d, 'bench/big:latest');
        await removeImage(d, `${repo}:latest`);
      },
      once: (d) =>
        streamed(
          d,
          `/images/create?fromImage=${encodeURIComponent(`${reg}/bench/pull-${d.name}`)}&tag=latest`,
        ),
      after: (d) => removeImage(d, `${reg}/bench/pull-${d.name}:latest`),
      runs: 3,
    },
    {
      name: `push ${REGISTRY_IMAGE_MB} MB image (${REGISTRY_IMAGE_LAYERS} layers), new repo`,
      setup: async (d) => {
        await load(d, archive);
        await registry.reset();
      },
      once: async (d) => {
        await tag(d, `${reg}/bench/push:latest`);
        await streamed(d, `/images/${reg}/bench/push/push?tag=latest`);
      },
      after: async (d) => {
        await removeImage(d, `${reg}/bench/push:latest`);
        await registry.reset();
      },
      runs: 3,
    },
  ];
}

if (existsSync(path.join(ROOT, 'bin/berthd.js'))) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}

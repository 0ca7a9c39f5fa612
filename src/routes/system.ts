import { accessSync } from 'node:fs';
import * as os from 'node:os';
import { registryInfo } from '../distribution/hosts.js';
import type { Engine } from '../engine/engine.js';
import type { EngineEvent } from '../engine/events/events.js';
import {
  API_VERSION,
  checkFilterKeys,
  type Ctx,
  MIN_API_VERSION,
  parseFilters,
  type Router,
  sendJson,
  timeParam,
} from './http.js';

export const BERTH_VERSION = '0.1.0';

export function systemRoutes(router: Router, engine: Engine): void {
  const ping = (ctx: Ctx) => {
    const body = ctx.req.method === 'HEAD' ? '' : 'OK';
    ctx.res.writeHead(200, {
      'Cache-Control': 'no-cache, no-store, must-revalidate',
      'Content-Length': Buffer.byteLength(body),
      'Content-Type': 'text/plain; charset=utf-8',
      Pragma: 'no-cache',
    });
    ctx.res.end(body);
  };
  router.add('GET', '/_ping', ping);
  router.add('HEAD', '/_ping', ping);

  router.add('GET', '/version', (ctx) => sendJson(ctx.res, 200, versionBody()));

  router.add('GET', '/info', (ctx) => sendJson(ctx.res, 200, infoBody(engine)));

  router.add('GET', '/events', async (ctx) => {
    const f = parseFilters(ctx.query);
    checkFilterKeys(f, [
      'container',
      'event',
      'image',
      'label',
      'type',
      'daemon',
      'network',
      'volume',
      'scope',
    ]);
    const sinceSec = timeParam(ctx.query.get('since'));
    const untilSec = timeParam(ctx.query.get('until'));
    const keep = (ev: EngineEvent) => eventMatches(ev, f, engine);
    const res = ctx.res;
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.flushHeaders();
    if (sinceSec !== undefined)
      for (const ev of engine.events.history(sinceSec, untilSec))
        if (keep(ev)) res.write(JSON.stringify(ev) + '\n');
    if (untilSec !== undefined && untilSec * 1000 <= Date.now()) {
      res.end();
      return;
    }
    await new Promise<void>((resolve) => {
      const off = engine.events.subscribe((ev) => {
        if (keep(ev)) res.write(JSON.stringify(ev) + '\n');
      });
      const timer =
        untilSec !== undefined
          ? setTimeout(() => res.end(), Math.max(0, untilSec * 1000 - Date.now()))
          : undefined;
      const done = () => {
        off();
        if (timer) clearTimeout(timer);
        resolve();
      };
      res.on('close', done);
      res.on('finish', done);
    });
  });
}

function versionBody(): Record<string, unknown> {
  const details = {
    ApiVersion: API_VERSION,
    Arch: goArch(),
    BuildTime: '',
    Experimental: 'false',
    GitCommit: '',
    GoVersion: `node${process.versions.node}`,
    KernelVersion: os.release(),
    MinAPIVersion: MIN_API_VERSION,
    Os: 'linux',
  };
  return {
    Platform: { Name: 'Berth' },
    Components: [{ Name: 'Engine', Version: BERTH_VERSION, Details: details }],
    Version: BERTH_VERSION,
    ApiVersion: API_VERSION,
    MinAPIVersion: MIN_API_VERSION,
    GitCommit: '',
    GoVersion: `node${process.versions.node}`,
    Os: 'linux',
    Arch: goArch(),
    KernelVersion: os.release(),
    BuildTime: '',
  };
}

export function goArch(): string {
  return process.arch === 'x64' ? 'amd64' : process.arch;
}

function infoBody(engine: Engine): Record<string, unknown> {
  const cfg = engine.config;
  const c = engine.containers.counts();
  return {
    ID: engine.id,
    Containers: c.total,
    ContainersRunning: c.running,
    ContainersPaused: c.paused,
    ContainersStopped: c.stopped,
    Images: engine.images.count,
    Driver: 'overlay2',
    DriverStatus: [
      ['Backing Filesystem', 'extfs'],
      ['Supports d_type', 'true'],
      ['Native Overlay Diff', 'true'],
    ],
    Plugins: {
      Volume: ['local'],
      Network: ['bridge', 'host', 'null'],
      Authorization: null,
      Log: ['json-file'],
    },
    MemoryLimit: true,
    SwapLimit: true,
    KernelMemory: false,
    KernelMemoryTCP: false,
    CpuCfsPeriod: true,
    CpuCfsQuota: true,
    CPUShares: true,
    CPUSet: true,
    PidsLimit: true,
    IPv4Forwarding: true,
    BridgeNfIptables: true,
    BridgeNfIp6tables: true,
    Debug: cfg.debug,
    NFd: 0,
    OomKillDisable: true,
    NGoroutines: 0,
    SystemTime: new Date().toISOString(),
    LoggingDriver: 'json-file',
    CgroupDriver: 'cgroupfs',
    CgroupVersion: cgroupVersion(),
    NEventsListener: engine.events.listenerCount,
    KernelVersion: os.release(),
    OperatingSystem: 'Berth on Linux',
    OSVersion: '',
    OSType: 'linux',
    Architecture: os.machine(),
    IndexServerAddress: 'https://index.docker.io/v1/',
    RegistryConfig: registryInfo({ mirrors: cfg.registryMirrors, insecure: cfg.insecureRegistries }),
    NCPU: os.cpus().length,
    MemTotal: os.totalmem(),
    GenericResources: null,
    DockerRootDir: cfg.dataRoot,
    HttpProxy: process.env.HTTP_PROXY ?? '',
    HttpsProxy: process.env.HTTPS_PROXY ?? '',
    NoProxy: process.env.NO_PROXY ?? '',
    Name: os.hostname(),
    Labels: cfg.labels,
    ExperimentalBuild: false,
    ServerVersion: BERTH_VERSION,
    Runtimes: { runc: { path: 'runc' } },
    DefaultRuntime: 'runc',
    Swarm: {
      NodeID: '',
      NodeAddr: '',
      LocalNodeState: 'inactive',
      ControlAvailable: false,
      Error: '',
      RemoteManagers: null,
    },
    LiveRestoreEnabled: true,
    Isolation: '',
    InitBinary: 'docker-init',
    ContainerdCommit: { ID: '', Expected: '' },
    RuncCommit: { ID: '', Expected: '' },
    InitCommit: { ID: '', Expected: '' },
    SecurityOptions: ['name=seccomp,profile=default'],
    Warnings: [],
  };
}

let cachedCgroupVersion: string | undefined;
function cgroupVersion(): string {
  if (cachedCgroupVersion) return cachedCgroupVersion;
  try {
    // On a pure v2 host /sys/fs/cgroup itself is cgroup2 and has cgroup.controllers.
    accessSync('/sys/fs/cgroup/cgroup.controllers');
    cachedCgroupVersion = '2';
  } catch {
    cachedCgroupVersion = '1';
  }
  return cachedCgroupVersion;
}

/** Docker's event filters: values of one key are alternatives, different keys must all match. */
function eventMatches(ev: EngineEvent, f: Record<string, string[]>, engine: Engine): boolean {
  const a = ev.Actor.Attributes;
  if (f.type && !f.type.includes(ev.Type)) return false;
  if (f.event && !f.event.some((e) => e === ev.Action || ev.Action.startsWith(`${e}:`))) return false;
  if (f.container) {
    if (ev.Type !== 'container') return false;
    if (!f.container.some((c) => ev.Actor.ID.startsWith(c) || a.name === c)) return false;
  }
  if (f.image) {
    const ids = f.image.map((i) => engine.images.tryResolve(i)?.record.id);
    if (
      !f.image.some(
        (i, k) =>
          a.image === i ||
          a.name === i ||
          ev.Actor.ID === ids[k] ||
          (ev.Type === 'container' &&
            ids[k] !== undefined &&
            engine.containers.tryGet(ev.Actor.ID)?.imageId === ids[k]),
      )
    )
      return false;
  }
  if (
    f.label &&
    !f.label.every((l) => {
      const eq = l.indexOf('=');
      return eq < 0 ? l in a : a[l.slice(0, eq)] === l.slice(eq + 1);
    })
  )
    return false;
  return true;
}

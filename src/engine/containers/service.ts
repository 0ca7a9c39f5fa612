import { randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  promises as fsp,
  readdirSync,
  rmdirSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { MS_NODEV, MS_NOEXEC, MS_NOSUID, native } from '../../common/native.js';
import * as path from 'node:path';
import { readJsonIfExists, writeJsonAtomic } from '../../common/atomic.js';
import type { Digest } from '../../common/digest.js';
import { treeSize } from '../../common/treesize.js';
import { BerthError, conflict, errnoCode, invalidArgument, notFound } from '../../common/errors.js';
import { log } from '../../common/log.js';
import type { EventBus } from '../events/events.js';
import type { NetworkService } from '../network/service.js';
import type { NetnsMode } from '../network/network.js';
import type { ContentStore } from '../content/content.js';
import { applyChanges } from '../images/changes.js';
import type { ImageStore } from '../images/store.js';
import { type Change, changes, diffTar } from '../snapshots/diff.js';
import { parseReference } from '../../common/reference.js';
import { conmonAlive, type ConmonRuntime, RuntimeError } from '../runtime/conmon.js';
import type { AttachConnection, Mount, OutputStream, Resources } from '../runtime/runtime.js';
import { buildSpec, limitResources } from '../runtime/spec.js';
import type { Snapshotter } from '../snapshots/snapshots.js';
import { ociMounts, rootfsPropagation } from '../volumes/mounts.js';
import type { VolumeService } from '../volumes/service.js';
import { type ContainerRecord, type HostConfig, newState, type Status, ZERO_TIME } from './containers.js';
import type { ContainerConfig as ImageContainerConfig } from '../images/manifest.js';
import {
  commandOf,
  mergeEnv,
  mergeHealthcheck,
  parseConfig,
  parseHostConfig,
  parseUpdate,
} from './create.js';
import {
  filterEntries,
  followEntries,
  type LogEntry,
  type LogOptions,
  readEntries,
  readEntriesChunked,
} from './logs.js';
import { LogRotator, logFiles, rotationPolicy } from './logrotate.js';
import { resolveUser } from './user.js';
import { mountPlaceholders } from '../volumes/mounts.js';

export interface ContainerDeps {
  images: ImageStore;
  content: ContentStore;
  snapshots: Snapshotter;
  runtime: ConmonRuntime;
  events: EventBus;
  network: NetworkService;
  volumes: VolumeService;
  dataRoot: string;
  execRoot: string;
  /** Absolute cgroup parent for containers, e.g. /berth. */
  cgroupParent: string;
}

/** Someone attached to a container's stdio (docker attach, docker run). */
export interface AttachClient {
  onOutput(stream: OutputStream, data: Buffer): void;
  onEnd(): void;
}

export type WaitCondition = 'not-running' | 'next-exit' | 'removed';

interface Live {
  conn?: AttachConnection;
  clients: Set<AttachClient>;
  /** stdin that arrived before the process existed */
  pendingStdin: Buffer[];
  pendingEof: boolean;
  exitWaiters: ((code: number) => void)[];
  removeWaiters: (() => void)[];
  cancelWatch?: () => void;
  restartTimer?: NodeJS.Timeout;
  /** A restart-policy start in progress: stop waits for it, so it cannot slip past. */
  restarting?: Promise<boolean>;
}

const NAME_RE = /^\/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;
const SIGNALS: Record<string, number> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGILL: 4,
  SIGTRAP: 5,
  SIGABRT: 6,
  SIGBUS: 7,
  SIGFPE: 8,
  SIGKILL: 9,
  SIGUSR1: 10,
  SIGSEGV: 11,
  SIGUSR2: 12,
  SIGPIPE: 13,
  SIGALRM: 14,
  SIGTERM: 15,
  SIGSTKFLT: 16,
  SIGCHLD: 17,
  SIGCONT: 18,
  SIGSTOP: 19,
  SIGTSTP: 20,
  SIGTTIN: 21,
  SIGTTOU: 22,
  SIGURG: 23,
  SIGXCPU: 24,
  SIGXFSZ: 25,
  SIGVTALRM: 26,
  SIGPROF: 27,
  SIGWINCH: 28,
  SIGIO: 29,
  SIGPWR: 30,
  SIGSYS: 31,
};

/** `TERM`, `SIGTERM`, `15` -> `SIGTERM`; InvalidArgument otherwise. */
export function parseSignal(s: string): string {
  const up = s.trim().toUpperCase();
  if (/^\d+$/.test(up)) {
    const n = Number(up);
    const name = Object.keys(SIGNALS).find((k) => SIGNALS[k] === n);
    if (name) return name;
    if (n >= 34 && n <= 64) return up;
  }
  const name = up.startsWith('SIG') ? up : `SIG${up}`;
  if (name in SIGNALS) return name;
  throw invalidArgument(`Invalid signal: ${s}`);
}

export class ContainerService {
  private readonly records = new Map<string, ContainerRecord>();
  private readonly names = new Map<string, string>();
  private readonly live = new Map<string, Live>();
  /** The last write of each record: writes of one record run one after the other. */
  private readonly saving = new Map<string, Promise<void>>();
  private readonly containersDir: string;
  private readonly bundlesDir: string;
  private readonly rotator = new LogRotator((id) => {
    const rec = this.records.get(id);
    const policy = rec?.state.Running ? rotationPolicy(rec.hostConfig.LogConfig.Config) : undefined;
    if (!policy) return undefined;
    return { file: this.logPath(id), policy, reopen: () => this.d.runtime.reopenLog(this.bundle(id)) };
  });

  constructor(private readonly d: ContainerDeps) {
    this.containersDir = path.join(d.dataRoot, 'containers');
    this.bundlesDir = path.join(d.execRoot, 'containers');
  }

  private dir(id: string): string {
    return path.join(this.containersDir, id);
  }
  bundle(id: string): string {
    return path.join(this.bundlesDir, id);
  }
  /** The container's cgroup, relative to each hierarchy's root. */
  cgroupOf(id: string): string {
    return `${this.d.cgroupParent}/${id}`;
  }
  logPath(id: string): string {
    return path.join(this.dir(id), 'container.log');
  }

  async init(): Promise<void> {
    await fsp.mkdir(this.containersDir, { recursive: true, mode: 0o700 });
    await fsp.mkdir(this.bundlesDir, { recursive: true, mode: 0o700 });
    for (const id of await fsp.readdir(this.containersDir)) {
      const rec = await readJsonIfExists<ContainerRecord>(path.join(this.dir(id), 'config.json')).catch(
        () => undefined,
      );
      if (!rec || rec.id !== id) {
        log.warn('removing unreadable container state', { id });
        await fsp.rm(this.dir(id), { recursive: true, force: true });
        continue;
      }
      this.records.set(id, rec);
      this.names.set(rec.name, id);
    }
    await this.d.volumes.reconcile(
      [...this.records.values()].map((r) => ({ id: r.id, running: r.state.Running, mounts: r.mounts ?? [] })),
    );
    for (const rec of this.records.values()) await this.recover(rec);
    this.rotator.start();
  }

  /** After a daemon restart: reattach to running containers, record exits that happened meanwhile. */
  private async recover(rec: ContainerRecord): Promise<void> {
    if (!rec.state.Running) {
      await this.d.network.tearDown(rec.id).catch(() => undefined);
      if (rec.hostConfig.AutoRemove && rec.state.Status === 'exited')
        await this.remove(rec.id, { force: true, volumes: true });
      else if (
        ['always'].includes(rec.hostConfig.RestartPolicy.Name) ||
        (rec.hostConfig.RestartPolicy.Name === 'unless-stopped' && !rec.stoppedByUser)
      )
        if (!rec.stoppedByUser)
          void this.start(rec.id).catch((err: unknown) =>
            log.warn('restart at daemon start failed', { id: rec.id, error: String(err) }),
          );
      return;
    }
    const bundle = this.bundle(rec.id);
    const code = this.d.runtime.exitCode(rec.id, bundle);
    if (code !== undefined) {
      await this.onExit(rec.id, rec.generation, code);
      return;
    }
    if (!conmonAlive(bundle)) {
      // conmon was killed: the exit code is lost (state matrix P18).
      await this.d.runtime.kill(rec.id, 'SIGKILL').catch(() => undefined);
      await this.onExit(rec.id, rec.generation, 137, 'container monitor died; exit code unknown');
      return;
    }
    const live = this.liveOf(rec.id);
    try {
      live.conn = await this.d.runtime.attach(bundle);
      this.wireConnection(rec.id, live.conn);
    } catch (err) {
      log.warn('could not reattach', { id: rec.id, error: String(err) });
    }
    this.watchExit(rec);
  }

  /** Event attributes, as Docker sends them: the container's labels, image and name. */
  private attrs(rec: ContainerRecord): Record<string, string> {
    return { ...rec.config.Labels, image: rec.image, name: rec.name };
  }

  private liveOf(id: string): Live {
    let l = this.live.get(id);
    if (!l) {
      l = { clients: new Set(), pendingStdin: [], pendingEof: false, exitWaiters: [], removeWaiters: [] };
      this.live.set(id, l);
    }
    return l;
  }

  /** Docker's SizeRw (the writable layer's bytes) and SizeRootFs (image plus writable layer). */
  async sizes(ref: string): Promise<{ SizeRw: number; SizeRootFs: number }> {
    const rec = this.get(ref);
    const img = this.d.images.tryResolve(rec.imageId);
    const spec = await this.d.snapshots.prepare(rec.id, img?.record.chainId ?? null);
    const rw = await treeSize(spec.upperDir);
    return { SizeRw: rw, SizeRootFs: (img?.record.size ?? 0) + rw };
  }

  /** Persists a record after another room (health checks) changed its state. */
  async saveState(id: string): Promise<void> {
    const rec = this.records.get(id);
    if (rec) await this.save(rec);
  }

  /**
   * Writes the record. Writes of one record are queued, so the last state asked for is the one on
   * disk (a start's write and its exit's can be under way at once), and `remove` waits for them.
   */
  private save(rec: ContainerRecord): Promise<void> {
    const write = (this.saving.get(rec.id) ?? Promise.resolve())
      .catch(() => undefined)
      .then(() => writeJsonAtomic(path.join(this.dir(rec.id), 'config.json'), rec));
    this.saving.set(rec.id, write);
    const forget = () => {
      if (this.saving.get(rec.id) === write) this.saving.delete(rec.id);
    };
    write.then(forget, forget);
    return write;
  }

  get(ref: string): ContainerRecord {
    const r = this.tryGet(ref);
    if (!r) throw notFound(`No such container: ${ref}`);
    return r;
  }

  tryGet(ref: string): ContainerRecord | undefined {
    if (!ref) return undefined;
    const full = this.records.get(ref);
    if (full) return full;
    const byName = this.names.get(ref.startsWith('/') ? ref.slice(1) : ref);
    if (byName) return this.records.get(byName);
    if (/^[a-f0-9]+$/.test(ref)) {
      const matches = [...this.records.keys()].filter((id) => id.startsWith(ref));
      if (matches.length > 1) throw invalidArgument(`multiple IDs found with provided prefix: ${ref}`);
      if (matches.length === 1) return this.records.get(matches[0]);
    }
    return undefined;
  }

  list(): ContainerRecord[] {
    return [...this.records.values()];
  }

  /** Which containers use an image (for rmi). */
  imageUsage(imageId: Digest): { running: string[]; stopped: string[] } {
    const running: string[] = [];
    const stopped: string[] = [];
    for (const r of this.records.values())
      if (r.imageId === imageId) (r.state.Running ? running : stopped).push(r.id);
    return { running, stopped };
  }

  counts(): { total: number; running: number; paused: number; stopped: number } {
    let running = 0;
    let paused = 0;
    for (const r of this.records.values()) {
      if (r.state.Paused) paused++;
      else if (r.state.Running) running++;
    }
    return { total: this.records.size, running, paused, stopped: this.records.size - running - paused };
  }

  async create(body: unknown, name?: string): Promise<{ Id: string; Warnings: string[] }> {
    const config = parseConfig(body);
    const hostConfig = parseHostConfig((body as { HostConfig?: unknown }).HostConfig);
    if (!config.Image) throw invalidArgument('config.Image: image name is required');
    if (name !== undefined && name !== '' && !NAME_RE.test(name))
      throw invalidArgument(`Invalid container name (${name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
    const img = this.d.images.resolve(config.Image);
    const { path: cmdPath, args } = commandOf(config, img);
    const id = randomBytes(32).toString('hex');
    const cname = name ? name.replace(/^\//, '') : this.generateName();
    const taken = this.names.get(cname);
    if (taken)
      throw conflict(
        `Conflict. The container name "/${cname}" is already in use by container "${taken}". You have to remove (or rename) that container to be able to reuse that name.`,
      );
    const ic = img.config.config ?? {};
    const mountPlan = this.d.volumes.plan(
      hostConfig,
      [...Object.keys(ic.Volumes ?? {}), ...Object.keys(config.Volumes ?? {})],
      (ref) => this.get(ref).mounts ?? [],
    );
    const env = mergeEnv(ic.Env ?? [], config.Env);
    if (!env.some((e) => e.startsWith('PATH=')))
      env.unshift('PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
    const rec: ContainerRecord = {
      id,
      name: cname,
      created: new Date().toISOString(),
      image: config.Image,
      imageId: img.record.id,
      path: cmdPath,
      args,
      config: {
        ...config,
        Hostname: config.Hostname || id.slice(0, 12),
        Env: env,
        Cmd: config.Cmd ?? (config.Entrypoint ? null : (ic.Cmd ?? null)),
        Entrypoint: config.Entrypoint ?? ic.Entrypoint ?? null,
        WorkingDir: config.WorkingDir || ic.WorkingDir || '',
        User: config.User || ic.User || '',
        Labels: { ...(ic.Labels ?? {}), ...config.Labels },
        StopSignal: config.StopSignal ?? ic.StopSignal,
        ExposedPorts: { ...(ic.ExposedPorts ?? {}), ...(config.ExposedPorts ?? {}) },
        Healthcheck: mergeHealthcheck(ic.Healthcheck, config.Healthcheck),
      },
      hostConfig,
      state: newState(),
      restartCount: 0,
      stoppedByUser: false,
      generation: 0,
    };
    this.names.set(cname, id);
    try {
      await fsp.mkdir(this.dir(id), { recursive: true, mode: 0o700 });
      // Independent: side by side (settled both, so that the clean-up below finds whichever was made).
      const made = await Promise.allSettled([
        this.d.network.prepare(id, cname, body),
        this.d.snapshots.prepare(id, img.record.chainId),
      ]);
      for (const r of made) if (r.status === 'rejected') throw r.reason;
      rec.mounts = await this.d.volumes.attach(id, mountPlan);
      await this.save(rec);
    } catch (err) {
      this.names.delete(cname);
      await this.d.network.forget(id).catch(() => undefined);
      await this.d.volumes.detach(id, rec.mounts ?? [], true);
      await this.d.snapshots.removeActive(id).catch(() => undefined);
      await fsp.rm(this.dir(id), { recursive: true, force: true });
      throw err;
    }
    this.records.set(id, rec);
    this.d.events.publish('container', 'create', id, this.attrs(rec));
    return { Id: id, Warnings: [] };
  }

  private generateName(): string {
    const adjectives = [
      'brave',
      'calm',
      'eager',
      'gentle',
      'happy',
      'jolly',
      'keen',
      'lucid',
      'merry',
      'nimble',
      'proud',
      'quiet',
      'swift',
      'tidy',
      'vivid',
      'witty',
    ];
    const nouns = [
      'albatross',
      'barge',
      'buoy',
      'capstan',
      'dinghy',
      'ferry',
      'harbor',
      'keel',
      'lighthouse',
      'mooring',
      'pier',
      'quay',
      'rudder',
      'schooner',
      'tugboat',
      'wharf',
    ];
    for (;;) {
      const b = randomBytes(2);
      const n = `${adjectives[b[0] % adjectives.length]}_${nouns[b[1] % nouns.length]}`;
      const candidate = this.names.has(n) ? `${n}${randomBytes(1)[0]}` : n;
      if (!this.names.has(candidate)) return candidate;
    }
  }

  /** Starts a created or exited container. Returns false when it was already running (304). */
  async start(ref: string): Promise<boolean> {
    const rec = this.get(ref);
    if (rec.state.Running) return false;
    if (rec.state.Status === 'removing')
      throw conflict(`container ${rec.id} is marked for removal and cannot be started`);
    const live = this.liveOf(rec.id);
    if (live.restartTimer) clearTimeout(live.restartTimer);
    const bundle = this.bundle(rec.id);
    const rootfs = path.join(bundle, 'rootfs');
    await fsp.mkdir(bundle, { recursive: true, mode: 0o700 });
    try {
      await this.d.snapshots.unmount(rootfs);
      await this.d.snapshots.mount(rec.id, rootfs);
      await this.d.network.ensurePrepared(rec.id, rec.name, { ...rec.config, HostConfig: rec.hostConfig });
      const netns = await this.d.network.setUp(rec.id);
      await this.d.volumes.setup(rec.id, rec.mounts ?? [], rootfs);
      const spec = this.specFor(rec, bundle, rootfs, netns);
      const generation = ++rec.generation;
      rec.stoppedByUser = false;
      const created = await this.d.runtime.create(rec.id, bundle, spec, {
        terminal: rec.config.Tty,
        stdin: rec.config.OpenStdin,
        stdinOnce: rec.config.StdinOnce,
        logPath: this.logPath(rec.id),
        consoleSize: rec.hostConfig.ConsoleSize[0]
          ? { rows: rec.hostConfig.ConsoleSize[0], cols: rec.hostConfig.ConsoleSize[1] }
          : undefined,
      });
      live.conn = await this.d.runtime.attach(bundle);
      this.wireConnection(rec.id, live.conn);
      for (const b of live.pendingStdin.splice(0)) live.conn.write(b);
      if (live.pendingEof) {
        live.conn.endStdin();
        live.pendingEof = false;
      }
      // Running before `runc start`: a process that exits at once must find its exit recorded
      // on top of this state, not overwritten by it.
      Object.assign(rec.state, {
        Status: 'running' as Status,
        Running: true,
        Paused: false,
        Restarting: false,
        OOMKilled: false,
        Dead: false,
        Pid: created.pid,
        ExitCode: 0,
        Error: '',
        StartedAt: new Date().toISOString(),
      });
      this.watchExit(rec);
      await this.d.runtime.start(rec.id, created.pid);
      this.d.events.publish('container', 'start', rec.id, this.attrs(rec));
      // A process that exited at once may be recorded (or removed) already: its exit wrote the record.
      if (rec.state.Running && rec.generation === generation) await this.save(rec);
      return true;
    } catch (err) {
      await this.cleanupRun(rec).catch(() => undefined);
      const msg = err instanceof Error ? err.message : String(err);
      const code = /executable file not found|no such file or directory/.test(msg)
        ? 127
        : /permission denied|is a directory/.test(msg)
          ? 126
          : 128;
      // Like Docker: a container that never ran stays "created", with the exit code and error recorded.
      Object.assign(rec.state, {
        Status: (rec.state.StartedAt === ZERO_TIME ? 'created' : 'exited') as Status,
        Running: false,
        Pid: 0,
        ExitCode: code,
        Error: msg,
        FinishedAt: new Date().toISOString(),
      });
      await this.save(rec);
      for (const c of live.clients) c.onEnd();
      live.clients.clear();
      this.notifyExit(rec.id, code);
      // Like Docker: an auto-remove container that could not start is removed (clients wait for it).
      if (rec.hostConfig.AutoRemove)
        await this.remove(rec.id, { force: true }).catch((e: unknown) =>
          log.warn('auto-remove after a failed start failed', { id: rec.id, error: String(e) }),
        );
      if (err instanceof RuntimeError) {
        const wrapped = `failed to create task for container: OCI runtime create failed: ${msg}: unknown`;
        throw code === 128 ? new BerthError('Internal', wrapped) : invalidArgument(wrapped);
      }
      throw err;
    }
  }

  private specFor(rec: ContainerRecord, bundle: string, rootfs: string, netns: NetnsMode) {
    const h = rec.hostConfig;
    const user = resolveUser(rootfs, rec.config.User, (h.GroupAdd as string[] | null) ?? []);
    const env = [...rec.config.Env];
    if (!env.some((e) => e.startsWith('HOSTNAME='))) env.push(`HOSTNAME=${rec.config.Hostname}`);
    if (!env.some((e) => e.startsWith('HOME='))) env.push(`HOME=${user.home}`);
    if (rec.config.Tty && !env.some((e) => e.startsWith('TERM='))) env.push('TERM=xterm');
    this.writeEtcFiles(rec, bundle);
    const security = h.SecurityOpt ?? [];
    let seccomp: 'default' | 'unconfined' | { profile: unknown } = 'default';
    let noNewPrivileges = false;
    for (const opt of security) {
      const [k, v] = opt.includes('=') ? opt.split(/=(.*)/s, 2) : opt.split(/:(.*)/s, 2);
      if (k === 'no-new-privileges') noNewPrivileges = v === undefined || v === 'true';
      else if (k === 'seccomp')
        seccomp = v === 'unconfined' ? 'unconfined' : { profile: JSON.parse(v) as unknown };
      else if (k === 'label' || k === 'apparmor') continue;
      else throw invalidArgument(`invalid --security-opt: ${opt}`);
    }
    const mounts: Mount[] = [
      {
        destination: '/etc/hostname',
        type: 'bind',
        source: path.join(bundle, 'hostname'),
        options: ['rbind', 'rprivate'],
      },
      {
        destination: '/etc/hosts',
        type: 'bind',
        source: path.join(bundle, 'hosts'),
        options: ['rbind', 'rprivate'],
      },
      {
        destination: '/etc/resolv.conf',
        type: 'bind',
        source: path.join(bundle, 'resolv.conf'),
        options: ['rbind', 'rprivate'],
      },
      ...Object.entries(h.Tmpfs ?? {}).map(([dest, opts]) => ({
        destination: dest,
        type: 'tmpfs',
        source: 'tmpfs',
        options: ['nosuid', 'nodev', 'noexec', ...(opts ? opts.split(',') : [])],
      })),
      ...ociMounts(rec.mounts ?? []),
    ];
    const joined = (mode: string, kind: 'pid' | 'ipc'): 'private' | 'host' | { path: string } => {
      if (mode === 'host') return 'host';
      if (!mode.startsWith('container:')) return 'private';
      const other = this.get(mode.slice('container:'.length));
      if (!other.state.Running)
        throw conflict(`cannot join ${kind} namespace of a non running container: ${other.id}`);
      if (kind === 'ipc') {
        if (other.hostConfig.IpcMode !== 'shareable')
          throw invalidArgument(
            `container ${other.id}: non-shareable IPC (hint: use IpcMode:shareable for the donor container)`,
          );
        mounts.push(shmBind(path.join(this.bundle(other.id), 'shm')));
      }
      return { path: `/proc/${other.state.Pid}/ns/${kind}` };
    };
    if (h.IpcMode === 'shareable') {
      // A host-side tmpfs, so that containers joining this IPC namespace can bind the same /dev/shm.
      const shm = path.join(bundle, 'shm');
      mkdirSync(shm, { recursive: true, mode: 0o700 });
      if (!isMountPoint(shm))
        native.mount('shm', shm, 'tmpfs', MS_NOSUID | MS_NODEV | MS_NOEXEC, `mode=1777,size=${h.ShmSize}`);
      mounts.push(shmBind(shm));
    }
    const pidNs = joined(h.PidMode, 'pid');
    const ipcNs = joined(h.IpcMode, 'ipc');
    let args = [rec.path, ...rec.args];
    if (h.Init) {
      mounts.push({ destination: INIT_PATH, type: 'bind', source: initBinary(), options: ['bind', 'ro'] });
      args = [INIT_PATH, '--', ...args];
    }
    const spec = buildSpec({
      id: rec.id,
      rootfs,
      readonlyRootfs: h.ReadonlyRootfs,
      args,
      env,
      cwd: rec.config.WorkingDir || '/',
      user,
      hostname: rec.config.Hostname,
      terminal: rec.config.Tty,
      namespaces: {
        pid: pidNs,
        ipc: ipcNs,
        uts: h.UTSMode === 'host' ? 'host' : 'private',
        network: netns.kind === 'path' ? { path: netns.path } : netns.kind,
      },
      mounts,
      resources: resourcesOf(h),
      devices: (h.Devices ?? []).map((d) => ({
        hostPath: d.PathOnHost,
        path: d.PathInContainer,
        permissions: d.CgroupPermissions,
      })),
      ulimits: (h.Ulimits ?? []).map((u) => ({ name: u.Name, soft: u.Soft, hard: u.Hard })),
      oomScoreAdj: h.OomScoreAdj || undefined,
      capAdd: h.CapAdd ?? undefined,
      capDrop: h.CapDrop ?? undefined,
      privileged: h.Privileged,
      noNewPrivileges,
      seccomp,
      shmSize: h.ShmSize,
      cgroupsPath: `${this.d.cgroupParent}/${rec.id}`,
    });
    const propagation = rootfsPropagation(rec.mounts ?? []);
    if (propagation) (spec.linux as Record<string, unknown>).rootfsPropagation = propagation;
    return spec;
  }

  private writeEtcFiles(rec: ContainerRecord, bundle: string): void {
    const net = this.d.network.etcFiles(rec.id);
    const files: Record<string, string> = {
      hostname: `${rec.config.Hostname}\n`,
      hosts: net.hosts,
      'resolv.conf': net.resolvConf,
    };
    for (const [name, content] of Object.entries(files)) writeFileSync(path.join(bundle, name), content);
  }

  private wireConnection(id: string, conn: AttachConnection): void {
    const live = this.liveOf(id);
    conn.onData((stream, data) => {
      for (const c of live.clients) c.onOutput(stream, data);
    });
    conn.onEnd(() => {
      if (live.conn !== conn) return;
      live.conn = undefined;
      for (const c of live.clients) c.onEnd();
      live.clients.clear();
    });
  }

  private watchExit(rec: ContainerRecord): void {
    const live = this.liveOf(rec.id);
    live.cancelWatch?.();
    const gen = rec.generation;
    const w = this.d.runtime.waitExit(rec.id, this.bundle(rec.id));
    live.cancelWatch = w.cancel;
    this.rotator.watch(rec.id);
    w.promise.then(
      (code) => this.onExit(rec.id, gen, code),
      (err: unknown) => this.onExit(rec.id, gen, 137, String(err)),
    );
  }

  private async onExit(id: string, generation: number, code: number, error = ''): Promise<void> {
    const rec = this.records.get(id);
    if (!rec || rec.generation !== generation || rec.state.Status === 'exited') return;
    this.rotator.unwatch(id);
    const bundle = this.bundle(id);
    const oom = existsSync(path.join(bundle, 'oom'));
    Object.assign(rec.state, {
      Status: 'exited' as Status,
      Running: false,
      Paused: false,
      Restarting: false,
      Pid: 0,
      ExitCode: code,
      Error: error,
      OOMKilled: oom,
      FinishedAt: new Date().toISOString(),
    });
    // Let the attach socket drain before the streams close.
    await this.cleanupRun(rec, !error).catch((err: unknown) =>
      log.warn('cleanup after exit failed', { id, error: String(err) }),
    );
    // An auto-remove container's record is deleted next: no write for it (a crash meanwhile finds
    // the exit again at the daemon's start and removes the container then).
    if (!rec.hostConfig.AutoRemove) await this.save(rec).catch(() => undefined);
    if (oom) this.d.events.publish('container', 'oom', id, this.attrs(rec));
    this.d.events.publish('container', 'die', id, { ...this.attrs(rec), exitCode: String(code) });
    this.notifyExit(id, code);
    if (rec.hostConfig.AutoRemove) {
      await this.remove(id, { force: true, volumes: true }).catch((err: unknown) =>
        log.warn('auto-remove failed', { id, error: String(err) }),
      );
      return;
    }
    this.maybeRestart(rec, code);
  }

  private maybeRestart(rec: ContainerRecord, code: number): void {
    const p = rec.hostConfig.RestartPolicy;
    const want =
      !rec.stoppedByUser &&
      (p.Name === 'always' ||
        p.Name === 'unless-stopped' ||
        (p.Name === 'on-failure' &&
          code !== 0 &&
          (p.MaximumRetryCount === 0 || rec.restartCount < p.MaximumRetryCount)));
    if (!want) return;
    const delay = Math.min(100 * 2 ** Math.min(rec.restartCount, 10), 60_000);
    rec.state.Restarting = true;
    rec.state.Status = 'restarting';
    const live = this.liveOf(rec.id);
    live.restartTimer = setTimeout(() => {
      live.restartTimer = undefined;
      rec.restartCount++;
      live.restarting = this.start(rec.id).finally(() => (live.restarting = undefined));
      live.restarting.then(
        () => this.d.events.publish('container', 'restart', rec.id, this.attrs(rec)),
        (err: unknown) => log.warn('restart failed', { id: rec.id, error: String(err) }),
      );
    }, delay);
  }

  private notifyExit(id: string, code: number): void {
    const live = this.liveOf(id);
    for (const w of live.exitWaiters.splice(0)) w(code);
  }

  /**
   * Unmounts the rootfs and deletes the runtime's view of a run that ended. `exited`: conmon
   * recorded the exit of the container's init.
   */
  private async cleanupRun(rec: ContainerRecord, exited = false): Promise<void> {
    const bundle = this.bundle(rec.id);
    const { PidMode } = rec.hostConfig;
    const ownPidNs = PidMode !== 'host' && !PidMode.startsWith('container:');
    if (exited && ownPidNs) await this.d.runtime.deleteExited(rec.id);
    else await this.d.runtime.delete(rec.id, true).catch(() => undefined);
    await this.d.network.tearDown(rec.id);
    await this.d.snapshots.unmount(path.join(bundle, 'rootfs'));
    await this.d.volumes.teardown(rec.id, rec.mounts ?? []);
    await this.d.snapshots.unmount(path.join(bundle, 'shm'));
    await removeCgroup(`${this.d.cgroupParent}/${rec.id}`);
  }

  async stop(ref: string, timeoutSec?: number): Promise<boolean> {
    const rec = this.get(ref);
    await this.live.get(rec.id)?.restarting?.catch(() => undefined);
    if (!rec.state.Running) {
      // Also covers an exit whose restart is still being decided: the policy must not bring it back.
      const live = this.live.get(rec.id);
      if (live?.restartTimer) clearTimeout(live.restartTimer);
      if (!rec.stoppedByUser || rec.state.Restarting) {
        rec.stoppedByUser = true;
        if (rec.state.Restarting) {
          rec.state.Restarting = false;
          rec.state.Status = 'exited';
        }
        await this.save(rec);
      }
      return false;
    }
    rec.stoppedByUser = true;
    await this.save(rec);
    const t = timeoutSec ?? rec.config.StopTimeout ?? 10;
    const exited = this.waitFor(rec.id, 'next-exit');
    if (rec.state.Paused) await this.d.runtime.resume(rec.id).catch(() => undefined);
    const sig = parseSignal(rec.config.StopSignal ?? 'SIGTERM');
    this.d.events.publish('container', 'kill', rec.id, {
      ...this.attrs(rec),
      signal: String(SIGNALS[sig] ?? sig),
    });
    await this.d.runtime.kill(rec.id, sig);
    const graceful =
      t < 0
        ? await exited.then(() => true)
        : await Promise.race([exited.then(() => true), sleep(t * 1000).then(() => false)]);
    if (!graceful) await this.d.runtime.kill(rec.id, 'SIGKILL', true);
    await exited;
    this.d.events.publish('container', 'stop', rec.id, this.attrs(rec));
    return true;
  }

  async kill(ref: string, signal = 'SIGKILL'): Promise<void> {
    const rec = this.get(ref);
    const sig = parseSignal(signal);
    if (!rec.state.Running)
      throw conflict(`Cannot kill container: ${ref}: Container ${rec.id} is not running`);
    if (sig === 'SIGKILL' || sig === 'SIGTERM' || sig === 'SIGINT') {
      rec.stoppedByUser = true;
      await this.save(rec);
    }
    this.d.events.publish('container', 'kill', rec.id, {
      ...this.attrs(rec),
      signal: String(SIGNALS[sig] ?? sig),
    });
    await this.d.runtime.kill(rec.id, sig);
  }

  async restart(ref: string, timeoutSec?: number): Promise<void> {
    await this.stop(ref, timeoutSec);
    await this.start(ref);
  }

  /** `docker update`: new limits (applied to the running cgroup at once) and restart policy. */
  async update(ref: string, body: unknown): Promise<string[]> {
    const rec = this.get(ref);
    const next = { ...rec.hostConfig, ...parseUpdate(body, rec.hostConfig) };
    const rate = (body as { NetworkRate?: unknown } | null)?.NetworkRate;
    if (rate !== undefined) this.d.network.checkRate(rate);
    if (next.AutoRemove && next.RestartPolicy.Name && next.RestartPolicy.Name !== 'no')
      throw invalidArgument(
        'Restart policy cannot be updated because AutoRemove is enabled for the container',
      );
    if (rec.state.Running) {
      const file = path.join(this.bundle(rec.id), 'update.json');
      await fsp.writeFile(file, JSON.stringify(limitResources(resourcesOf(next))));
      try {
        await this.d.runtime.update(rec.id, file);
      } catch (err) {
        throw invalidArgument(`Cannot update container ${rec.id}: ${(err as Error).message}`);
      } finally {
        await fsp.rm(file, { force: true });
      }
    }
    if (rate !== undefined) await this.d.network.setRate(rec.id, rate);
    rec.hostConfig = next;
    await this.save(rec);
    this.d.events.publish('container', 'update', rec.id, this.attrs(rec));
    return [];
  }

  async pause(ref: string): Promise<void> {
    const rec = this.get(ref);
    if (!rec.state.Running) throw conflict(`Container ${rec.id} is not running`);
    if (rec.state.Paused) throw conflict(`Container ${rec.id} is already paused`);
    await this.d.runtime.pause(rec.id);
    Object.assign(rec.state, { Paused: true, Status: 'paused' as Status });
    await this.save(rec);
    this.d.events.publish('container', 'pause', rec.id, this.attrs(rec));
  }

  async unpause(ref: string): Promise<void> {
    const rec = this.get(ref);
    if (!rec.state.Paused) throw conflict(`Container ${rec.id} is not paused`);
    await this.d.runtime.resume(rec.id);
    Object.assign(rec.state, { Paused: false, Status: 'running' as Status });
    await this.save(rec);
    this.d.events.publish('container', 'unpause', rec.id, this.attrs(rec));
  }

  async rename(ref: string, newName: string): Promise<void> {
    const rec = this.get(ref);
    const n = newName.replace(/^\//, '');
    if (!NAME_RE.test(newName))
      throw invalidArgument(
        `Invalid container name (${newName}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`,
      );
    const taken = this.names.get(n);
    if (taken && taken !== rec.id)
      throw conflict(
        `Error when allocating new name: Conflict. The container name "/${n}" is already in use by container "${taken}". You have to remove (or rename) that container to be able to reuse that name.`,
      );
    const old = rec.name;
    this.names.delete(old);
    rec.name = n;
    this.names.set(n, rec.id);
    await this.save(rec);
    await this.d.network.rename(rec.id, n);
    this.d.events.publish('container', 'rename', rec.id, { name: n, oldName: `/${old}` });
  }

  async remove(ref: string, opts: { force?: boolean; volumes?: boolean } = {}): Promise<void> {
    const rec = this.get(ref);
    if (rec.state.Running && !opts.force) {
      throw conflict(
        `You cannot remove a ${rec.state.Paused ? 'paused' : 'running'} container ${rec.id}. ${rec.state.Paused ? 'Unpause and then stop' : 'Stop'} the container before attempting removal or force remove`,
      );
    }
    if (rec.state.Status === 'removing') return;
    const live = this.liveOf(rec.id);
    if (live.restartTimer) clearTimeout(live.restartTimer);
    if (rec.state.Running) {
      rec.stoppedByUser = true;
      const exited = this.waitFor(rec.id, 'next-exit');
      if (rec.state.Paused) await this.d.runtime.resume(rec.id).catch(() => undefined);
      await this.d.runtime.kill(rec.id, 'SIGKILL', true);
      await Promise.race([exited, sleep(10_000)]);
    }
    rec.state.Status = 'removing';
    live.cancelWatch?.();
    await this.cleanupRun(rec).catch(() => undefined);
    // The record goes last, so a crash part-way leaves a record whose removal is done again.
    await Promise.all([
      this.d.network.forget(rec.id),
      this.d.snapshots.removeActive(rec.id),
      fsp.rm(this.bundle(rec.id), { recursive: true, force: true }),
    ]);
    await this.saving.get(rec.id)?.catch(() => undefined);
    await fsp.rm(this.dir(rec.id), { recursive: true, force: true });
    this.records.delete(rec.id);
    this.names.delete(rec.name);
    await this.d.volumes.detach(rec.id, rec.mounts ?? [], !!opts.volumes);
    this.d.events.publish('container', 'destroy', rec.id, this.attrs(rec));
    for (const c of live.clients) c.onEnd();
    for (const w of live.removeWaiters.splice(0)) w();
    for (const w of live.exitWaiters.splice(0)) w(rec.state.ExitCode);
    this.live.delete(rec.id);
  }

  /** Resolves with the exit code when the condition is met. */
  waitFor(id: string, condition: WaitCondition): Promise<number> {
    const rec = this.records.get(id);
    if (!rec) return Promise.resolve(0);
    const live = this.liveOf(id);
    if (condition === 'not-running' && !rec.state.Running && !rec.state.Restarting)
      return Promise.resolve(rec.state.ExitCode);
    if (condition === 'removed')
      return new Promise((resolve) => live.removeWaiters.push(() => resolve(rec.state.ExitCode)));
    return new Promise((resolve) => live.exitWaiters.push(resolve));
  }

  /** Attaches a client; output flows while the container runs. Returns a stdin writer. */
  attach(
    ref: string,
    client: AttachClient,
    opts: { stdin: boolean },
  ): { write(b: Buffer): void; end(): void; detach(): void } {
    const rec = this.get(ref);
    if (
      rec.state.Status === 'exited' &&
      !rec.hostConfig.AutoRemove &&
      rec.state.StartedAt !== ZERO_TIME &&
      !rec.state.Restarting
    )
      throw conflict('You cannot attach to a stopped container, start it first');
    const live = this.liveOf(rec.id);
    live.clients.add(client);
    return {
      write: (b) => {
        if (!opts.stdin) return;
        if (live.conn) live.conn.write(b);
        else live.pendingStdin.push(b);
      },
      end: () => {
        if (!opts.stdin || !rec.config.StdinOnce) return;
        if (live.conn) live.conn.endStdin();
        else live.pendingEof = true;
      },
      detach: () => {
        live.clients.delete(client);
      },
    };
  }

  resize(ref: string, rows: number, cols: number): void {
    const rec = this.get(ref);
    if (!rec.state.Running) throw conflict(`Container ${rec.id} is not running`);
    if (rows <= 0 || cols <= 0) return;
    this.d.runtime.resize(this.bundle(rec.id), rows, cols);
  }

  /** Docker's `diff`: what the container changed relative to its image. */
  async diff(ref: string): Promise<Change[]> {
    const rec = this.get(ref);
    const spec = await this.d.snapshots.prepare(rec.id, this.d.images.resolve(rec.imageId).record.chainId);
    return changes(spec.upperDir, spec.lowerDirs, mountPlaceholders(rec.mounts));
  }

  /** Docker's `commit`: the container's changes become a new layer on top of its image. */
  async commit(
    ref: string,
    opts: {
      repo?: string;
      comment?: string;
      author?: string;
      changes?: string[];
      pause?: boolean;
      config?: ImageContainerConfig;
    },
  ): Promise<Digest> {
    const rec = this.get(ref);
    if (opts.repo) parseReference(opts.repo);
    const img = this.d.images.resolve(rec.imageId);
    const spec = await this.d.snapshots.prepare(rec.id, img.record.chainId);
    const pause = opts.pause !== false && rec.state.Running && !rec.state.Paused;
    if (pause) await this.d.runtime.pause(rec.id);
    let blob;
    try {
      blob = await this.d.content.ingest(
        diffTar(spec.upperDir, spec.lowerDirs, mountPlaceholders(rec.mounts)),
      );
    } finally {
      if (pause) await this.d.runtime.resume(rec.id).catch(() => undefined);
    }
    await this.d.snapshots.apply(img.record.chainId, this.d.content.createReadStream(blob.digest), {
      expectedDiffId: blob.digest,
    });
    const created = new Date().toISOString();
    const base = img.config;
    const cfg = applyChanges(
      {
        ...(base.config ?? {}),
        Env: rec.config.Env,
        Cmd: rec.config.Cmd,
        Entrypoint: rec.config.Entrypoint,
        WorkingDir: rec.config.WorkingDir,
        User: rec.config.User,
        Labels: rec.config.Labels,
        ExposedPorts: rec.config.ExposedPorts,
        ...(rec.config.StopSignal ? { StopSignal: rec.config.StopSignal } : {}),
        ...(rec.config.Healthcheck ? { Healthcheck: rec.config.Healthcheck } : {}),
        ...(opts.config ?? {}),
      },
      opts.changes ?? [],
    );
    const config = {
      ...base,
      created,
      ...(opts.author ? { author: opts.author } : {}),
      ...(opts.comment ? { comment: opts.comment } : {}),
      container: rec.id,
      config: cfg,
      rootfs: { type: 'layers' as const, diff_ids: [...base.rootfs.diff_ids, blob.digest] },
      history: [
        ...(base.history ?? []),
        {
          created,
          created_by: [rec.path, ...rec.args].join(' '),
          ...(opts.comment ? { comment: opts.comment } : {}),
          ...(opts.author ? { author: opts.author } : {}),
        },
      ],
    };
    const id = await this.d.images.add({
      config: Buffer.from(JSON.stringify(config)),
      layers: [
        ...img.record.layers,
        {
          mediaType: 'application/vnd.docker.image.rootfs.diff.tar',
          digest: blob.digest,
          size: blob.size,
          diffId: blob.digest,
        },
      ],
      parent: img.record.id,
    });
    if (opts.repo) await this.d.images.setTag(opts.repo, id);
    this.d.events.publish('container', 'commit', rec.id, { ...this.attrs(rec), comment: opts.comment ?? '' });
    return id;
  }

  /**
   * Runs `fn` with the container's root file system mounted (its running mount, or a temporary
   * one for a stopped container, unmounted afterwards).
   */
  async withRootfs<T>(ref: string, fn: (root: string) => Promise<T>): Promise<T> {
    const rec = this.get(ref);
    const rootfs = path.join(this.bundle(rec.id), 'rootfs');
    if (rec.state.Running) return fn(rootfs);
    await fsp.mkdir(this.bundle(rec.id), { recursive: true, mode: 0o700 });
    await this.d.snapshots.mount(rec.id, rootfs);
    try {
      return await fn(rootfs);
    } finally {
      if (!this.records.get(rec.id)?.state.Running) await this.d.snapshots.unmount(rootfs);
    }
  }

  /**
   * Like withRootfs, for path `p`: when a mount covers it, the root is that mount's host view
   * (so `cp` reads and writes volumes and binds, as Docker does).
   */
  async withPathRoot<T>(
    ref: string,
    p: string,
    fn: (root: string, p: string) => Promise<T>,
    write = false,
  ): Promise<T> {
    const rec = this.get(ref);
    const view = this.d.volumes.hostView(rec.mounts ?? [], p, rec.state.Running ? rec.state.Pid : 0, write);
    if (view) return fn(view.root, view.path);
    return this.withRootfs(ref, (root) => fn(root, p));
  }

  /** Streams log entries; with follow, keeps going until the container stops or `signal` fires. */
  async logs(
    ref: string,
    opts: LogOptions & { follow: boolean },
    /** Awaited between chunks of a long log: the caller's backpressure. */
    sink: (e: LogEntry[]) => void | Promise<void>,
    abort: Promise<void>,
  ): Promise<void> {
    const rec = this.get(ref);
    const file = this.logPath(rec.id);
    const files = logFiles(file, rotationPolicy(rec.hostConfig.LogConfig.Config));
    let offset = 0;
    if (opts.tail !== undefined && opts.tail >= 0) {
      // tail counts from the end across rotated files
      const all: LogEntry[] = [];
      for (const f of files) {
        const r = await readEntries(f, 0);
        for (const e of r.entries) all.push(e);
        offset = r.offset;
      }
      const first = filterEntries(all, opts);
      if (first.length) await sink(first);
    } else {
      for (const f of files)
        offset = await readEntriesChunked(f, 0, (entries) => {
          const part = filterEntries(entries, opts);
          return part.length ? sink(part) : undefined;
        });
    }
    if (!opts.follow || !rec.state.Running) return;
    const stop = Promise.race([abort, this.waitFor(rec.id, 'next-exit').then(() => sleep(50))]);
    await followEntries(
      file,
      offset,
      (e) => {
        const f = filterEntries(e, { ...opts, tail: undefined });
        if (f.length) void sink(f);
      },
      stop,
    );
  }

  /** Removes every stopped container; returns the ids removed. */
  async prune(labelFilters: string[] = []): Promise<string[]> {
    const removed: string[] = [];
    for (const rec of [...this.records.values()]) {
      if (rec.state.Running || rec.state.Restarting) continue;
      if (!labelFilters.every((l) => labelMatch(rec.config.Labels, l))) continue;
      await this.remove(rec.id);
      removed.push(rec.id);
    }
    return removed;
  }

  /** Stops watching (daemon shutdown): containers keep running under conmon. */
  close(): void {
    this.rotator.close();
    for (const l of this.live.values()) {
      l.cancelWatch?.();
      if (l.restartTimer) clearTimeout(l.restartTimer);
      l.conn?.close();
    }
  }
}

export function labelMatch(labels: Record<string, string>, f: string): boolean {
  const eq = f.indexOf('=');
  return eq < 0 ? f in labels : labels[f.slice(0, eq)] === f.slice(eq + 1);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A container's limits in the runtime's terms. */
function resourcesOf(h: HostConfig): Resources {
  return {
    memory: h.Memory || undefined,
    memorySwap: h.MemorySwap || undefined,
    memoryReservation: h.MemoryReservation || undefined,
    oomKillDisable: h.OomKillDisable,
    cpuShares: h.CpuShares || undefined,
    cpuPeriod: h.CpuPeriod || undefined,
    cpuQuota: h.CpuQuota || undefined,
    nanoCpus: h.NanoCpus || undefined,
    cpusetCpus: h.CpusetCpus || undefined,
    cpusetMems: h.CpusetMems || undefined,
    pidsLimit: h.PidsLimit ?? undefined,
    blkioWeight: h.BlkioWeight || undefined,
    blkioDeviceReadBps: (h.BlkioDeviceReadBps ?? []).map((d) => ({ path: d.Path, rate: d.Rate })),
    blkioDeviceWriteBps: (h.BlkioDeviceWriteBps ?? []).map((d) => ({ path: d.Path, rate: d.Rate })),
  };
}

function shmBind(source: string): Mount {
  return { destination: '/dev/shm', type: 'bind', source, options: ['rbind', 'rprivate'] };
}

function isMountPoint(dir: string): boolean {
  try {
    return statSync(dir).dev !== statSync(path.dirname(dir)).dev;
  } catch {
    return false;
  }
}

/** Where `--init` puts the init process inside the container, as Docker does. */
const INIT_PATH = '/sbin/docker-init';
const INIT_CANDIDATES = ['/usr/bin/tini-static', '/usr/libexec/docker/docker-init', '/usr/bin/docker-init'];

/** A static tini from the host (Debian's `tini` package), bind-mounted as the container's init. */
function initBinary(): string {
  const found = INIT_CANDIDATES.find((p) => existsSync(p));
  if (!found) throw invalidArgument('docker-init binary not found (install the tini package)');
  return found;
}

const CGROUP_ROOT = '/sys/fs/cgroup';
/**
 * Removes a container's cgroups, in every hierarchy (v1) or the unified one (v2), as `runc delete`
 * does; also what a crash left. A cgroup whose last task is still exiting is busy for a moment:
 * retried briefly.
 */
async function removeCgroup(rel: string): Promise<void> {
  let dirs: string[];
  try {
    dirs = readdirSync(CGROUP_ROOT).map((c) => path.join(CGROUP_ROOT, c, rel));
  } catch {
    return;
  }
  if (existsSync(path.join(CGROUP_ROOT, 'cgroup.controllers'))) dirs.push(path.join(CGROUP_ROOT, rel));
  for (let attempt = 0; dirs.length && attempt < 5; attempt++) {
    if (attempt) await sleep(10 * attempt);
    dirs = dirs.filter((p) => {
      try {
        rmdirSync(p);
        return false;
      } catch (err) {
        return errnoCode(err) === 'EBUSY';
      }
    });
  }
}

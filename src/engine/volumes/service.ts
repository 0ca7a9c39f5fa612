/**
 * The volume service: volumes over the local driver, who references them (containers), who has
 * them mounted (running containers), and a container's mounts from create to removal.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fsp, type Stats } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { conflict, errorMessage, internal, invalidArgument, notFound } from '../../common/errors.js';
import { log } from '../../common/log.js';
import { resolveInRoot } from '../../common/rootpath.js';
import { treeSize } from '../../common/treesize.js';
import type { EventBus } from '../events/events.js';
import { LocalDriver } from './local.js';
import { mountFor, planMounts } from './mounts.js';
import {
  ANONYMOUS_LABEL,
  LOCAL_DRIVER,
  type MountPoint,
  type VolumeInfo,
  type VolumeRecord,
} from './volumes.js';

const execFileAsync = promisify(execFile);

/** What the service needs to know of a container. */
export interface ContainerMounts {
  id: string;
  running: boolean;
  mounts: MountPoint[];
}

export class VolumeService {
  readonly driver: LocalDriver;
  /** volume name -> ids of the containers that reference it */
  private readonly refs = new Map<string, Set<string>>();
  /** volume name -> ids of the running containers that have it mounted */
  private readonly active = new Map<string, Set<string>>();

  constructor(
    dataRoot: string,
    private readonly events: EventBus,
  ) {
    this.driver = new LocalDriver(path.join(dataRoot, 'volumes'));
  }

  async init(): Promise<void> {
    await this.driver.init();
  }

  /**
   * At daemon start: references counted again from the container records; driver mounts kept for
   * running containers (made again if missing) and removed where nothing runs.
   */
  async reconcile(containers: ContainerMounts[]): Promise<void> {
    this.refs.clear();
    this.active.clear();
    for (const c of containers)
      for (const m of c.mounts) {
        if (m.Type !== 'volume' || !this.driver.get(m.Name)) continue;
        this.ref(m.Name, c.id);
        if (c.running) this.setOf(this.active, m.Name).add(c.id);
      }
    for (const v of this.driver.list()) {
      const users = this.active.get(v.Name)?.size ?? 0;
      if (users > 0)
        await this.driver
          .mount(v.Name)
          .catch((err: unknown) => log.warn('remount failed', { name: v.Name, error: errorMessage(err) }));
      else if (this.driver.isMounted(v.Name)) await this.driver.unmount(v.Name);
    }
  }

  private setOf(map: Map<string, Set<string>>, name: string): Set<string> {
    let s = map.get(name);
    if (!s) map.set(name, (s = new Set()));
    return s;
  }

  private ref(name: string, id: string): void {
    this.setOf(this.refs, name).add(id);
  }

  private info(rec: VolumeRecord, withUsage = false): VolumeInfo {
    return {
      CreatedAt: rec.CreatedAt,
      Driver: rec.Driver,
      Labels: rec.Labels,
      Mountpoint: this.driver.dataPath(rec.Name),
      Name: rec.Name,
      Options: rec.Options,
      Scope: 'local',
      ...(withUsage ? { UsageData: { Size: -1, RefCount: this.refs.get(rec.Name)?.size ?? 0 } } : {}),
    };
  }

  private record(name: string): VolumeRecord {
    const rec = this.driver.get(name);
    if (!rec) throw notFound(`get ${name}: no such volume`);
    return rec;
  }

  async create(body: {
    Name?: string;
    Driver?: string;
    DriverOpts?: Record<string, string> | null;
    Labels?: Record<string, string> | null;
  }): Promise<VolumeInfo> {
    const driver = body.Driver || LOCAL_DRIVER;
    const name = body.Name || randomBytes(32).toString('hex');
    if (driver !== LOCAL_DRIVER)
      throw notFound(
        `create ${name}: error looking up volume plugin ${driver}: plugin "${driver}" not found`,
      );
    const existed = !!this.driver.get(name);
    const rec = await this.driver.create(name, body.DriverOpts ?? null, body.Labels ?? {});
    if (!existed) this.events.publish('volume', 'create', name, { driver: LOCAL_DRIVER });
    return this.info(rec);
  }

  inspect(name: string): VolumeInfo {
    return this.info(this.record(name));
  }

  /** Docker's filters: dangling, driver, label (k or k=v), label! , name (substring). */
  list(filters: Record<string, string[]>): VolumeInfo[] {
    for (const k of Object.keys(filters))
      if (!['dangling', 'driver', 'label', 'label!', 'name'].includes(k))
        throw invalidArgument(`invalid filter '${k}'`);
    let dangling: boolean | undefined;
    for (const d of filters.dangling ?? []) {
      if (['true', '1'].includes(d.toLowerCase())) dangling = true;
      else if (['false', '0'].includes(d.toLowerCase())) dangling = false;
      else throw invalidArgument(`invalid filter 'dangling=${d}'`);
    }
    return this.driver
      .list()
      .filter((v) => {
        if (dangling !== undefined && this.inUse(v.Name) === dangling) return false;
        if (filters.driver && !filters.driver.includes(v.Driver)) return false;
        if (filters.name && !filters.name.some((n) => v.Name.includes(n))) return false;
        if (filters.label && !filters.label.every((l) => labelMatch(v.Labels, l))) return false;
        if (filters['label!'] && filters['label!'].some((l) => labelMatch(v.Labels, l))) return false;
        return true;
      })
      .map((v) => this.info(v));
  }

  inUse(name: string): boolean {
    return (this.refs.get(name)?.size ?? 0) > 0;
  }

  async remove(name: string, force = false): Promise<void> {
    const rec = this.driver.get(name);
    if (!rec) {
      if (force) return;
      throw notFound(`get ${name}: no such volume`);
    }
    const users = [...(this.refs.get(name) ?? [])];
    if (users.length) throw conflict(`remove ${name}: volume is in use - [${users.join(', ')}]`);
    await this.driver.remove(name);
    this.refs.delete(name);
    this.events.publish('volume', 'destroy', name, { driver: LOCAL_DRIVER });
  }

  /** Removes every unreferenced volume (API 1.41: named and anonymous alike). */
  async prune(filters: Record<string, string[]>): Promise<{ deleted: string[]; reclaimed: number }> {
    for (const k of Object.keys(filters))
      if (!['label', 'label!', 'all'].includes(k)) throw invalidArgument(`invalid filter '${k}'`);
    const deleted: string[] = [];
    let reclaimed = 0;
    for (const v of this.driver.list()) {
      if (this.inUse(v.Name)) continue;
      if (filters.label && !filters.label.every((l) => labelMatch(v.Labels, l))) continue;
      if (filters['label!'] && filters['label!'].some((l) => labelMatch(v.Labels, l))) continue;
      const size = this.driver.needsMount(v.Name) ? 0 : await treeSize(this.driver.dataPath(v.Name));
      await this.remove(v.Name);
      deleted.push(v.Name);
      reclaimed += size;
    }
    return { deleted, reclaimed };
  }

  /** A new container's mounts from its HostConfig and the Config/image VOLUMEs (nothing made yet). */
  plan(
    hostConfig: Record<string, unknown>,
    volumes: string[],
    mountsOf: (ref: string) => MountPoint[],
  ): MountPoint[] {
    return planMounts(
      { binds: hostConfig.Binds, mounts: hostConfig.Mounts, volumesFrom: hostConfig.VolumesFrom, volumes },
      mountsOf,
    );
  }

  /**
   * At container create: makes the volumes its mounts name (and anonymous ones), references them,
   * and fills in their host paths. On failure nothing stays made or referenced.
   */
  async attach(containerId: string, mounts: MountPoint[]): Promise<MountPoint[]> {
    const made: string[] = [];
    const out: MountPoint[] = [];
    try {
      for (const m of mounts) {
        if (m.Type !== 'volume') {
          out.push(m);
          continue;
        }
        let name = m.Name;
        if (m.Anonymous && !name) name = randomBytes(32).toString('hex');
        if (!this.driver.get(name)) {
          const opts =
            m.CreateOptions && Object.keys(m.CreateOptions.Options).length ? m.CreateOptions.Options : null;
          const labels = {
            ...(m.CreateOptions?.Labels ?? {}),
            ...(m.Anonymous ? { [ANONYMOUS_LABEL]: '' } : {}),
          };
          await this.driver.create(name, opts, labels);
          made.push(name);
          this.events.publish('volume', 'create', name, { driver: LOCAL_DRIVER });
        }
        const copy: MountPoint = { ...m, Name: name, Source: this.driver.dataPath(name) };
        delete copy.CreateOptions;
        out.push(copy);
      }
    } catch (err) {
      for (const n of made) await this.driver.remove(n).catch(() => undefined);
      throw err;
    }
    for (const m of out) if (m.Type === 'volume') this.ref(m.Name, containerId);
    return out;
  }

  /** At container removal: drops its references; with `removeAnonymous`, its unused anonymous volumes go. */
  async detach(containerId: string, mounts: MountPoint[], removeAnonymous: boolean): Promise<void> {
    for (const m of mounts) {
      if (m.Type !== 'volume') continue;
      this.refs.get(m.Name)?.delete(containerId);
      this.active.get(m.Name)?.delete(containerId);
      if (!this.inUse(m.Name)) this.refs.delete(m.Name);
      if (removeAnonymous && m.Anonymous && !this.inUse(m.Name))
        await this.remove(m.Name, true).catch((err: unknown) =>
          log.warn('could not remove anonymous volume', { name: m.Name, error: errorMessage(err) }),
        );
    }
  }

  /**
   * Before a start, with the container's root mounted at `rootfs`: bind sources made (as Docker
   * does for `-v`), driver volumes mounted, empty volumes filled from the image's content.
   */
  async setup(containerId: string, mounts: MountPoint[], rootfs: string): Promise<void> {
    for (const m of mounts) {
      if (m.Type === 'bind') {
        try {
          await fsp.stat(m.Source);
        } catch {
          await fsp.mkdir(m.Source, { recursive: true, mode: 0o755 });
        }
        continue;
      }
      if (m.Type !== 'volume') continue;
      if (!this.driver.get(m.Name))
        throw notFound(`error while mounting volume '${m.Source}': get ${m.Name}: no such volume`);
      const users = this.setOf(this.active, m.Name);
      if (!users.has(containerId)) {
        if (users.size === 0) await this.driver.mount(m.Name);
        users.add(containerId);
      }
      if (m.Subpath) await checkSubpath(m.Source, m.Subpath);
      if (m.CopyData && !m.Subpath) await populate(rootfs, m.Destination, m.Source);
      this.events.publish('volume', 'mount', m.Name, {
        container: containerId,
        destination: m.Destination,
        driver: m.Driver,
        propagation: m.Propagation,
        'read/write': String(m.RW),
      });
    }
  }

  /** After a run: driver volumes no running container uses any more are unmounted. */
  async teardown(containerId: string, mounts: MountPoint[]): Promise<void> {
    for (const m of mounts) {
      if (m.Type !== 'volume') continue;
      const users = this.active.get(m.Name);
      if (!users?.delete(containerId)) continue;
      if (users.size === 0) await this.driver.unmount(m.Name);
      this.events.publish('volume', 'unmount', m.Name, { container: containerId, driver: m.Driver });
    }
  }

  /**
   * Where `p` of a container lives on the host when a mount covers it: the running container's
   * own view (/proc/<pid>/root) or, stopped, the volume's or bind's host directory.
   */
  hostView(
    mounts: MountPoint[],
    p: string,
    pid: number,
    write = false,
  ): { root: string; path: string } | undefined {
    const hit = mountFor(mounts, p);
    if (!hit) return undefined;
    if (write && !hit.mount.RW) throw invalidArgument('mounted volume is marked read-only');
    if (pid > 0) return { root: `/proc/${pid}/root`, path: p };
    if (hit.mount.Type === 'tmpfs') return undefined;
    const base = hit.mount.Subpath ? resolveInRoot(hit.mount.Source, hit.mount.Subpath) : hit.mount.Source;
    return { root: base, path: hit.rest };
  }
}

export function labelMatch(labels: Record<string, string>, f: string): boolean {
  const eq = f.indexOf('=');
  return eq < 0 ? f in labels : labels[f.slice(0, eq)] === f.slice(eq + 1);
}

/**
 * A subpath must name a directory or file inside the volume through real directories only: a
 * symlink a container left there would make runc mount a host path of its choosing.
 */
async function checkSubpath(volume: string, subpath: string): Promise<void> {
  let cur = volume;
  for (const part of subpath.split('/').filter((x) => x && x !== '.')) {
    cur = path.join(cur, part);
    let st: Stats;
    try {
      st = await fsp.lstat(cur);
    } catch {
      throw invalidArgument(`cannot access path ${path.join(volume, subpath)}: no such file or directory`);
    }
    if (st.isSymbolicLink())
      throw invalidArgument(`cannot mount subpath ${subpath}: it must not go through a symbolic link`);
  }
}

/** Docker's copy-up: an empty volume takes the image's files at its mount point, owner and mode too. */
async function populate(rootfs: string, destination: string, volume: string): Promise<void> {
  if ((await fsp.readdir(volume)).length > 0) return;
  const src = resolveInRoot(rootfs, destination);
  let st: Stats;
  try {
    st = await fsp.stat(src);
  } catch {
    return;
  }
  if (!st.isDirectory()) return;
  try {
    if ((await fsp.readdir(src)).length > 0) await execFileAsync('cp', ['-a', '--', `${src}/.`, volume]);
    await fsp.chown(volume, st.uid, st.gid);
    await fsp.chmod(volume, st.mode & 0o7777);
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr?.trim();
    throw internal(`copying image content into volume: ${stderr || errorMessage(err)}`, err);
  }
}

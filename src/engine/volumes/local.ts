/**
 * The local volume driver: each volume is a directory `<root>/<name>/` holding `_data` (what
 * containers see) and `meta.json`. With options (type/device/o) `_data` is a mount point, mounted
 * while some running container uses the volume.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fsp, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { readJsonIfExists, syncDir, writeJsonAtomic } from '../../common/atomic.js';
import { errorMessage, internal, invalidArgument } from '../../common/errors.js';
import { log } from '../../common/log.js';
import { parseMountinfo } from '../../common/mountinfo.js';
import { native, MNT_DETACH } from '../../common/native.js';
import { LOCAL_DRIVER, type VolumeRecord } from './volumes.js';

const execFileAsync = promisify(execFile);

export const NAME_CHARS = '[a-zA-Z0-9][a-zA-Z0-9_.-]';
const NAME_RE = new RegExp(`^${NAME_CHARS}+$`);
const VALID_OPTS = ['type', 'device', 'o', 'size'];
/** An option that needs others beside it (Docker's mandatory options). */
const NEEDS: Record<string, string[]> = { device: ['type'], type: ['device'], o: ['device', 'type'] };

export function validateName(name: string): void {
  if (!NAME_RE.test(name))
    throw invalidArgument(
      `create ${name}: "${name}" includes invalid characters for a local volume name, only "${NAME_CHARS}" are allowed. If you intended to pass a host directory, use absolute path`,
    );
}

export function validateOptions(name: string, opts: Record<string, string>): void {
  for (const k of Object.keys(opts))
    if (!VALID_OPTS.includes(k)) throw invalidArgument(`create ${name}: invalid option: "${k}"`);
  for (const [k, needs] of Object.entries(NEEDS))
    if (k in opts)
      for (const n of needs)
        if (!(n in opts)) throw invalidArgument(`create ${name}: missing required option: "${n}"`);
  if ('size' in opts) throw invalidArgument(`create ${name}: quota size requested but no quota support`);
  if (opts.type === 'none' || /(^|,)r?bind(,|$)/.test(opts.o ?? '')) {
    if (!path.isAbsolute(opts.device ?? ''))
      throw invalidArgument(`create ${name}: bind device must be an absolute path: ${opts.device ?? ''}`);
  }
}

export class LocalDriver {
  readonly name = LOCAL_DRIVER;
  private readonly volumes = new Map<string, VolumeRecord>();

  constructor(readonly root: string) {}

  dataPath(name: string): string {
    return path.join(this.root, name, '_data');
  }

  /** Loads every volume; removes what an interrupted create or remove left. */
  async init(): Promise<void> {
    await fsp.mkdir(this.root, { recursive: true, mode: 0o701 });
    for (const entry of await fsp.readdir(this.root)) {
      const dir = path.join(this.root, entry);
      if (entry.startsWith('.tmp-')) {
        await this.removeDir(dir).catch((err: unknown) =>
          log.warn('could not remove volume leftovers', { dir, error: errorMessage(err) }),
        );
        continue;
      }
      const meta = await readJsonIfExists<VolumeRecord>(path.join(dir, 'meta.json')).catch(() => undefined);
      if (!meta || meta.Name !== entry) {
        log.warn('ignoring a volume directory without readable metadata', { dir });
        continue;
      }
      this.volumes.set(entry, meta);
    }
  }

  get(name: string): VolumeRecord | undefined {
    return this.volumes.get(name);
  }

  list(): VolumeRecord[] {
    return [...this.volumes.values()];
  }

  async create(
    name: string,
    opts: Record<string, string> | null,
    labels: Record<string, string>,
  ): Promise<VolumeRecord> {
    validateName(name);
    validateOptions(name, opts ?? {});
    const existing = this.volumes.get(name);
    if (existing) return existing;
    const rec: VolumeRecord = {
      Name: name,
      Driver: LOCAL_DRIVER,
      CreatedAt: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
      Labels: labels,
      Options: opts,
    };
    // Claimed before the first await: a second create of the same name gets this one.
    this.volumes.set(name, rec);
    const tmp = path.join(this.root, `.tmp-${randomBytes(8).toString('hex')}`);
    try {
      await fsp.mkdir(path.join(tmp, '_data'), { recursive: true, mode: 0o755 });
      await fsp.chmod(tmp, 0o701);
      await writeJsonAtomic(path.join(tmp, 'meta.json'), rec, 0o600);
      await fsp.rename(tmp, path.join(this.root, name));
      await syncDir(this.root);
    } catch (err) {
      this.volumes.delete(name);
      await fsp.rm(tmp, { recursive: true, force: true });
      throw internal(`create ${name}: ${errorMessage(err)}`, err);
    }
    return rec;
  }

  /** Deletes the volume and its data (the caller checked it is unused and unmounted). */
  async remove(name: string): Promise<void> {
    if (!this.volumes.has(name)) return;
    const dir = path.join(this.root, name);
    if (isMounted(this.dataPath(name))) await this.unmount(name);
    const tmp = path.join(this.root, `.tmp-rm-${randomBytes(8).toString('hex')}`);
    await fsp.rename(dir, tmp);
    this.volumes.delete(name);
    await syncDir(this.root);
    await this.removeDir(tmp);
  }

  /** rm -r that refuses to descend into anything mounted (a bind volume's device is the user's data). */
  private async removeDir(dir: string): Promise<void> {
    const under = mountsUnder(dir);
    for (const m of under.sort((a, b) => b.length - a.length)) native.umount2(m, MNT_DETACH);
    if (mountsUnder(dir).length) throw internal(`volume directory ${dir} is still mounted`);
    await fsp.rm(dir, { recursive: true, force: true });
  }

  /** True when the volume has options that make `_data` a mount point. */
  needsMount(name: string): boolean {
    const o = this.volumes.get(name)?.Options;
    return !!o && !!(o.type || o.device);
  }

  async mount(name: string): Promise<void> {
    const rec = this.volumes.get(name);
    const o = rec?.Options;
    if (!rec || !o || !this.needsMount(name)) return;
    const target = this.dataPath(name);
    if (isMounted(target)) return;
    const args = ['-t', o.type || 'none'];
    if (o.o) args.push('-o', o.o);
    args.push(o.device, target);
    try {
      await execFileAsync('mount', args);
    } catch (err) {
      const stderr = (err as { stderr?: string }).stderr?.trim();
      throw internal(`error while mounting volume '${target}': ${stderr || errorMessage(err)}`, err);
    }
  }

  async unmount(name: string): Promise<void> {
    const target = this.dataPath(name);
    if (!isMounted(target)) return;
    try {
      native.umount2(target, MNT_DETACH);
    } catch (err) {
      log.warn('could not unmount volume', { name, error: errorMessage(err) });
    }
  }

  isMounted(name: string): boolean {
    return isMounted(this.dataPath(name));
  }
}

function mountPoints(): string[] {
  try {
    return parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8')).map((m) => m.mountPoint);
  } catch {
    return [];
  }
}

function isMounted(p: string): boolean {
  return mountPoints().includes(p);
}

function mountsUnder(dir: string): string[] {
  return mountPoints().filter((m) => m === dir || m.startsWith(dir + '/'));
}

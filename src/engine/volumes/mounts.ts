/**
 * A container's mounts from its create request: `Binds` (-v), `Mounts` (--mount), `VolumesFrom`
 * and the anonymous volumes of `Config.Volumes` (the image's VOLUMEs and `-v /path`), checked with
 * Docker's rules and messages. Pure: creating volumes is the service's job.
 */
import { statSync } from 'node:fs';
import * as path from 'node:path';
import { invalidArgument } from '../../common/errors.js';
import { LOCAL_DRIVER, type MountPoint } from './volumes.js';

const RW_MODES = ['rw', 'ro'];
const LABEL_MODES = ['z', 'Z'];
const PROPAGATIONS = ['private', 'rprivate', 'slave', 'rslave', 'shared', 'rshared'];
const COPY_MODES = ['nocopy'];
const CONSISTENCY = ['consistent', 'cached', 'delegated'];

function validMode(mode: string): boolean {
  if (mode === '') return true;
  const counts = [0, 0, 0, 0, 0];
  for (const o of mode.split(',')) {
    const i = [RW_MODES, LABEL_MODES, PROPAGATIONS, COPY_MODES, CONSISTENCY].findIndex((g) => g.includes(o));
    if (i < 0) return false;
    counts[i]++;
  }
  return counts.every((c) => c <= 1);
}

function mountConfigError(type: string, msg: string): Error {
  return invalidArgument(`invalid mount config for type "${type}": ${msg}`);
}

/** Target checks shared by every kind: present, absolute, not `/`. Returns the cleaned target. */
function checkTarget(type: string, target: string): string {
  if (!target) throw mountConfigError(type, 'field Target must not be empty');
  if (path.posix.normalize(target.replace(/\\/g, '/')) === '/' || /^\/+(\.\.?\/*)*$/.test(target))
    throw mountConfigError(type, "invalid specification: destination can't be '/'");
  if (!target.startsWith('/'))
    throw mountConfigError(type, `invalid mount path: '${target}' mount path must be absolute`);
  const clean = path.posix.normalize(target);
  return clean.length > 1 ? clean.replace(/\/+$/, '') : clean;
}

/** One `-v` / Binds entry. `/host:/ctr[:mode]`, `name:/ctr[:mode]`, or just `/ctr`. */
export function parseBind(raw: string): MountPoint {
  const parts = raw.split(':');
  const arr = parts.length > 4 ? [...parts.slice(0, 3), parts.slice(3).join(':')] : parts;
  const spec = `invalid volume specification: '${raw}'`;
  if (arr[0] === '') throw invalidArgument(spec);
  let source = '';
  let target: string;
  let mode = '';
  if (arr.length === 1) target = arr[0];
  else if (arr.length === 2) {
    if (validMode(arr[1])) throw invalidArgument(spec);
    [source, target] = arr;
  } else if (arr.length === 3) [source, target, mode] = arr;
  else throw invalidArgument(spec);
  if (!validMode(mode)) throw invalidArgument(`invalid mode: ${mode}`);
  const modes = mode.split(',');
  const type = source.startsWith('/') ? 'bind' : 'volume';
  const ro = modes.includes('ro');
  let dest: string;
  try {
    dest = checkTarget(type, target);
    if (type === 'volume' && ro && !source)
      throw mountConfigError(type, 'must not set ReadOnly mode when using anonymous volumes');
  } catch (err) {
    throw invalidArgument(`${spec}: ${(err as Error).message}`);
  }
  const propagation = modes.find((m) => PROPAGATIONS.includes(m));
  if (type === 'bind')
    return {
      Type: 'bind',
      Name: '',
      Source: path.posix.normalize(source),
      Destination: dest,
      Driver: '',
      Mode: mode,
      RW: !ro,
      Propagation: propagation ?? 'rprivate',
    };
  return {
    Type: 'volume',
    Name: source,
    Source: '',
    Destination: dest,
    Driver: LOCAL_DRIVER,
    Mode: mode || (source ? 'z' : ''),
    RW: !ro,
    Propagation: '',
    Anonymous: !source,
    CopyData: !modes.includes('nocopy'),
  };
}

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function strField(o: Json, k: string): string {
  const v = o[k];
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string')
    throw invalidArgument(
      `json: cannot unmarshal ${typeof v} into Go struct field Mount.${k} of type string`,
    );
  return v;
}

function strMap(v: unknown, field: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (!isObj(v) || !Object.values(v).every((x) => typeof x === 'string'))
    throw invalidArgument(`json: cannot unmarshal into Go struct field ${field} of type map[string]string`);
  return v as Record<string, string>;
}

function tmpfsSize(bytes: number): string {
  for (const [suffix, div] of [
    ['g', 2 ** 30],
    ['m', 2 ** 20],
    ['k', 2 ** 10],
  ] as const)
    if (bytes % div === 0) return `size=${bytes / div}${suffix}`;
  return `size=${bytes}`;
}

/** One `--mount` / HostConfig.Mounts entry. Bind sources must exist (unlike `-v`). */
export function parseMountSpec(m: unknown): MountPoint {
  if (!isObj(m)) throw invalidArgument('json: cannot unmarshal into Go struct field HostConfig.Mounts');
  const type = strField(m, 'Type');
  const source = strField(m, 'Source');
  const target = strField(m, 'Target');
  const ro = m.ReadOnly === true;
  const bindOpts = m.BindOptions;
  const volOpts = m.VolumeOptions;
  const tmpfsOpts = m.TmpfsOptions;
  if (!['bind', 'volume', 'tmpfs'].includes(type)) throw mountConfigError(type, 'mount type unknown');
  const dest = checkTarget(type, target);
  if (type === 'bind') {
    if (!source) throw mountConfigError(type, 'field Source must not be empty');
    if (isObj(volOpts)) throw mountConfigError(type, 'field VolumeOptions must not be specified');
    const b = isObj(bindOpts) ? bindOpts : {};
    const propagation = strField(b, 'Propagation');
    if (propagation && !PROPAGATIONS.includes(propagation))
      throw mountConfigError(type, `invalid propagation mode: ${propagation}`);
    if (!source.startsWith('/'))
      throw mountConfigError(type, `invalid mount path: '${source}' mount path must be absolute`);
    let exists = true;
    try {
      statSync(source);
    } catch {
      exists = false;
    }
    if (!exists && b.CreateMountpoint !== true)
      throw mountConfigError(type, `bind source path does not exist: ${source}`);
    return {
      Type: 'bind',
      Name: '',
      Source: path.posix.normalize(source),
      Destination: dest,
      Driver: '',
      Mode: '',
      RW: !ro,
      Propagation: propagation || 'rprivate',
      NonRecursive: b.NonRecursive === true,
    };
  }
  if (type === 'volume') {
    if (isObj(bindOpts)) throw mountConfigError(type, 'field BindOptions must not be specified');
    const v = isObj(volOpts) ? volOpts : {};
    const driverCfg = isObj(v.DriverConfig) ? v.DriverConfig : {};
    const driver = strField(driverCfg, 'Name') || LOCAL_DRIVER;
    if (driver !== LOCAL_DRIVER)
      throw invalidArgument(`error looking up volume plugin ${driver}: plugin not found`);
    const subpath = strField(v, 'Subpath');
    if (subpath) {
      if (!source) throw mountConfigError(type, 'must not set Subpath when using anonymous volumes');
      const clean = path.posix.normalize(subpath);
      if (clean.startsWith('/') || clean === '..' || clean.startsWith('../'))
        throw mountConfigError(type, 'subpath must be a relative path within the volume');
    }
    if (ro && !source)
      throw mountConfigError(type, 'must not set ReadOnly mode when using anonymous volumes');
    return {
      Type: 'volume',
      Name: source,
      Source: '',
      Destination: dest,
      Driver: LOCAL_DRIVER,
      Mode: '',
      RW: !ro,
      Propagation: '',
      Anonymous: !source,
      CopyData: v.NoCopy !== true,
      ...(subpath ? { Subpath: path.posix.normalize(subpath) } : {}),
      CreateOptions: {
        Options: strMap(driverCfg.Options, 'Driver.Options'),
        Labels: strMap(v.Labels, 'VolumeOptions.Labels'),
      },
    };
  }
  if (isObj(bindOpts)) throw mountConfigError(type, 'field BindOptions must not be specified');
  if (source) throw mountConfigError(type, 'field Source must not be specified');
  const t = isObj(tmpfsOpts) ? tmpfsOpts : {};
  const options: string[] = [];
  if (ro) options.push('ro');
  if (typeof t.Mode === 'number' && t.Mode !== 0) options.push(`mode=${t.Mode.toString(8)}`);
  if (typeof t.SizeBytes === 'number' && t.SizeBytes !== 0) {
    if (t.SizeBytes < 0) throw mountConfigError(type, 'invalid tmpfs size');
    options.push(tmpfsSize(t.SizeBytes));
  }
  return {
    Type: 'tmpfs',
    Name: '',
    Source: '',
    Destination: dest,
    Driver: '',
    Mode: '',
    RW: !ro,
    Propagation: '',
    TmpfsOptions: options,
  };
}

/** `c`, `c:ro`, `c:rw` -> container and mode. */
export function parseVolumesFrom(spec: string): { container: string; rw: boolean } {
  if (!spec) throw invalidArgument('volumes-from specification cannot be an empty string');
  const i = spec.indexOf(':');
  const container = i < 0 ? spec : spec.slice(0, i);
  const mode = i < 0 ? '' : spec.slice(i + 1);
  if (mode) {
    const modes = mode.split(',');
    if (!validMode(mode) || modes.some((m) => PROPAGATIONS.includes(m) || COPY_MODES.includes(m)))
      throw invalidArgument(`invalid mode: ${mode}`);
  }
  return { container, rw: !mode.split(',').includes('ro') };
}

export interface MountRequest {
  binds: unknown;
  mounts: unknown;
  volumesFrom: unknown;
  /** Config.Volumes of the request and the image's VOLUMEs. */
  volumes: string[];
}

function stringList(v: unknown, field: string): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string'))
    throw invalidArgument(`json: cannot unmarshal into Go struct field HostConfig.${field} of type []string`);
  return v as string[];
}

/**
 * Every mount of a new container, in Docker's order of precedence: VolumesFrom, overridden by
 * Binds and Mounts (which must not repeat a destination), then anonymous volumes for the
 * Config.Volumes not covered. `mountsOf` gives another container's mounts (--volumes-from).
 */
export function planMounts(req: MountRequest, mountsOf: (ref: string) => MountPoint[]): MountPoint[] {
  const byDest = new Map<string, MountPoint>();
  for (const spec of stringList(req.volumesFrom, 'VolumesFrom')) {
    const { container, rw } = parseVolumesFrom(spec);
    for (const m of mountsOf(container)) {
      const copy: MountPoint = { ...m, RW: m.RW && rw, CopyData: false, Anonymous: false };
      delete copy.CreateOptions;
      byDest.set(m.Destination, copy);
    }
  }
  const explicit = new Set<string>();
  const own = [
    ...stringList(req.binds, 'Binds').map(parseBind),
    ...(req.mounts === undefined || req.mounts === null
      ? []
      : Array.isArray(req.mounts)
        ? req.mounts.map(parseMountSpec)
        : (() => {
            throw invalidArgument(
              'json: cannot unmarshal into Go struct field HostConfig.Mounts of type []mount.Mount',
            );
          })()),
  ];
  for (const m of own) {
    if (explicit.has(m.Destination)) throw invalidArgument(`Duplicate mount point: ${m.Destination}`);
    explicit.add(m.Destination);
    byDest.set(m.Destination, m);
  }
  for (const v of req.volumes) {
    let dest: string;
    try {
      dest = checkTarget('volume', v);
    } catch (err) {
      throw invalidArgument(`invalid volume specification: '${v}': ${(err as Error).message}`);
    }
    if (byDest.has(dest)) continue;
    byDest.set(dest, {
      Type: 'volume',
      Name: '',
      Source: '',
      Destination: dest,
      Driver: LOCAL_DRIVER,
      Mode: '',
      RW: true,
      Propagation: '',
      Anonymous: true,
      CopyData: true,
    });
  }
  return [...byDest.values()];
}

/** Mounts in the order they must be made: parents before what is mounted inside them. */
export function sortedMounts(mounts: MountPoint[]): MountPoint[] {
  const depth = (m: MountPoint) => (m.Destination === '/' ? 0 : m.Destination.split('/').length);
  return [...mounts].sort((a, b) => depth(a) - depth(b));
}

export interface OciMount {
  destination: string;
  type: string;
  source: string;
  options: string[];
}

/** The OCI runtime spec entries for a container's mounts. */
export function ociMounts(mounts: MountPoint[]): OciMount[] {
  return sortedMounts(mounts).map((m) => {
    if (m.Type === 'tmpfs')
      return {
        destination: m.Destination,
        type: 'tmpfs',
        source: 'tmpfs',
        options: ['nosuid', 'nodev', 'noexec', ...(m.TmpfsOptions ?? [])],
      };
    const source = m.Subpath ? path.join(m.Source, m.Subpath) : m.Source;
    return {
      destination: m.Destination,
      type: 'bind',
      source,
      options: [m.NonRecursive ? 'bind' : 'rbind', m.RW ? 'rw' : 'ro', m.Propagation || 'rprivate'],
    };
  });
}

/** The root propagation a container needs so that shared or slave mounts work (as Docker sets it). */
export function rootfsPropagation(mounts: MountPoint[]): string | undefined {
  const p = mounts.map((m) => m.Propagation);
  if (p.some((x) => x === 'shared' || x === 'rshared')) return 'rshared';
  if (p.some((x) => x === 'slave' || x === 'rslave')) return 'rslave';
  return undefined;
}

/** The mount covering container path `p` (the deepest), if any. */
export function mountFor(mounts: MountPoint[], p: string): { mount: MountPoint; rest: string } | undefined {
  const clean = path.posix.normalize('/' + p);
  let best: MountPoint | undefined;
  for (const m of mounts)
    if (clean === m.Destination || clean.startsWith(m.Destination + '/'))
      if (!best || m.Destination.length > best.Destination.length) best = m;
  if (!best) return undefined;
  return { mount: best, rest: clean.slice(best.Destination.length) || '/' };
}

/** Mount destinations relative to the root: runc's empty mount points there are not changes. */
export function mountPlaceholders(mounts: MountPoint[] | undefined): Set<string> {
  return new Set((mounts ?? []).map((m) => m.Destination.slice(1)).filter(Boolean));
}

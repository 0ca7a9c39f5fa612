/**
 * `-v` and `--mount` flags into the create body's Config.Volumes, HostConfig.Binds and
 * HostConfig.Mounts, the way the docker CLI splits them.
 */
import * as path from 'node:path';
import { parseMemory } from './runflags.js';
import { ExitError } from './errors.js';

export interface MountFlagResult {
  volumes: Record<string, object>;
  binds: string[];
  mounts: Record<string, unknown>[];
}

function bad(flag: string, value: string, why: string): ExitError {
  return new ExitError(125, `invalid argument "${value}" for "${flag}" flag: ${why}`);
}

function truthy(flag: string, value: string, v: string | undefined): boolean {
  if (v === undefined) return true;
  const l = v.toLowerCase();
  if (['1', 'true'].includes(l)) return true;
  if (['0', 'false'].includes(l)) return false;
  throw bad(flag, value, `invalid value for ${v}`);
}

/** One `--mount type=…,source=…,target=…,…` value into a mount.Mount. */
export function parseMountFlag(value: string): Record<string, unknown> {
  const flag = '--mount';
  const m: Record<string, unknown> = { Type: 'volume' };
  const bind: Record<string, unknown> = {};
  const vol: Record<string, unknown> = {};
  const driverOpts: Record<string, string> = {};
  const labels: Record<string, string> = {};
  const tmpfs: Record<string, unknown> = {};
  for (const field of value.split(',')) {
    if (!field) continue;
    const eq = field.indexOf('=');
    const key = (eq < 0 ? field : field.slice(0, eq)).toLowerCase().trim();
    const v = eq < 0 ? undefined : field.slice(eq + 1);
    const need = () => {
      if (v === undefined) throw bad(flag, value, `invalid field '${field}' must be a key=value pair`);
      return v;
    };
    switch (key) {
      case 'type':
        m.Type = need();
        break;
      case 'source':
      case 'src':
        m.Source = need();
        break;
      case 'target':
      case 'dst':
      case 'destination':
        m.Target = need();
        break;
      case 'readonly':
      case 'ro':
        m.ReadOnly = truthy(flag, value, v);
        break;
      case 'consistency':
        m.Consistency = need();
        break;
      case 'bind-propagation':
        bind.Propagation = need();
        break;
      case 'bind-nonrecursive':
        bind.NonRecursive = truthy(flag, value, v);
        break;
      case 'bind-create-mountpoint':
        bind.CreateMountpoint = truthy(flag, value, v);
        break;
      case 'volume-nocopy':
        vol.NoCopy = truthy(flag, value, v);
        break;
      case 'volume-subpath':
        vol.Subpath = need();
        break;
      case 'volume-label': {
        const l = need();
        const i = l.indexOf('=');
        labels[i < 0 ? l : l.slice(0, i)] = i < 0 ? '' : l.slice(i + 1);
        break;
      }
      case 'volume-driver':
        vol.DriverConfig = { ...((vol.DriverConfig as object) ?? {}), Name: need() };
        break;
      case 'volume-opt': {
        const o = need();
        const i = o.indexOf('=');
        if (i < 0) throw bad(flag, value, `invalid field '${field}' must be a key=value pair`);
        driverOpts[o.slice(0, i)] = o.slice(i + 1);
        break;
      }
      case 'tmpfs-size':
        tmpfs.SizeBytes = parseMemory(need(), flag);
        break;
      case 'tmpfs-mode': {
        const mode = parseInt(need(), 8);
        if (!Number.isFinite(mode)) throw bad(flag, value, `invalid value for tmpfs-mode: ${v}`);
        tmpfs.Mode = mode;
        break;
      }
      default:
        throw bad(flag, value, `unexpected key '${key}' in '${field}'`);
    }
  }
  if (!m.Target) throw bad(flag, value, 'target is required');
  if (Object.keys(bind).length) m.BindOptions = bind;
  if (Object.keys(driverOpts).length)
    vol.DriverConfig = { ...((vol.DriverConfig as object) ?? {}), Options: driverOpts };
  if (Object.keys(labels).length) vol.Labels = labels;
  if (Object.keys(vol).length) m.VolumeOptions = vol;
  if (Object.keys(tmpfs).length) m.TmpfsOptions = tmpfs;
  return m;
}

export function mountFlags(volumeFlags: string[], mountFlagValues: string[]): MountFlagResult {
  const volumes: Record<string, object> = {};
  const binds: string[] = [];
  for (const v of volumeFlags) {
    const parts = v.split(':');
    if (parts.length === 1) {
      volumes[v] = {};
      continue;
    }
    // Like the docker CLI: a relative host path (./dir) is made absolute here, on the client.
    if (parts[0].startsWith('.')) parts[0] = path.resolve(parts[0]);
    binds.push(parts.join(':'));
  }
  return { volumes, binds, mounts: mountFlagValues.map(parseMountFlag) };
}

/**
 * Merging of compose files and of `extends`, by the Compose Specification's rules: mappings merge
 * key by key, later wins; `command`, `entrypoint` and `healthcheck.test` are replaced whole; ports
 * are unique by (host ip, published, target, protocol) and volumes by target (later wins); other
 * sequences are appended without duplicates.
 */
import type { MountConfig, NetworkConfig, PortConfig, ServiceConfig, VolumeConfig } from './model.js';

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const REPLACED = new Set(['command', 'entrypoint', 'test']);

function mergeValue(key: string, a: unknown, b: unknown): unknown {
  if (b === undefined) return a;
  if (a === undefined || REPLACED.has(key)) return b;
  if (key === 'ports' && Array.isArray(a) && Array.isArray(b))
    return uniqueBy(a as PortConfig[], b as PortConfig[], portKey);
  if (key === 'volumes' && Array.isArray(a) && Array.isArray(b))
    return uniqueBy(a as MountConfig[], b as MountConfig[], (m) => m.target);
  if (Array.isArray(a) && Array.isArray(b)) {
    const out = [...a];
    for (const x of b) if (!out.some((y) => JSON.stringify(y) === JSON.stringify(x))) out.push(x);
    return out;
  }
  if (isObj(a) && isObj(b)) return mergeObjects(a, b);
  return b;
}

function mergeObjects(a: Obj, b: Obj): Obj {
  const out: Obj = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = mergeValue(k, a[k], v);
  return out;
}

function portKey(p: PortConfig): string {
  return `${p.host_ip ?? ''}:${p.published ?? ''}:${p.target}/${p.protocol}`;
}

function uniqueBy<T>(a: T[], b: T[], key: (x: T) => string): T[] {
  const m = new Map<string, T>();
  for (const x of [...a, ...b]) {
    const k = key(x);
    m.delete(k); // keep the order of the later definition
    m.set(k, x);
  }
  return [...m.values()];
}

export function mergeService(base: ServiceConfig, over: ServiceConfig): ServiceConfig {
  // `networks: [a]` over `networks: {a: {aliases}}` keeps the aliases: null never erases a mapping.
  const merged = mergeObjects(base as Obj, over as Obj) as ServiceConfig;
  if (base.networks && over.networks)
    for (const [k, v] of Object.entries(over.networks))
      if (v === null && base.networks[k]) merged.networks![k] = base.networks[k];
  return merged;
}

export function mergeResources<T extends NetworkConfig | VolumeConfig>(
  base: Record<string, T>,
  over: Record<string, T>,
): Record<string, T> {
  const out: Record<string, T> = { ...base };
  for (const [k, v] of Object.entries(over))
    out[k] = (base[k] ? mergeObjects(base[k] as Obj, v as Obj) : v) as T;
  return out;
}

/** `compose config`: the resolved model written back as YAML (or JSON), keys in a stable order. */
import { stringify } from 'yaml';
import type { Project } from './model.js';

function clean(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(clean);
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) {
      const x = (v as Record<string, unknown>)[k];
      if (x !== undefined) out[k] = clean(x);
    }
    return out;
  }
  // Written back escaped, so the output reads back to the same model.
  return typeof v === 'string' ? v.replace(/\$/g, '$$$$') : v;
}

export function projectModel(p: Project): Record<string, unknown> {
  const model: Record<string, unknown> = { name: p.name, services: clean(p.services) };
  if (Object.keys(p.networks).length) model.networks = clean(p.networks);
  if (Object.keys(p.volumes).length) model.volumes = clean(p.volumes);
  return model;
}

export function renderConfig(p: Project, format: 'yaml' | 'json'): string {
  const model = projectModel(p);
  return format === 'json' ? JSON.stringify(model, null, 2) + '\n' : stringify(model, { lineWidth: 0 });
}

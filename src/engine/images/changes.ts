/**
 * `import --change` and `commit --change`: the Dockerfile instructions that edit an image config.
 */
import { invalidArgument } from '../../common/errors.js';
import type { ContainerConfig } from './manifest.js';

/** Splits on unquoted whitespace, honouring "…", '…' and backslash escapes. */
export function splitWords(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quote: string | null = null;
  let has = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (quote) {
      if (c === quote) quote = null;
      else if (c === '\\' && quote === '"' && i + 1 < s.length) cur += s[++i];
      else cur += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      has = true;
    } else if (c === '\\' && i + 1 < s.length) {
      cur += s[++i];
      has = true;
    } else if (/\s/.test(c)) {
      if (has) out.push(cur);
      cur = '';
      has = false;
    } else {
      cur += c;
      has = true;
    }
  }
  if (quote) throw invalidArgument(`unterminated quote in ${JSON.stringify(s)}`);
  if (has) out.push(cur);
  return out;
}

function jsonArray(s: string): string[] | undefined {
  const t = s.trim();
  if (!t.startsWith('[')) return undefined;
  try {
    const v = JSON.parse(t) as unknown;
    if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v as string[];
  } catch {
    // not JSON: shell form
  }
  return undefined;
}

/** key=value pairs (ENV, LABEL); the legacy `ENV key value` form when there is no '='. */
function pairs(instr: string, rest: string): [string, string][] {
  const words = splitWords(rest);
  if (words.length === 0) throw invalidArgument(`${instr} requires at least one argument`);
  if (!words[0].includes('=')) {
    const m = /^\s*(\S+)\s+([\s\S]*)$/.exec(rest);
    if (!m) throw invalidArgument(`${instr} must have two arguments`);
    return [[m[1], m[2].trim()]];
  }
  return words.map((w) => {
    const eq = w.indexOf('=');
    if (eq <= 0) throw invalidArgument(`${instr} names can not be blank`);
    return [w.slice(0, eq), w.slice(eq + 1)];
  });
}

export function applyChanges(config: ContainerConfig, changes: string[]): ContainerConfig {
  const c: ContainerConfig = { ...config };
  for (const raw of changes) {
    const line = raw.trim();
    if (!line) continue;
    const m = /^(\S+)\s*([\s\S]*)$/.exec(line)!;
    const instr = m[1].toUpperCase();
    const rest = m[2];
    switch (instr) {
      case 'CMD':
      case 'ENTRYPOINT': {
        const args = jsonArray(rest) ?? ['/bin/sh', '-c', rest];
        if (instr === 'CMD') c.Cmd = args;
        else c.Entrypoint = args;
        break;
      }
      case 'ENV': {
        const env = [...(c.Env ?? [])];
        for (const [k, v] of pairs(instr, rest)) {
          const i = env.findIndex((e) => e.split('=')[0] === k);
          if (i >= 0) env[i] = `${k}=${v}`;
          else env.push(`${k}=${v}`);
        }
        c.Env = env;
        break;
      }
      case 'LABEL':
        c.Labels = { ...(c.Labels ?? {}), ...Object.fromEntries(pairs(instr, rest)) };
        break;
      case 'WORKDIR':
        if (!rest.trim()) throw invalidArgument('WORKDIR requires exactly one argument');
        c.WorkingDir = rest.trim();
        break;
      case 'USER':
        if (!rest.trim()) throw invalidArgument('USER requires exactly one argument');
        c.User = rest.trim();
        break;
      case 'EXPOSE': {
        const ports = { ...(c.ExposedPorts ?? {}) };
        for (const p of splitWords(rest)) {
          if (!/^\d{1,5}(-\d{1,5})?(\/(tcp|udp|sctp))?$/i.test(p))
            throw invalidArgument(`invalid containerPort: ${p}`);
          ports[p.includes('/') ? p.toLowerCase() : `${p}/tcp`] = {};
        }
        c.ExposedPorts = ports;
        break;
      }
      case 'VOLUME': {
        const vols = { ...(c.Volumes ?? {}) };
        for (const v of jsonArray(rest) ?? splitWords(rest)) {
          if (!v) throw invalidArgument('VOLUME specified can not be an empty string');
          vols[v] = {};
        }
        c.Volumes = vols;
        break;
      }
      case 'STOPSIGNAL':
        if (!rest.trim()) throw invalidArgument('STOPSIGNAL requires exactly one argument');
        c.StopSignal = rest.trim();
        break;
      case 'ONBUILD':
        c.OnBuild = [...(c.OnBuild ?? []), rest.trim()];
        break;
      default:
        throw invalidArgument(`${m[1]} is not a valid change command`);
    }
  }
  return c;
}

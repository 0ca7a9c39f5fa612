/**
 * Variable interpolation of compose files: `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
 * `${VAR:?error}`, `${VAR?error}`, `${VAR:+replacement}`, `${VAR+replacement}`, and `$$` for a
 * literal `$`. Defaults may themselves contain interpolations.
 */
import { ComposeError } from './errors.js';

export type Environment = Record<string, string | undefined>;

const NAME = /^[A-Za-z_][A-Za-z0-9_]*/;

/** Interpolates one string; `where` names the value in error messages. */
export function interpolateString(s: string, env: Environment, where: string): string {
  let out = '';
  let i = 0;
  while (i < s.length) {
    const c = s[i];
    if (c !== '$') {
      out += c;
      i++;
      continue;
    }
    const next = s[i + 1];
    if (next === '$') {
      out += '$';
      i += 2;
      continue;
    }
    if (next === '{') {
      const end = matchingBrace(s, i + 1);
      if (end < 0) throw new ComposeError(`${where}: invalid interpolation format for ${JSON.stringify(s)}`);
      out += expandBraced(s.slice(i + 2, end), env, where, s);
      i = end + 1;
      continue;
    }
    const m = NAME.exec(s.slice(i + 1));
    if (m) {
      out += env[m[0]] ?? '';
      i += 1 + m[0].length;
      continue;
    }
    // A lone `$` (end of string, or before a character that cannot start a name) stays as written.
    out += '$';
    i++;
  }
  return out;
}

function matchingBrace(s: string, open: number): number {
  let depth = 0;
  for (let j = open; j < s.length; j++) {
    if (s[j] === '{') depth++;
    else if (s[j] === '}' && --depth === 0) return j;
  }
  return -1;
}

function expandBraced(body: string, env: Environment, where: string, whole: string): string {
  const m = NAME.exec(body);
  if (!m) throw new ComposeError(`${where}: invalid interpolation format for ${JSON.stringify(whole)}`);
  const name = m[0];
  const rest = body.slice(name.length);
  const value = env[name];
  if (rest === '') return value ?? '';
  const ops = [':-', ':?', ':+', '-', '?', '+'];
  const op = ops.find((o) => rest.startsWith(o));
  if (!op) throw new ComposeError(`${where}: invalid interpolation format for ${JSON.stringify(whole)}`);
  const arg = () => interpolateString(rest.slice(op.length), env, where);
  const unsetOrEmpty = value === undefined || value === '';
  switch (op) {
    case ':-':
      return unsetOrEmpty ? arg() : value;
    case '-':
      return value === undefined ? arg() : value;
    case ':+':
      return unsetOrEmpty ? '' : arg();
    case '+':
      return value === undefined ? '' : arg();
    case ':?':
      if (unsetOrEmpty) throw missing(name, arg(), where);
      return value;
    default: // '?'
      if (value === undefined) throw missing(name, arg(), where);
      return value;
  }
}

function missing(name: string, message: string, where: string): ComposeError {
  return new ComposeError(
    `${where}: required variable ${name} is missing a value${message ? `: ${message}` : ''}`,
  );
}

/** Interpolates every string value (not keys) of a parsed YAML tree; `path` builds error paths. */
export function interpolateTree(node: unknown, env: Environment, path = ''): unknown {
  if (typeof node === 'string') return interpolateString(node, env, path || '(root)');
  if (Array.isArray(node)) return node.map((v, i) => interpolateTree(v, env, `${path}[${i}]`));
  if (node && typeof node === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(node)) {
      // Extension fields (x-*) are kept as written: they often hold fragments for anchors.
      out[k] = k.startsWith('x-') ? v : interpolateTree(v, env, path ? `${path}.${k}` : k);
    }
    return out;
  }
  return node;
}

/**
 * `.env` and `env_file` files: `KEY=VALUE` lines, `#` comments, optional `export `, single-quoted
 * values taken literally, double-quoted values with `\n`-style escapes, unquoted values with
 * trailing ` #comments` removed. A line with a bare `KEY` takes KEY from `lookup` (if set).
 */
import { readFileSync } from 'node:fs';
import { ComposeError } from './errors.js';

export function parseEnvFile(
  text: string,
  file: string,
  lookup: (k: string) => string | undefined = () => undefined,
): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.split(/\r?\n/);
  for (let n = 0; n < lines.length; n++) {
    let line = lines[n].trim();
    if (!line || line.startsWith('#')) continue;
    if (line.startsWith('export ')) line = line.slice(7).trimStart();
    const eq = line.indexOf('=');
    const key = (eq < 0 ? line : line.slice(0, eq)).trim();
    if (!/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(key))
      throw new ComposeError(`${file}:${n + 1}: invalid variable name ${JSON.stringify(key)}`);
    if (eq < 0) {
      const v = lookup(key);
      if (v !== undefined) out[key] = v;
      continue;
    }
    let value = line.slice(eq + 1).trimStart();
    const q = value[0];
    if (q === '"' || q === "'") {
      // A quoted value may run over several lines.
      let body = value.slice(1);
      while (!closes(body, q) && n + 1 < lines.length) body += '\n' + lines[++n];
      const end = closingQuote(body, q);
      if (end < 0) throw new ComposeError(`${file}:${n + 1}: unterminated quoted value for ${key}`);
      body = body.slice(0, end);
      value = q === "'" ? body : unescape(body);
    } else {
      const hash = value.search(/\s#/);
      if (hash >= 0) value = value.slice(0, hash);
      value = value.trimEnd();
    }
    out[key] = value;
  }
  return out;
}

function closingQuote(s: string, q: string): number {
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\\' && q === '"') i++;
    else if (s[i] === q) return i;
  }
  return -1;
}

function closes(s: string, q: string): boolean {
  return closingQuote(s, q) >= 0;
}

function unescape(s: string): string {
  return s.replace(/\\(.)/g, (_m, c: string) => (c === 'n' ? '\n' : c === 't' ? '\t' : c === 'r' ? '\r' : c));
}

export function readEnvFile(
  file: string,
  lookup?: (k: string) => string | undefined,
  required = true,
): Record<string, string> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if (!required && (err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new ComposeError(`env file ${file} not found: ${(err as Error).message}`);
  }
  return parseEnvFile(text, file, lookup);
}

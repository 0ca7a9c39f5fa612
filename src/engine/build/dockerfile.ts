/**
 * The Dockerfile parser: parser directives (`escape`; `syntax` and `check` ignored), comments, line
 * continuations, heredocs, instruction flags, JSON (exec) or shell forms. Errors name the line, as
 * Docker's do: `dockerfile parse error line N: …`.
 */
import { invalidArgument } from '../../common/errors.js';

export const INSTRUCTIONS = [
  'from',
  'run',
  'cmd',
  'label',
  'maintainer',
  'expose',
  'env',
  'add',
  'copy',
  'entrypoint',
  'volume',
  'user',
  'workdir',
  'arg',
  'onbuild',
  'stopsignal',
  'healthcheck',
  'shell',
] as const;
export type Keyword = (typeof INSTRUCTIONS)[number];

const HEREDOC_INSTRUCTIONS = new Set(['run', 'copy', 'add']);
const JSON_INSTRUCTIONS = new Set(['run', 'cmd', 'entrypoint', 'shell', 'copy', 'add', 'volume']);

export interface Heredoc {
  name: string;
  content: string;
  /** Unquoted delimiters expand variables (COPY/ADD; RUN leaves that to its shell). */
  expand: boolean;
}

export interface Instruction {
  keyword: Keyword;
  /** The instruction as written, continuation lines joined (Docker's "Step N/M : …" text). */
  original: string;
  /** First line of the instruction (1-based). */
  line: number;
  flags: Map<string, string[]>;
  /** Everything after the keyword and flags. */
  rest: string;
  /** Set when `rest` is a JSON array of strings (exec form). */
  json?: string[];
  heredocs: Heredoc[];
}

export interface Dockerfile {
  escape: string;
  instructions: Instruction[];
}

export function parseError(line: number, msg: string): Error {
  return invalidArgument(`dockerfile parse error line ${line}: ${msg}`);
}

const DIRECTIVE_RE = /^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$/;

export function parseDockerfile(text: string): Dockerfile {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  let escape = '\\';
  let i = 0;
  // Parser directives: only at the very top, before any comment, blank line or instruction.
  const seen = new Set<string>();
  for (; i < lines.length; i++) {
    const m = DIRECTIVE_RE.exec(lines[i]);
    if (!m) break;
    const key = m[1].toLowerCase();
    if (seen.has(key)) throw parseError(i + 1, `only one ${key} parser directive can be used`);
    seen.add(key);
    if (key === 'escape') {
      if (m[2] !== '\\' && m[2] !== '`')
        throw parseError(i + 1, `invalid escape token '${m[2]}' does not match ` + '` or \\');
      escape = m[2];
    } else if (key !== 'syntax' && key !== 'check') break;
  }
  const contRe = new RegExp(`${escape === '\\' ? '\\\\' : '`'}[ \\t]*$`);
  const isComment = (l: string): boolean => /^\s*#/.test(l);
  const isBlank = (l: string): boolean => /^\s*$/.test(l);
  const out: Instruction[] = [];
  while (i < lines.length) {
    const raw = lines[i];
    const startLine = i + 1;
    i++;
    if (isBlank(raw) || isComment(raw)) continue;
    let line = raw.replace(/^\s+/, '');
    let ended = !contRe.test(line);
    if (!ended) line = line.replace(contRe, '');
    while (!ended && i < lines.length) {
      const next = lines[i++];
      if (isComment(next)) continue;
      if (isBlank(next)) continue;
      ended = !contRe.test(next);
      line += ended ? next : next.replace(contRe, '');
    }
    line = line.replace(/\s+$/, '');
    const m = /^(\S+)\s*([\s\S]*)$/.exec(line);
    if (!m) continue;
    const keyword = m[1].toLowerCase();
    if (!(INSTRUCTIONS as readonly string[]).includes(keyword))
      throw parseError(startLine, `unknown instruction: ${m[1].toUpperCase()}`);
    const ins = buildInstruction(keyword as Keyword, line, m[2], startLine);
    if (HEREDOC_INSTRUCTIONS.has(keyword) && !ins.json) {
      for (const h of heredocMarkers(ins.rest)) {
        const body: string[] = [];
        let closed = false;
        while (i < lines.length) {
          const l = lines[i++];
          const cmp = h.chomp ? l.replace(/^\t+/, '') : l;
          if (cmp === h.name) {
            closed = true;
            break;
          }
          body.push(cmp);
        }
        if (!closed) throw parseError(startLine, `unterminated heredoc ${h.name}`);
        ins.heredocs.push({
          name: h.name,
          content: body.length ? body.join('\n') + '\n' : '',
          expand: h.expand,
        });
      }
    }
    out.push(ins);
  }
  if (out.length === 0) throw invalidArgument('the Dockerfile cannot be empty');
  return { escape, instructions: out };
}

function buildInstruction(keyword: Keyword, original: string, args: string, line: number): Instruction {
  const flags = new Map<string, string[]>();
  let rest = args;
  // Flags (`--name=value`, `--name`) come first; ONBUILD's flags belong to its trigger.
  if (keyword !== 'onbuild') {
    for (;;) {
      const fm = /^--([A-Za-z0-9-]+)(?:=("(?:[^"\\]|\\.)*"|'[^']*'|\S*))?(?:\s+|$)/.exec(rest);
      if (!fm) break;
      let v = fm[2] ?? 'true';
      if ((v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'"))) v = v.slice(1, -1);
      const list = flags.get(fm[1]) ?? [];
      list.push(v);
      flags.set(fm[1], list);
      rest = rest.slice(fm[0].length);
    }
  }
  const ins: Instruction = { keyword, original, line, flags, rest, heredocs: [] };
  if (JSON_INSTRUCTIONS.has(keyword) && rest.startsWith('[')) {
    try {
      const v: unknown = JSON.parse(rest);
      if (Array.isArray(v) && v.every((x) => typeof x === 'string')) ins.json = v as string[];
    } catch {
      // not JSON: the shell form
    }
  }
  return ins;
}

/** `<<EOF`, `<<-EOF`, `<<"EOF"` in a RUN/COPY/ADD line. */
function heredocMarkers(rest: string): { name: string; chomp: boolean; expand: boolean }[] {
  const out: { name: string; chomp: boolean; expand: boolean }[] = [];
  const re = /(?:^|\s)\d*<<(-?)(["']?)([A-Za-z0-9_.-]+)\2(?=\s|$)/g;
  for (let m = re.exec(rest); m; m = re.exec(rest)) out.push({ name: m[3], chomp: m[1] === '-', expand: !m[2] });
  return out;
}

/**
 * Splits `rest` into words the way Docker's parser does for ENV/LABEL/ARG (quotes and escapes kept in
 * the word for later processing, white space outside quotes separating words).
 */
export function splitWords(rest: string, escape: string): string[] {
  const words: string[] = [];
  let cur = '';
  let quote: string | undefined;
  let inWord = false;
  for (let i = 0; i < rest.length; i++) {
    const ch = rest[i];
    if (!quote && /\s/.test(ch)) {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
      continue;
    }
    inWord = true;
    if (ch === escape && quote !== "'") {
      cur += ch;
      if (i + 1 < rest.length) cur += rest[++i];
      continue;
    }
    if (quote === ch) quote = undefined;
    else if (!quote && (ch === '"' || ch === "'")) quote = ch;
    cur += ch;
  }
  if (inWord) words.push(cur);
  return words;
}

/** `ENV`/`LABEL`: `k=v k2="v 2"` or the legacy `k value with spaces`. Values are unprocessed. */
export function parseNameValues(ins: Instruction, escape: string): [string, string][] {
  const kw = ins.keyword.toUpperCase();
  const words = splitWords(ins.rest, escape);
  if (words.length === 0) throw parseError(ins.line, `${kw} requires at least one argument`);
  if (!words[0].includes('=')) {
    const m = /^(\S+)\s+([\s\S]*)$/.exec(ins.rest);
    if (!m || m[2].trim() === '') throw parseError(ins.line, `${kw} must have two arguments`);
    return [[m[1], m[2].trim()]];
  }
  return words.map((w) => {
    const eq = w.indexOf('=');
    if (eq <= 0)
      throw parseError(
        ins.line,
        `Syntax error - can't find = in "${w}". Must be of the form: name=value`,
      );
    return [w.slice(0, eq), w.slice(eq + 1)];
  });
}

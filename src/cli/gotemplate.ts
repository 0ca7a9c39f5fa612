/**
 * The subset of Go's text/template that `--format` uses in Docker's CLI: fields, pipelines,
 * functions (json, join, index, upper, lower, title, split, len, println, printf, truncate, pad,
 * eq/ne/lt/gt/and/or/not), if/else, range, with, and `{{-`/`-}}` trimming.
 */
import { invalidArgument } from '../common/errors.js';

type Value = unknown;
type Node =
  | { kind: 'text'; text: string }
  | { kind: 'action'; pipe: Pipeline }
  | { kind: 'if' | 'with'; pipe: Pipeline; then: Node[]; else: Node[] }
  | { kind: 'range'; pipe: Pipeline; body: Node[]; else: Node[] };
type Operand =
  | { kind: 'field'; path: string[]; base: 'dot' | 'var'; varName?: string }
  | { kind: 'literal'; value: Value }
  | { kind: 'ident'; name: string }
  | { kind: 'sub'; pipe: Pipeline };
type Command = Operand[];
type Pipeline = Command[];

/** `json` alone means one JSON object per line (handled by the caller). */
export function isJsonFormat(format: string): boolean {
  return format.trim() === 'json';
}

function fail(msg: string): never {
  throw invalidArgument(`template: ${msg}`);
}

function tokenizeAction(src: string): string[] {
  const toks: string[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i];
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === '"' || c === '`') {
      let j = i + 1;
      while (j < src.length && src[j] !== c) j += src[j] === '\\' && c === '"' ? 2 : 1;
      if (j >= src.length) fail('unterminated quoted string');
      toks.push(src.slice(i, j + 1));
      i = j + 1;
      continue;
    }
    if ('()|'.includes(c)) {
      toks.push(c);
      i++;
      continue;
    }
    let j = i;
    while (j < src.length && !/[\s()|"`]/.test(src[j])) j++;
    toks.push(src.slice(i, j));
    i = j;
  }
  return toks;
}

function parsePipeline(toks: string[], pos: { i: number }, stopAtParen: boolean): Pipeline {
  const pipe: Pipeline = [];
  let cmd: Command = [];
  while (pos.i < toks.length) {
    const t = toks[pos.i];
    if (t === ')') {
      if (!stopAtParen) fail('unexpected )');
      break;
    }
    pos.i++;
    if (t === '|') {
      if (!cmd.length) fail('missing command before |');
      pipe.push(cmd);
      cmd = [];
      continue;
    }
    if (t === '(') {
      const sub = parsePipeline(toks, pos, true);
      if (toks[pos.i] !== ')') fail('unclosed (');
      pos.i++;
      cmd.push({ kind: 'sub', pipe: sub });
      continue;
    }
    cmd.push(parseOperand(t));
  }
  if (cmd.length) pipe.push(cmd);
  if (!pipe.length) fail('missing value for command');
  return pipe;
}

function parseOperand(t: string): Operand {
  if (t.startsWith('"')) return { kind: 'literal', value: JSON.parse(t) as string };
  if (t.startsWith('`')) return { kind: 'literal', value: t.slice(1, -1) };
  if (/^-?\d+(\.\d+)?$/.test(t)) return { kind: 'literal', value: Number(t) };
  if (t === 'true' || t === 'false') return { kind: 'literal', value: t === 'true' };
  if (t === 'nil') return { kind: 'literal', value: null };
  if (t === '.') return { kind: 'field', path: [], base: 'dot' };
  if (t.startsWith('.')) return { kind: 'field', path: t.slice(1).split('.'), base: 'dot' };
  if (t.startsWith('$')) {
    const [name, ...path] = t.split('.');
    return { kind: 'field', path, base: 'var', varName: name };
  }
  return { kind: 'ident', name: t };
}

function parse(src: string): Node[] {
  const root: Node[] = [];
  const stack: { node: Node | null; list: Node[] }[] = [{ node: null, list: root }];
  let i = 0;
  let trimNext = false;
  while (i < src.length) {
    const open = src.indexOf('{{', i);
    let text = open < 0 ? src.slice(i) : src.slice(i, open);
    if (trimNext) text = text.replace(/^\s+/, '');
    trimNext = false;
    if (open < 0) {
      if (text) stack[stack.length - 1].list.push({ kind: 'text', text });
      break;
    }
    let inner = src.slice(open + 2);
    const close = inner.indexOf('}}');
    if (close < 0) fail('unclosed action');
    inner = inner.slice(0, close);
    i = open + 2 + close + 2;
    if (inner.startsWith('- ') || inner === '-') {
      text = text.replace(/\s+$/, '');
      inner = inner.slice(1);
    }
    if (inner.endsWith(' -')) {
      trimNext = true;
      inner = inner.slice(0, -1);
    }
    if (text) stack[stack.length - 1].list.push({ kind: 'text', text });
    const body = inner.trim();
    if (body.startsWith('/*')) continue;
    const toks = tokenizeAction(body);
    const kw = toks[0];
    const top = stack[stack.length - 1];
    if (kw === 'if' || kw === 'with' || kw === 'range') {
      const pipe = parsePipeline(toks.slice(1), { i: 0 }, false);
      const node: Node =
        kw === 'range' ? { kind: 'range', pipe, body: [], else: [] } : { kind: kw, pipe, then: [], else: [] };
      top.list.push(node);
      stack.push({
        node,
        list: kw === 'range' ? (node as { body: Node[] }).body : (node as { then: Node[] }).then,
      });
    } else if (kw === 'else') {
      const n = top.node;
      if (!n || n.kind === 'text' || n.kind === 'action') fail('unexpected {{else}}');
      if (toks[1] === 'if') {
        const inner2: Node = {
          kind: 'if',
          pipe: parsePipeline(toks.slice(2), { i: 0 }, false),
          then: [],
          else: [],
        };
        (n as { else: Node[] }).else.push(inner2);
        top.list = inner2.then;
        top.node = inner2;
        (top as { chained?: number }).chained = ((top as { chained?: number }).chained ?? 0) + 1;
      } else top.list = (n as { else: Node[] }).else;
    } else if (kw === 'end') {
      if (stack.length === 1) fail('unexpected {{end}}');
      stack.pop();
    } else {
      top.list.push({ kind: 'action', pipe: parsePipeline(toks, { i: 0 }, false) });
    }
  }
  if (stack.length > 1) fail('unexpected EOF');
  return root;
}

function truthy(v: Value): boolean {
  if (v === null || v === undefined || v === false || v === 0 || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === 'object') return Object.keys(v as object).length > 0;
  return true;
}

/** Go's encoding/json escapes <, > and & in HTML-safe mode. */
function goJson(v: Value): string {
  return (JSON.stringify(v ?? null) ?? 'null')
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026');
}

export function printValue(v: Value): string {
  if (v === null || v === undefined) return '<no value>';
  if (Array.isArray(v)) return `[${v.map(printValue).join(' ')}]`;
  if (typeof v === 'object') {
    const entries = Object.entries(v as Record<string, Value>).sort(([a], [b]) => (a < b ? -1 : 1));
    return `map[${entries.map(([k, x]) => `${k}:${printValue(x)}`).join(' ')}]`;
  }
  return String(v);
}

function sprintf(fmt: string, args: Value[]): string {
  let i = 0;
  return fmt.replace(/%([-+ 0#]*\d*(?:\.\d+)?)([sdvqfx%])/g, (_m, flags: string, verb: string) => {
    if (verb === '%') return '%';
    const a = args[i++];
    let s: string;
    if (verb === 'q') s = JSON.stringify(String(a));
    else if (verb === 'd') s = String(Math.trunc(Number(a)));
    else if (verb === 'f') {
      const prec = /\.(\d+)/.exec(flags);
      s = Number(a).toFixed(prec ? Number(prec[1]) : 6);
    } else if (verb === 'x')
      s = typeof a === 'number' ? a.toString(16) : Buffer.from(String(a)).toString('hex');
    else s = printValue(a);
    const w = /^(-?)0?(\d+)/.exec(flags.replace(/\.\d+$/, ''));
    if (w) s = w[1] ? s.padEnd(Number(w[2])) : s.padStart(Number(w[2]));
    return s;
  });
}

const FUNCS: Record<string, (...a: Value[]) => Value> = {
  json: (v) => goJson(v),
  join: (list, sep) => (Array.isArray(list) ? list.map(printValue).join(String(sep)) : printValue(list)),
  split: (s, sep) => String(s).split(String(sep)),
  lower: (s) => String(s).toLowerCase(),
  upper: (s) => String(s).toUpperCase(),
  title: (s) => String(s).replace(/\b\w/g, (c) => c.toUpperCase()),
  len: (v) =>
    Array.isArray(v) || typeof v === 'string'
      ? v.length
      : v && typeof v === 'object'
        ? Object.keys(v).length
        : 0,
  index: (v, ...keys) => {
    let cur = v;
    for (const k of keys) {
      if (cur === null || cur === undefined) return undefined;
      cur = (cur as Record<string, Value>)[String(k)];
    }
    return cur;
  },
  println: (...a) => a.map(printValue).join(' ') + '\n',
  print: (...a) => a.map(printValue).join(''),
  printf: (fmt, ...a) => sprintf(String(fmt), a),
  truncate: (s, n) => [...String(s)].slice(0, Number(n)).join(''),
  pad: (s, l, r) => ' '.repeat(Number(l)) + String(s) + ' '.repeat(Number(r)),
  eq: (a, ...bs) => bs.some((b) => a === b),
  ne: (a, b) => a !== b,
  lt: (a, b) => (a as number) < (b as number),
  le: (a, b) => (a as number) <= (b as number),
  gt: (a, b) => (a as number) > (b as number),
  ge: (a, b) => (a as number) >= (b as number),
  and: (...a) => a.find((x) => !truthy(x)) ?? a[a.length - 1],
  or: (...a) => a.find((x) => truthy(x)) ?? a[a.length - 1],
  not: (a) => !truthy(a),
};

interface Scope {
  dot: Value;
  vars: Record<string, Value>;
  /** Data decoded from JSON is a map in Go: a missing key prints <no value> instead of failing. */
  lenient: boolean;
}

function field(base: Value, path: string[], src: string, lenient: boolean): Value {
  let cur = base;
  for (const p of path) {
    if (cur === null || cur === undefined) return undefined;
    if (typeof cur !== 'object')
      fail(`executing "" at <${src}>: can't evaluate field ${p} in type ${typeof cur}`);
    if (!(p in (cur as object))) {
      if (lenient || isMapLike(cur)) return undefined;
      fail(`:1:2: executing "" at <${src}>: can't evaluate field ${p}`);
    }
    cur = (cur as Record<string, Value>)[p];
  }
  return cur;
}

/** Objects whose keys are data (labels, options) rather than fields: missing keys print <no value>. */
const mapLike = new WeakSet<object>();
function isMapLike(v: object): boolean {
  return mapLike.has(v);
}

function evalOperand(op: Operand, s: Scope, args: Value[] | undefined): Value {
  switch (op.kind) {
    case 'literal':
      return op.value;
    case 'sub':
      return evalPipeline(op.pipe, s);
    case 'field': {
      const base = op.base === 'dot' ? s.dot : s.vars[op.varName!];
      const src =
        (op.base === 'var' ? op.varName : '') +
        (op.path.length ? '.' + op.path.join('.') : op.base === 'dot' ? '.' : '');
      return field(base, op.path, src, s.lenient);
    }
    case 'ident': {
      const fn = FUNCS[op.name];
      if (!fn) fail(`function "${op.name}" not defined`);
      return fn(...(args ?? []));
    }
  }
}

function evalCommand(cmd: Command, s: Scope, piped: Value[] | undefined): Value {
  const [head, ...rest] = cmd;
  if (head.kind === 'ident') {
    const args = rest.map((o) => evalOperand(o, s, undefined));
    return evalOperand(head, s, piped ? [...args, ...piped] : args);
  }
  if (rest.length) fail(`can't give argument to non-function`);
  return evalOperand(head, s, undefined);
}

function evalPipeline(pipe: Pipeline, s: Scope): Value {
  let v: Value[] | undefined;
  for (const cmd of pipe) v = [evalCommand(cmd, s, v)];
  return v?.[0];
}

function exec(nodes: Node[], s: Scope, out: string[]): void {
  for (const n of nodes) {
    switch (n.kind) {
      case 'text':
        out.push(n.text);
        break;
      case 'action':
        out.push(printValue(evalPipeline(n.pipe, s)));
        break;
      case 'if': {
        const v = evalPipeline(n.pipe, s);
        exec(truthy(v) ? n.then : n.else, s, out);
        break;
      }
      case 'with': {
        const v = evalPipeline(n.pipe, s);
        if (truthy(v)) exec(n.then, { ...s, dot: v }, out);
        else exec(n.else, s, out);
        break;
      }
      case 'range': {
        const v = evalPipeline(n.pipe, s);
        const items = Array.isArray(v) ? v : v && typeof v === 'object' ? Object.values(v) : [];
        if (!items.length) exec(n.else, s, out);
        for (const it of items) exec(n.body, { ...s, dot: it }, out);
        break;
      }
    }
  }
}

export function compileTemplate(format: string, opts: { lenient?: boolean } = {}): (data: unknown) => string {
  const nodes = parse(format);
  return (data) => {
    const out: string[] = [];
    exec(nodes, { dot: data, vars: { $: data }, lenient: opts.lenient ?? false }, out);
    return out.join('');
  };
}

export function renderTemplate(format: string, data: unknown): string {
  return compileTemplate(format)(data);
}

/** Marks an object as a map (labels etc.): missing keys give <no value> instead of an error. */
export function asMap<T extends object>(o: T): T {
  mapLike.add(o);
  return o;
}

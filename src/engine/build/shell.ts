/**
 * Docker's word processing for Dockerfile arguments (the builder's shell lexer): quotes removed,
 * the escape character honoured, and `$VAR`, `${VAR}`, `${VAR:-word}`, `${VAR-word}`,
 * `${VAR:+word}`, `${VAR+word}`, `${VAR:?msg}`, `${VAR?msg}` expanded from the build's environment.
 * RUN, CMD and ENTRYPOINT are not processed here: their shell does it.
 */
import { invalidArgument } from '../../common/errors.js';

/** `NAME=value` pairs, later ones win (the stage's ENV and ARG state). */
export type Env = Map<string, string>;

class Scanner {
  pos = 0;
  constructor(readonly s: string) {}
  peek(): string | undefined {
    return this.pos < this.s.length ? this.s[this.pos] : undefined;
  }
  next(): string | undefined {
    return this.pos < this.s.length ? this.s[this.pos++] : undefined;
  }
}

function lexError(word: string, reason: string): Error {
  return invalidArgument(`failed to process "${word}": ${reason}`);
}

export class ShellLex {
  constructor(readonly escape: string = '\\') {}

  /** One word: quotes removed, variables expanded. */
  processWord(word: string, env: Env): string {
    const sc = new Scanner(word);
    return this.process(sc, env, word, undefined);
  }

  /** Several words split on unquoted white space, each processed (EXPOSE, VOLUME, COPY shell form). */
  processWords(line: string, env: Env): string[] {
    const words: string[] = [];
    let cur = '';
    let inWord = false;
    let quote: string | undefined;
    for (let i = 0; i < line.length; i++) {
      const ch = line[i];
      if (!quote && /\s/.test(ch)) {
        if (inWord) words.push(cur);
        cur = '';
        inWord = false;
        continue;
      }
      inWord = true;
      if (ch === this.escape && quote !== "'") {
        cur += ch;
        if (i + 1 < line.length) cur += line[++i];
        continue;
      }
      if (quote && ch === quote) quote = undefined;
      else if (!quote && (ch === '"' || ch === "'")) quote = ch;
      cur += ch;
    }
    if (inWord) words.push(cur);
    return words.map((w) => this.processWord(w, env));
  }

  private process(sc: Scanner, env: Env, word: string, stop: string | undefined): string {
    let out = '';
    for (;;) {
      const ch = sc.peek();
      if (ch === undefined) {
        if (stop) throw lexError(word, `unexpected end of statement while looking for matching ${stop}`);
        return out;
      }
      if (stop && ch === stop) {
        sc.next();
        return out;
      }
      sc.next();
      if (ch === this.escape) {
        const n = sc.next();
        if (n !== undefined) out += n;
        continue;
      }
      if (ch === "'") {
        out += this.singleQuoted(sc, word);
        continue;
      }
      if (ch === '"') {
        out += this.doubleQuoted(sc, env, word);
        continue;
      }
      if (ch === '$') {
        out += this.dollar(sc, env, word);
        continue;
      }
      out += ch;
    }
  }

  private singleQuoted(sc: Scanner, word: string): string {
    let out = '';
    for (;;) {
      const ch = sc.next();
      if (ch === undefined) throw lexError(word, 'unexpected end of statement while looking for matching single-quote');
      if (ch === "'") return out;
      out += ch;
    }
  }

  private doubleQuoted(sc: Scanner, env: Env, word: string): string {
    let out = '';
    for (;;) {
      const ch = sc.next();
      if (ch === undefined) throw lexError(word, 'unexpected end of statement while looking for matching double-quote');
      if (ch === '"') return out;
      if (ch === '$') {
        out += this.dollar(sc, env, word);
        continue;
      }
      if (ch === this.escape) {
        const n = sc.peek();
        if (n === undefined) continue;
        if (n === '"' || n === '$' || n === this.escape) {
          out += sc.next();
          continue;
        }
      }
      out += ch;
    }
  }

  private name(sc: Scanner): string {
    const first = sc.peek();
    if (first !== undefined && /[0-9]/.test(first)) return sc.next()!;
    let name = '';
    for (let c = sc.peek(); c !== undefined && /[A-Za-z0-9_]/.test(c); c = sc.peek()) name += sc.next();
    return name;
  }

  private dollar(sc: Scanner, env: Env, word: string): string {
    if (sc.peek() !== '{') {
      const name = this.name(sc);
      if (name === '') return '$';
      return env.get(name) ?? '';
    }
    sc.next();
    const name = this.name(sc);
    if (name === '') throw lexError(word, 'bad substitution');
    const value = env.get(name);
    let op = sc.next();
    if (op === '}') return value ?? '';
    let colon = false;
    if (op === ':') {
      colon = true;
      op = sc.next();
    }
    if (op === undefined) throw lexError(word, 'syntax error: missing }');
    if (op !== '-' && op !== '+' && op !== '?') {
      if (colon) throw lexError(word, `unsupported modifier (${op}) in substitution`);
      throw lexError(word, `missing ':' in substitution`);
    }
    const arg = this.process(sc, env, word, '}');
    const set = value !== undefined && (!colon || value !== '');
    switch (op) {
      case '-':
        return set ? value! : arg;
      case '+':
        return set ? arg : '';
      default:
        if (!set) throw invalidArgument(`${name}: ${arg || 'is not allowed to be unset'}`);
        return value!;
    }
  }
}

/** Docker's environment list (`K=V`) as a map. */
export function envMap(list: string[] = []): Env {
  const m: Env = new Map();
  for (const e of list) {
    const i = e.indexOf('=');
    if (i < 0) m.set(e, '');
    else m.set(e.slice(0, i), e.slice(i + 1));
  }
  return m;
}

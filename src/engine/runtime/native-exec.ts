/**
 * A streamed, non-TTY exec started by our own helper (native/berth_exec.c) instead of `runc exec`.
 *
 * runc exec costs ~95 ms here, nearly all of it two Go runtime start-ups (runc, then `runc init`
 * in the container); the helper does the same joining in ~5 ms: the container's cgroups and
 * namespaces, then capabilities, groups, uid/gid, cwd, no_new_privs, the container's seccomp filter,
 * rlimits, oom_score_adj, and no fds but stdio. What it does not do (a terminal, an AppArmor or
 * SELinux label, a seccomp action it cannot build) makes `execSettings` return undefined, and the
 * caller uses runc.
 *
 * The helper runs from a sealed memfd copy (see `ExecHelper`), never from its file on disk.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync } from 'node:fs';
import { Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { native } from '../../common/native.js';
import { cgroupProcsFiles } from './cgroups.js';
import { collectExit } from './detached.js';
import { procStat } from './procstat.js';
import { RuntimeError } from './conmon.js';
import { type DirectExec, PipeAttach, type ProcessPipes } from './runc-exec.js';
import type { OciSeccomp } from './seccomp.js';
import { ALL_CAPS } from './spec.js';

/** The parts of an OCI process spec an exec carries. */
export interface ExecProcess {
  terminal?: boolean;
  user: { uid: number; gid: number; additionalGids?: number[] };
  args: string[];
  env?: string[];
  cwd: string;
  capabilities?: Partial<
    Record<'bounding' | 'effective' | 'permitted' | 'inheritable' | 'ambient', string[]>
  >;
  rlimits?: { type: string; soft: number; hard: number }[];
  noNewPrivileges?: boolean;
  oomScoreAdj?: number;
  apparmorProfile?: string;
  selinuxLabel?: string;
}

const RLIMITS = [
  'CPU', 'FSIZE', 'DATA', 'STACK', 'CORE', 'RSS', 'NPROC', 'NOFILE', 'MEMLOCK', 'AS', 'LOCKS', 'SIGPENDING',
  'MSGQUEUE', 'NICE', 'RTPRIO', 'RTTIME',
]; // prettier-ignore

const SECCOMP_ACTIONS: Record<string, string> = {
  SCMP_ACT_ALLOW: 'allow',
  SCMP_ACT_ERRNO: 'errno',
  SCMP_ACT_KILL: 'kill',
  SCMP_ACT_KILL_THREAD: 'kill_thread',
  SCMP_ACT_KILL_PROCESS: 'kill_process',
  SCMP_ACT_TRAP: 'trap',
  SCMP_ACT_TRACE: 'trace',
  SCMP_ACT_LOG: 'log',
};

const SECCOMP_OPS: Record<string, string> = {
  SCMP_CMP_NE: 'ne',
  SCMP_CMP_LT: 'lt',
  SCMP_CMP_LE: 'le',
  SCMP_CMP_EQ: 'eq',
  SCMP_CMP_GE: 'ge',
  SCMP_CMP_GT: 'gt',
  SCMP_CMP_MASKED_EQ: 'masked_eq',
};

const EPERM = 1;
const RLIM_INFINITY = 18446744073709551615n;

function capMask(names: string[] | undefined): string | undefined {
  let mask = 0n;
  for (const name of names ?? []) {
    const n = ALL_CAPS.indexOf(name.startsWith('CAP_') ? name : `CAP_${name}`);
    if (n < 0) return undefined;
    mask |= 1n << BigInt(n);
  }
  return mask.toString(16);
}

function u64(v: unknown): string | undefined {
  if (typeof v !== 'number' || !Number.isFinite(v)) return undefined;
  return v < 0 ? RLIM_INFINITY.toString() : BigInt(Math.trunc(v)).toString();
}

/** The OCI seccomp section as the helper's rules, grouped the way runc hands them to libseccomp. */
function seccompSettings(s: OciSeccomp): [string, string][] | undefined {
  const action = (name: string, errno: number | undefined): string | undefined => {
    const a = SECCOMP_ACTIONS[name];
    return a ? `${a} ${errno ?? EPERM}` : undefined;
  };
  const def = action(s.defaultAction, s.defaultErrnoRet);
  if (!def) return undefined;
  const out: [string, string][] = [['seccomp.default', def]];
  for (const arch of s.architectures)
    out.push(['seccomp.arch', arch.replace(/^SCMP_ARCH_/, '').toLowerCase()]);
  for (const rule of s.syscalls) {
    const act = action(rule.action, rule.errnoRet);
    if (!act) return undefined;
    if (act === def) continue; // libseccomp refuses a rule that repeats the default
    const conds: string[] = [];
    const perIndex = new Map<number, number>();
    for (const raw of rule.args ?? []) {
      const a = raw as { index?: unknown; value?: unknown; valueTwo?: unknown; op?: unknown };
      const op = typeof a.op === 'string' ? SECCOMP_OPS[a.op] : undefined;
      const v1 = u64(a.value ?? 0);
      const v2 = u64(a.valueTwo ?? 0);
      if (typeof a.index !== 'number' || a.index < 0 || a.index > 5 || !op || !v1 || !v2) return undefined;
      perIndex.set(a.index, (perIndex.get(a.index) ?? 0) + 1);
      conds.push(`${a.index} ${op} ${v1} ${v2}`);
    }
    // Two conditions on one argument cannot be ANDed by libseccomp: runc adds one rule for each.
    const groups = [...perIndex.values()].some((n) => n > 1) ? conds.map((c) => [c]) : [conds];
    for (const name of rule.names)
      for (const g of groups) out.push(['seccomp.rule', [act, name, ...g].join(' ')]);
  }
  return out;
}

/**
 * The helper's settings (NUL-separated key/value strings) for running `proc` in the container whose
 * init is `initPid`; undefined when the helper cannot honour the spec exactly. `seccompCache` is a
 * directory where compiled seccomp filters are kept.
 */
export function execSettings(
  initPid: number,
  proc: ExecProcess,
  seccomp?: OciSeccomp,
  seccompCache?: string,
): Buffer | undefined {
  if (proc.terminal || proc.apparmorProfile || proc.selinuxLabel) return undefined;
  const starttime = procStat(initPid)?.starttime;
  const cgroups = cgroupProcsFiles(initPid);
  if (!starttime || !cgroups) return undefined;
  const kv: [string, string][] = [
    ['pid', String(initPid)],
    ['starttime', starttime],
    ...cgroups.map((f): [string, string] => ['cgroup', f]),
    ['uid', String(proc.user.uid)],
    ['gid', String(proc.user.gid)],
    ...(proc.user.additionalGids ?? []).map((g): [string, string] => ['group', String(g)]),
    ['cwd', proc.cwd || '/'],
    ['nnp', proc.noNewPrivileges ? '1' : '0'],
  ];
  for (const set of ['bounding', 'effective', 'permitted', 'inheritable', 'ambient'] as const) {
    const mask = capMask(proc.capabilities?.[set]);
    if (mask === undefined) return undefined;
    kv.push([`cap.${set}`, mask]);
  }
  for (const r of proc.rlimits ?? []) {
    const n = RLIMITS.indexOf(r.type.replace(/^RLIMIT_/, ''));
    const soft = u64(r.soft);
    const hard = u64(r.hard);
    if (n < 0 || !soft || !hard) return undefined;
    kv.push(['rlimit', `${n} ${soft} ${hard}`]);
  }
  if (proc.oomScoreAdj !== undefined) kv.push(['oom', String(proc.oomScoreAdj)]);
  if (seccomp) {
    const rules = seccompSettings(seccomp);
    if (!rules) return undefined;
    kv.push(...rules);
    // compiling ~400 rules for three architectures takes libseccomp ~40 ms: once per distinct filter
    if (seccompCache) {
      const key = createHash('sha256')
        .update(rules.map(([k, v]) => `${k}=${v}`).join('\n'))
        .digest('hex');
      kv.push(['seccomp.cache', path.join(seccompCache, `${key}.bpf`)]);
    }
  }
  for (const a of proc.args) kv.push(['arg', a]);
  for (const e of proc.env ?? []) kv.push(['env', e]);
  if (kv.some(([, v]) => v.includes('\0'))) return undefined;
  return Buffer.from(kv.map(([k, v]) => `${k}\0${v}\0`).join(''));
}

/**
 * The helper binary, copied once into a sealed memfd that it is run from: a container process that
 * reaches the helper through /proc/<pid>/exe finds an unwritable anonymous file, not ours on disk.
 */
export class ExecHelper {
  private runPath: string | null | undefined;

  constructor(private readonly binary = defaultBinary()) {}

  /** The path to spawn, or undefined when the helper is not built (runc exec is used then). */
  path(): string | undefined {
    if (this.runPath === undefined) {
      this.runPath = null;
      if (native.sealedCopy && existsSync(this.binary)) {
        const fd = native.sealedCopy(this.binary);
        this.runPath = `/proc/${process.pid}/fd/${fd}`;
      }
    }
    return this.runPath ?? undefined;
  }
}

function defaultBinary(): string {
  // dist/src/engine/runtime/native-exec.js -> <root>/build/Release/berth-exec
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../../build/Release/berth-exec');
}

/** The helper's stdio, its settings pipe (its fd 3) and its status pipe (its fd 4). */
interface HelperProcess extends ProcessPipes {
  settings: NodeJS.WritableStream;
  status: NodeJS.ReadableStream & { destroy(): void };
  /** Collects the helper's exit once it has said its last word (no zombie is left). */
  reap(): void;
}

/**
 * Starts the helper with posix_spawn from the addon: child_process forks, and copying the daemon's
 * page tables costs ~5-8 ms of every exec here (detached.ts has the numbers).
 */
function startHelper(helper: string, stdin: boolean): HelperProcess {
  const { pipe, spawnDetached, reap } = native;
  if (!pipe || !spawnDetached || !reap) return startWithChildProcess(helper, stdin);
  const opened: number[] = [];
  const open = (): [number, number] => {
    const p = pipe();
    opened.push(...p);
    return p;
  };
  try {
    const input = stdin ? open() : undefined;
    const [outR, outW] = open();
    const [errR, errW] = open();
    const [setR, setW] = open();
    const [statR, statW] = open();
    const pid = spawnDetached(helper, [helper], [], '/', [input ? input[0] : -1, outW, errW, setR, statW]);
    for (const fd of [input?.[0], outW, errW, setR, statW]) if (fd !== undefined) closeSync(fd);
    const reader = (fd: number) => new Socket({ fd, readable: true, writable: false });
    return {
      stdin: input ? new Socket({ fd: input[1], readable: false, writable: true }) : undefined,
      stdout: reader(outR),
      stderr: reader(errR),
      settings: new Socket({ fd: setW, readable: false, writable: true }),
      status: reader(statR),
      reap: () => collectExit(pid, reap),
    };
  } catch (err) {
    for (const fd of opened) {
      try {
        closeSync(fd);
      } catch {
        // closed already
      }
    }
    throw err;
  }
}

/** An addon built before posix_spawn: child_process (libuv reaps it). */
function startWithChildProcess(helper: string, stdin: boolean): HelperProcess {
  const child = spawn(helper, [], {
    stdio: [stdin ? 'pipe' : 'ignore', 'pipe', 'pipe', 'pipe', 'pipe'],
    detached: true, // its own process group: a signal to the daemon's group is not the exec's
  });
  child.on('error', () => undefined); // seen as the status pipe's end without a word
  return {
    stdin: child.stdin ?? undefined,
    stdout: child.stdout!,
    stderr: child.stderr!,
    settings: child.stdio[3] as Writable,
    status: child.stdio[4] as Readable,
    reap: () => child.unref(),
  };
}

/**
 * Starts the helper with the settings; resolves once the process runs, rejects with why it did not.
 * The helper reports on its fd 4: "ok <pid>" or "error <why>", then "exit <code>" when it ends.
 */
export function nativeExec(helper: string, settings: Buffer, opts: { stdin: boolean }): Promise<DirectExec> {
  let proc: HelperProcess;
  try {
    proc = startHelper(helper, opts.stdin);
  } catch (err) {
    return Promise.reject(new RuntimeError(`exec failed: ${(err as Error).message}`));
  }
  const attach = new PipeAttach(proc);
  proc.settings.on('error', () => undefined);
  proc.settings.end(settings);
  proc.status.on('error', () => undefined);
  let resolveExit!: (code: number) => void;
  const exitCode = new Promise<number>((resolve) => (resolveExit = resolve));
  return new Promise<DirectExec>((resolve, reject) => {
    let text = '';
    let started = false;
    let done = false;
    const fail = (message: string) => {
      if (started || done) return;
      done = true;
      attach.discard();
      reject(new RuntimeError(`exec failed: unable to start container process: ${message}`));
    };
    const line = (l: string) => {
      const ok = /^ok (\d+)$/.exec(l);
      const exit = /^exit (\d+)$/.exec(l);
      if (ok && !started && !done) {
        started = true;
        resolve({ pid: Number(ok[1]), exitCode, attach });
      } else if (exit) resolveExit(Number(exit[1]));
      else fail(l.replace(/^error /, ''));
    };
    proc.status.on('data', (d: Buffer) => {
      text += d.toString('utf8');
      for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n')) {
        line(text.slice(0, nl));
        text = text.slice(nl + 1);
      }
    });
    proc.status.once('close', () => {
      fail(text.trim().replace(/^error /, '') || 'exec helper ended without a word');
      resolveExit(-1); // the helper itself was killed: no code to tell
      proc.status.destroy();
      proc.reap();
    });
  });
}

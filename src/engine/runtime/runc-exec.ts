/**
 * A non-detached, non-TTY exec run by `runc exec` as a child of the daemon, without conmon.
 *
 * conmon exists so that a process outlives the daemon; an exec whose output streams to a client
 * (or to a health probe) ends with its client anyway, so the daemon holds runc's pipes itself and
 * saves conmon's start-up and its pipe/socket handshakes. runc gives the process its own stdio
 * (our pipes), writes the host pid to --pid-file once the process runs, and exits with the
 * process's exit code (128+N on a signal).
 *
 * runc reports a failed start (e.g. command not found) in its log and on the same stderr the
 * process would write to, so output is held back until the pid file shows the process started;
 * if runc exits without one, the held output is runc's error, not the process's.
 */
import { spawn } from 'node:child_process';
import { type FSWatcher, readFileSync, watch } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { RuntimeError, cleanRuncMessage } from './conmon.js';
import type { AttachConnection, OutputStream } from './runtime.js';

export interface DirectExec {
  pid: number;
  exitCode: Promise<number>;
  attach: AttachConnection;
}

/**
 * Starts `runc exec --process <execDir>/process.json <id>` (the spec file is written by the
 * caller). Resolves once the process runs; rejects with runc's message if it could not start.
 */
export function runcExec(
  runc: string,
  runcRoot: string,
  id: string,
  execDir: string,
  opts: { stdin: boolean },
): Promise<DirectExec> {
  const pidFile = path.join(execDir, 'pidfile');
  const logFile = path.join(execDir, 'runc.log');
  const child = spawn(
    runc,
    [
      '--root',
      runcRoot,
      '--log',
      logFile,
      '--log-format',
      'json',
      'exec',
      '--process',
      path.join(execDir, 'process.json'),
      '--pid-file',
      pidFile,
      id,
    ],
    // its own process group, like conmon: a signal to the daemon's group is not the exec's
    { stdio: [opts.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'], cwd: execDir, detached: true },
  );
  const attach = new PipeAttach({
    stdin: child.stdin ?? undefined,
    stdout: child.stdout!,
    stderr: child.stderr!,
  });
  const exitCode = new Promise<number>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? 128 + signalNumber(signal)));
    child.once('error', () => resolve(-1));
  });
  return new Promise<DirectExec>((resolve, reject) => {
    let settled = false;
    let watcher: FSWatcher | undefined;
    let poll: NodeJS.Timeout | undefined;
    const stopWatching = () => {
      watcher?.close();
      if (poll) clearInterval(poll);
    };
    const settle = (ok: boolean) => {
      if (settled) return;
      const pid = readPid(pidFile);
      if (ok && pid === undefined) return;
      settled = true;
      stopWatching();
      if (pid !== undefined) {
        resolve({ pid, exitCode, attach });
        return;
      }
      const message = runcError(logFile) ?? attach.heldText() ?? 'runc exec failed';
      attach.discard();
      reject(new RuntimeError(cleanRuncMessage(message)));
    };
    try {
      // runc writes `.pidfile` and renames it to `pidfile`
      watcher = watch(execDir, (_ev, name) => {
        if (name === 'pidfile') settle(true);
      });
      watcher.on('error', () => undefined); // the exit or the output still settle it
    } catch {
      // no inotify: look for the pid file now and then
      poll = setInterval(() => settle(true), 20);
    }
    attach.onHeld(() => settle(true));
    child.once('exit', () => settle(false));
    child.once('error', (err) => {
      if (settled) return;
      settled = true;
      stopWatching();
      reject(new RuntimeError(`runc exec: ${err.message}`));
    });
    settle(true);
  });
}

function readPid(file: string): number | undefined {
  try {
    const n = Number(readFileSync(file, 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/** The last error runc logged (json lines: {"level":"error","msg":...}). */
function runcError(logFile: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(logFile, 'utf8');
  } catch {
    return undefined;
  }
  let msg: string | undefined;
  for (const line of text.split('\n')) {
    if (!line.includes('"error"')) continue;
    try {
      const entry = JSON.parse(line) as { level?: string; msg?: string };
      if (entry.level === 'error' && typeof entry.msg === 'string') msg = entry.msg;
    } catch {
      // a torn line
    }
  }
  return msg;
}

function signalNumber(signal: NodeJS.Signals | null): number {
  return (signal && os.constants.signals[signal]) || 9;
}

/** A process's stdio pipes, ours to read and write. */
export interface ProcessPipes {
  stdin?: NodeJS.WritableStream & { destroy(): void; destroyed: boolean; writableEnded: boolean };
  stdout: NodeJS.ReadableStream & { destroy(): void };
  stderr: NodeJS.ReadableStream & { destroy(): void };
}

/** A process's stdio pipes as an AttachConnection; output is held until the process is known to run. */
export class PipeAttach implements AttachConnection {
  private dataCb?: (stream: OutputStream, data: Buffer) => void;
  private endCbs: (() => void)[] = [];
  private ended = false;
  private open = 2;
  private held: [OutputStream, Buffer][] = [];
  private heldCb?: () => void;
  private discarded = false;

  constructor(private readonly child: ProcessPipes) {
    const wire = (s: NodeJS.ReadableStream, name: OutputStream) => {
      s.on('data', (d: Buffer) => {
        if (this.discarded) return;
        if (this.dataCb) this.dataCb(name, d);
        else {
          this.held.push([name, d]);
          this.heldCb?.();
        }
      });
      const done = () => {
        if (--this.open === 0) this.finish();
      };
      s.once('end', done);
      s.once('error', () => undefined);
    };
    wire(child.stdout, 'stdout');
    wire(child.stderr, 'stderr');
    child.stdin?.on('error', () => undefined);
  }

  private finish(): void {
    if (this.ended) return;
    this.ended = true;
    for (const cb of this.endCbs.splice(0)) cb();
  }

  /** Called when output arrives before anyone listens (a cue to check whether the process runs). */
  onHeld(cb: () => void): void {
    this.heldCb = cb;
  }

  heldText(): string | undefined {
    const text = Buffer.concat(this.held.map(([, d]) => d))
      .toString('utf8')
      .trim();
    return text || undefined;
  }

  discard(): void {
    this.discarded = true;
    this.held = [];
    this.close();
  }

  onData(cb: (stream: OutputStream, data: Buffer) => void): void {
    this.dataCb = cb;
    this.heldCb = undefined;
    for (const [s, d] of this.held.splice(0)) cb(s, d);
  }

  onEnd(cb: () => void): void {
    if (this.ended) cb();
    else this.endCbs.push(cb);
  }

  write(data: Buffer): void {
    const stdin = this.child.stdin;
    if (stdin && !stdin.destroyed && !stdin.writableEnded) stdin.write(data);
  }

  endStdin(): void {
    const stdin = this.child.stdin;
    if (stdin && !stdin.writableEnded) stdin.end();
  }

  /** Stops streaming: the pipes close (the process sees EPIPE/EOF, as with a gone attach). */
  close(): void {
    this.child.stdin?.destroy();
    this.child.stdout?.destroy();
    this.child.stderr?.destroy();
    this.finish();
  }
}

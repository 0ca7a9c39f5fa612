/**
 * Drives runc through conmon (see ../shared/research/conmon.md): conmon holds the container's
 * stdio, writes its log and exit code, and serves an attach socket, so containers outlive berthd.
 */
import { execFile, spawn } from 'node:child_process';
import {
  closeSync,
  constants,
  existsSync,
  openSync,
  promises as fsp,
  mkdirSync,
  readFileSync,
  watch,
  writeSync,
} from 'node:fs';
import { Socket } from 'node:net';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { SeqpacketSocket } from 'node-unix-socket';
import { replaceFile } from '../../common/atomic.js';
import { errnoCode, internal } from '../../common/errors.js';
import type { AttachConnection, CreateOptions, OutputStream } from './runtime.js';
import { type ExecProcess, ExecHelper, execSettings, nativeExec } from './native-exec.js';
import { type DetachedProcess, spawnDetached } from './detached.js';
import { type DirectExec, runcExec } from './runc-exec.js';
import { procStat } from './procstat.js';
import type { OciSeccomp } from './seccomp.js';
import type { OciSpec } from './spec.js';

const run = promisify(execFile);

export interface RuntimePaths {
  /** runc's state directory (--root). */
  runcRoot: string;
  runc?: string;
  conmon?: string;
}

/** An error from runc/conmon, keeping runc's own words for exit-code mapping (126/127). */
export class RuntimeError extends Error {}

export class ConmonRuntime {
  readonly runc: string;
  readonly conmon: string;
  private readonly execHelper = new ExecHelper();

  constructor(private readonly paths: RuntimePaths) {
    this.runc = paths.runc ?? '/usr/sbin/runc';
    this.conmon = paths.conmon ?? '/usr/bin/conmon';
  }

  private runcArgs(...args: string[]): string[] {
    return ['--root', this.paths.runcRoot, ...args];
  }

  /** conmon's arguments shared by containers and execs; each gets its own bundle (pid files, exits, attach). */
  private baseArgs(id: string, uuid: string, bundle: string, log: string): string[] {
    return [
      '--api-version',
      '1',
      '-c',
      id,
      '-u',
      uuid,
      '-n',
      id,
      '-r',
      this.runc,
      '-b',
      bundle,
      '-p',
      path.join(bundle, 'pidfile'),
      '-P',
      path.join(bundle, 'conmon.pid'),
      '-l',
      log,
      '--exit-dir',
      path.join(bundle, 'exits'),
      '--full-attach',
      '--runtime-arg',
      '--root',
      '--runtime-arg',
      this.paths.runcRoot,
    ];
  }

  /** Creates the container (not started). Returns the container's and conmon's pids. */
  async create(
    id: string,
    bundle: string,
    spec: OciSpec,
    opts: CreateOptions,
  ): Promise<{ pid: number; conmonPid: number }> {
    await fsp.mkdir(path.join(bundle, 'exits'), { recursive: true });
    await fsp.rm(path.join(bundle, 'exits', id), { force: true });
    await replaceFile(path.join(bundle, 'config.json'), JSON.stringify(spec));
    const args = this.baseArgs(id, id, bundle, `k8s-file:${opts.logPath}`);
    if (opts.terminal) args.push('-t');
    else if (opts.stdin) {
      args.push('-i');
      if (!opts.stdinOnce) args.push('--leave-stdin-open');
    }
    let child: DetachedProcess;
    try {
      child = spawnDetached(this.conmon, args, { env: { ...process.env, _OCI_SYNCPIPE: '3' }, cwd: bundle });
    } catch (err) {
      throw new RuntimeError(`conmon failed to create the container: ${(err as Error).message}`);
    }
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stderr.on('error', () => undefined);
    const sync = child.sync;
    const line = await new Promise<string>((resolve) => {
      let buf = '';
      sync.on('data', (d: Buffer) => {
        buf += d.toString();
        const nl = buf.indexOf('\n');
        if (nl >= 0) resolve(buf.slice(0, nl));
      });
      sync.on('end', () => resolve(buf));
      sync.on('error', () => resolve(buf));
    });
    child.release();
    let msg: { data?: number; message?: string };
    try {
      msg = JSON.parse(line) as typeof msg;
    } catch {
      throw new RuntimeError(`conmon failed to create the container${stderr ? `: ${stderr.trim()}` : ''}`);
    }
    if (typeof msg.data !== 'number' || msg.data < 0)
      throw new RuntimeError(cleanRuncMessage(msg.message ?? 'runc create failed'));
    if (opts.terminal && opts.consoleSize) this.resize(bundle, opts.consoleSize.rows, opts.consoleSize.cols);
    const conmonPid = Number(readFileSync(path.join(bundle, 'conmon.pid'), 'utf8').trim());
    return { pid: msg.data, conmonPid };
  }

  /**
   * Starts a created container (init `pid`) as `runc start` does, without starting runc: runc's init
   * waits to write to `exec.fifo` in runc's state directory until a reader opens it, then executes
   * the container's process, which closes the fifo. Reading it to the end and removing it is all
   * `runc start` does; the removed fifo is how runc tells "running" from "created" afterwards.
   */
  async start(id: string, pid: number): Promise<void> {
    const fifo = path.join(this.stateDir(id), 'exec.fifo');
    let fd: number;
    try {
      // Non-blocking: the open must not wait for a writer that may have died.
      fd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') throw new RuntimeError('cannot start a container that is not created');
      throw err;
    }
    const fifoStream = new Socket({ fd, readable: true, writable: false });
    const written = await new Promise<string>((resolve, reject) => {
      let data = '';
      let deadSeen = false;
      // The writer dying before it opened the fifo gives no event: watch init like runc does.
      const timer = setInterval(() => {
        if (processAlive(pid)) return;
        if (deadSeen) {
          clearInterval(timer);
          reject(new RuntimeError('container process is already dead'));
        }
        deadSeen = true; // one more round for output already on its way
      }, 100);
      fifoStream.on('data', (d: Buffer) => (data += d.toString()));
      fifoStream.on('end', () => {
        clearInterval(timer);
        resolve(data);
      });
      fifoStream.on('error', (err) => {
        clearInterval(timer);
        reject(err);
      });
    }).finally(() => fifoStream.destroy());
    if (!written) throw new RuntimeError('cannot start an already running container');
    await fsp.rm(fifo, { force: true });
  }

  async kill(id: string, signal: string, all = false): Promise<void> {
    if (!all && this.signalInit(id, signal)) return;
    try {
      await run(this.runc, this.runcArgs('kill', ...(all ? ['--all'] : []), id, signal));
    } catch (err) {
      const text = (err as { stderr?: string }).stderr ?? '';
      if (/not running|container not running|process already finished/.test(text)) return;
      throw new RuntimeError(cleanRuncMessage(text || String(err)));
    }
  }

  /**
   * Signals the container's init process itself, as `runc kill` does, without starting runc: the pid
   * from runc's state counts only while /proc shows the same process (same start time). False when
   * that cannot be told; runc is asked then.
   */
  private signalInit(id: string, signal: string): boolean {
    try {
      const state = JSON.parse(readFileSync(path.join(this.stateDir(id), 'state.json'), 'utf8')) as {
        init_process_pid?: number;
        init_process_start?: number;
      };
      const pid = state.init_process_pid;
      if (!pid || state.init_process_start === undefined) return false;
      if (procStat(pid)?.starttime !== String(state.init_process_start)) return false;
      process.kill(pid, /^\d+$/.test(signal) ? Number(signal) : signal);
      return true;
    } catch {
      return false;
    }
  }

  /** Applies new limits to a running container (`runc update -r FILE`). */
  async update(id: string, resourcesFile: string): Promise<void> {
    await run(this.runc, this.runcArgs('update', '--resources', resourcesFile, id)).catch((err: unknown) => {
      throw new RuntimeError(cleanRuncMessage((err as { stderr?: string }).stderr ?? String(err)));
    });
  }

  async pause(id: string): Promise<void> {
    await run(this.runc, this.runcArgs('pause', id)).catch((err: unknown) => {
      throw new RuntimeError(cleanRuncMessage((err as { stderr?: string }).stderr ?? String(err)));
    });
  }

  async resume(id: string): Promise<void> {
    await run(this.runc, this.runcArgs('resume', id)).catch((err: unknown) => {
      throw new RuntimeError(cleanRuncMessage((err as { stderr?: string }).stderr ?? String(err)));
    });
  }

  async delete(id: string, force = false): Promise<void> {
    // Nothing of the container left in runc's state: spare starting runc (a second cleanup is common).
    if (!existsSync(this.stateDir(id))) return;
    try {
      await run(this.runc, this.runcArgs('delete', ...(force ? ['--force'] : []), id));
    } catch (err) {
      const text = (err as { stderr?: string }).stderr ?? '';
      if (/does not exist|not exist/.test(text)) return;
      throw internal(`runc delete ${id}: ${cleanRuncMessage(text)}`);
    }
  }

  /**
   * Forgets a container whose init has exited (conmon recorded it) in a private pid namespace, so
   * the kernel killed every other process with it. `runc delete` then only removes runc's state
   * directory and the cgroups (the caller's part); doing it here spares a runc start on every exit.
   */
  async deleteExited(id: string): Promise<void> {
    await fsp.rm(this.stateDir(id), { recursive: true, force: true });
  }

  private stateDir(id: string): string {
    return path.join(this.paths.runcRoot, id);
  }

  async state(id: string): Promise<{ status: string; pid: number } | undefined> {
    try {
      const { stdout } = await run(this.runc, this.runcArgs('state', id));
      return JSON.parse(stdout) as { status: string; pid: number };
    } catch {
      return undefined;
    }
  }

  /** The exit code conmon recorded, if the container has exited. */
  exitCode(id: string, bundle: string): number | undefined {
    try {
      const n = Number(readFileSync(path.join(bundle, 'exits', id), 'utf8').trim());
      return Number.isFinite(n) ? n : undefined;
    } catch {
      return undefined;
    }
  }

  /** Resolves with the exit code once conmon writes it. */
  waitExit(id: string, bundle: string): { promise: Promise<number>; cancel: () => void } {
    const dir = path.join(bundle, 'exits');
    let cancel = () => {};
    const promise = new Promise<number>((resolve, reject) => {
      const check = () => {
        const code = this.exitCode(id, bundle);
        if (code !== undefined) {
          done();
          resolve(code);
          return true;
        }
        return false;
      };
      let watcher: ReturnType<typeof watch> | undefined;
      // A slow poll as well: conmon killed with SIGKILL never writes the file.
      const timer = setInterval(() => {
        if (!check() && !conmonAlive(bundle)) {
          done();
          reject(new RuntimeError('conmon exited without recording an exit code'));
        }
      }, 1000);
      const done = () => {
        watcher?.close();
        clearInterval(timer);
      };
      cancel = done;
      try {
        watcher = watch(dir, (_ev, name) => {
          if (name === id) check();
        });
      } catch (err) {
        done();
        reject(err);
        return;
      }
      check();
    });
    return { promise, cancel };
  }

  /**
   * Runs a process in a running container under its own conmon (conmon.md §7): start pipe, then
   * the attach pipe's ready message, then the attach socket, then a second start byte.
   */
  async exec(
    id: string,
    execDir: string,
    processSpec: unknown,
    opts: { terminal: boolean; stdin: boolean },
  ): Promise<{ pid: number; exitCode: Promise<number>; attach: AttachConnection }> {
    await fsp.mkdir(path.join(execDir, 'exits'), { recursive: true });
    // A scratch file read once by runc, gone with the exec: no fsync needed.
    await fsp.writeFile(path.join(execDir, 'process.json'), JSON.stringify(processSpec));
    const args = [
      ...this.baseArgs(id, path.basename(execDir), execDir, 'none'),
      '--exec',
      '--exec-process-spec',
      path.join(execDir, 'process.json'),
      '--exec-attach',
    ];
    if (opts.terminal) args.push('-t');
    else if (opts.stdin) args.push('-i');
    const child = spawn(this.conmon, args, {
      stdio: ['ignore', 'pipe', 'pipe', 'pipe', 'pipe', 'pipe'],
      env: { ...process.env, _OCI_SYNCPIPE: '3', _OCI_STARTPIPE: '4', _OCI_ATTACHPIPE: '5' },
      detached: true,
      cwd: execDir,
    });
    child.stdout!.resume();
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const pipes = child.stdio as unknown[];
    const sync = pipes[3] as NodeJS.ReadableStream;
    const start = pipes[4] as NodeJS.WritableStream;
    const attachPipe = pipes[5] as NodeJS.ReadableStream & { destroy(): void };
    const syncLines = jsonLines(sync);
    start.write(Buffer.from([0]));
    const ready = await jsonLines(attachPipe).next();
    attachPipe.destroy();
    if (ready.done || (ready.value as { data?: number }).data !== 0)
      throw new RuntimeError(
        `conmon exec failed to open its attach socket${stderr ? `: ${stderr.trim()}` : ''}`,
      );
    const attach = await this.attach(execDir);
    start.write(Buffer.from([0]));
    const first = await syncLines.next();
    const pidMsg = first.value as { data?: number; message?: string } | undefined;
    if (first.done || typeof pidMsg?.data !== 'number' || pidMsg.data < 0) {
      attach.close();
      throw new RuntimeError(cleanRuncMessage(pidMsg?.message ?? 'exec failed'));
    }
    const exitCode = (async () => {
      const next = await syncLines.next();
      const code = (next.value as { data?: number } | undefined)?.data;
      if (typeof code === 'number') return code;
      const fromFile = this.exitCode(id, execDir);
      return fromFile ?? -1;
    })();
    child.unref();
    return { pid: pidMsg.data, exitCode, attach };
  }

  /**
   * A streamed, non-TTY exec as the daemon's child (runc-exec.ts: why no conmon): by our own helper
   * when it can honour the spec (native-exec.ts), else by runc.
   */
  async execDirect(
    id: string,
    execDir: string,
    processSpec: ExecProcess,
    opts: { stdin: boolean; initPid: number; seccomp?: OciSeccomp },
  ): Promise<DirectExec> {
    const helper = this.execHelper.path();
    const settings = helper
      ? execSettings(opts.initPid, processSpec, opts.seccomp, this.seccompCache())
      : undefined;
    if (helper && settings) return nativeExec(helper, settings, opts);
    await fsp.mkdir(execDir, { recursive: true });
    await fsp.writeFile(path.join(execDir, 'process.json'), JSON.stringify(processSpec));
    return runcExec(this.runc, this.paths.runcRoot, id, execDir, opts);
  }

  private seccompCacheDir?: string;

  /** Where the exec helper keeps compiled seccomp filters (beside runc's state, gone with a reboot). */
  private seccompCache(): string {
    if (!this.seccompCacheDir) {
      const dir = path.join(path.dirname(this.paths.runcRoot), 'seccomp');
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      this.seccompCacheDir = dir;
    }
    return this.seccompCacheDir;
  }

  /** Connects to conmon's attach socket (through /proc/self/fd: bundle paths can exceed 108 bytes). */
  async attach(bundle: string): Promise<AttachConnection> {
    const fd = openSync(bundle, constants.O_RDONLY | constants.O_DIRECTORY);
    const sock = new SeqpacketSocket();
    try {
      await new Promise<void>((resolve, reject) => {
        sock.once('error', reject);
        sock.connect(`/proc/self/fd/${fd}/attach`, () => resolve());
      });
    } finally {
      closeSync(fd);
    }
    return new SeqpacketAttach(sock);
  }

  /** Asks conmon to reopen its log file (after the daemon renamed it for rotation). */
  reopenLog(bundle: string): void {
    writeFifo(path.join(bundle, 'ctl'), '2 0 0\n');
  }

  /** Resizes the container's terminal through conmon's ctl FIFO (never blocks if conmon is gone). */
  resize(bundle: string, rows: number, cols: number): void {
    writeFifo(path.join(bundle, 'ctl'), `1 ${Math.max(1, rows)} ${Math.max(1, cols)}\n`);
  }
}

function writeFifo(file: string, data: string): void {
  let fd: number;
  try {
    fd = openSync(file, constants.O_WRONLY | constants.O_NONBLOCK);
  } catch (err) {
    if (['ENXIO', 'ENOENT'].includes(errnoCode(err) ?? '')) return;
    throw err;
  }
  try {
    writeSync(fd, data);
  } finally {
    closeSync(fd);
  }
}

/** Parses a stream of newline-terminated JSON messages (conmon's sync and attach pipes). */
async function* jsonLines(stream: NodeJS.ReadableStream): AsyncGenerator<unknown> {
  let buf = '';
  for await (const chunk of stream) {
    buf += (chunk as Buffer).toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line) {
        try {
          yield JSON.parse(line) as unknown;
        } catch {
          // not JSON: ignore
        }
      }
    }
  }
}

/** A process that exists and is not a zombie. */
function processAlive(pid: number): boolean {
  const stat = procStat(pid);
  return stat !== undefined && stat.state !== 'Z';
}

/** conmon alive and really ours (pid reuse guard via its command line). */
export function conmonAlive(bundle: string): boolean {
  try {
    const pid = Number(readFileSync(path.join(bundle, 'conmon.pid'), 'utf8').trim());
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmd.split('\0')[0].endsWith('conmon') && cmd.includes(bundle) && processAlive(pid);
  } catch {
    return false;
  }
}

/** runc's log lines carry `time=… level=error msg="…"`; keep the message. */
export function cleanRuncMessage(text: string): string {
  const m = /msg="((?:[^"\\]|\\.)*)"/.exec(text);
  const msg = m ? m[1].replace(/\\"/g, '"').replace(/\\\\/g, '\\') : text.trim();
  return msg.replace(/^runc create failed: /, '');
}

class SeqpacketAttach implements AttachConnection {
  private dataCb?: (stream: OutputStream, data: Buffer) => void;
  private endCbs: (() => void)[] = [];
  private ended = false;
  private pending: [OutputStream, Buffer][] = [];

  constructor(private readonly sock: SeqpacketSocket) {
    sock.on('data', (buf: Buffer) => {
      if (buf.length < 1) return;
      const stream: OutputStream = buf[0] === 3 ? 'stderr' : 'stdout';
      const data = Buffer.from(buf.subarray(1));
      if (this.dataCb) this.dataCb(stream, data);
      else this.pending.push([stream, data]);
    });
    const finish = () => {
      if (this.ended) return;
      this.ended = true;
      for (const cb of this.endCbs) cb();
    };
    sock.on('end', finish);
    sock.on('close', finish);
    sock.on('error', finish);
  }

  onData(cb: (stream: OutputStream, data: Buffer) => void): void {
    this.dataCb = cb;
    for (const [s, d] of this.pending.splice(0)) cb(s, d);
  }

  onEnd(cb: () => void): void {
    if (this.ended) cb();
    else this.endCbs.push(cb);
  }

  write(data: Buffer): void {
    if (this.ended) return;
    for (let i = 0; i < data.length; i += 32767) this.sock.write(data.subarray(i, i + 32767));
  }

  endStdin(): void {
    if (!this.ended) this.sock.end();
  }

  close(): void {
    this.sock.destroy();
  }
}

export function bundleExists(bundle: string): boolean {
  return existsSync(path.join(bundle, 'config.json'));
}

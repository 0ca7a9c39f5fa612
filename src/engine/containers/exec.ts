/**
 * Exec: extra processes in a running container, each under its own conmon.
 * Lifecycle: create (a record) -> start (runs; output streams to the one attached client) -> exit
 * (code kept for inspect). Exec records live in memory, like Docker's.
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { conflict, invalidArgument, notFound } from '../../common/errors.js';
import type { ConmonRuntime } from '../runtime/conmon.js';
import type { ExecProcess } from '../runtime/native-exec.js';
import type { AttachConnection, OutputStream } from '../runtime/runtime.js';
import type { OciSeccomp } from '../runtime/seccomp.js';
import type { ContainerService } from './service.js';
import { resolveUser } from './user.js';

export interface ExecConfig {
  AttachStdin: boolean;
  AttachStdout: boolean;
  AttachStderr: boolean;
  Tty: boolean;
  Cmd: string[];
  Env: string[];
  WorkingDir: string;
  User: string;
  Privileged: boolean;
  DetachKeys: string;
}

export interface ExecRecord {
  id: string;
  containerId: string;
  config: ExecConfig;
  running: boolean;
  started: boolean;
  exitCode: number | null;
  pid: number;
  conn?: AttachConnection;
  /** A resize that arrived before the process existed; applied once it does. */
  pendingSize?: { rows: number; cols: number };
}

export class ExecService {
  private readonly execs = new Map<string, ExecRecord>();

  constructor(
    private readonly containers: ContainerService,
    private readonly runtime: ConmonRuntime,
  ) {}

  create(containerRef: string, body: unknown): string {
    const c = this.containers.get(containerRef);
    if (!c.state.Running) throw conflict(`Container ${c.id} is not running`);
    if (c.state.Paused) throw conflict(`Container ${c.id} is paused, unpause the container before exec`);
    const b = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
    const cmd = b.Cmd;
    if (!Array.isArray(cmd) || cmd.length === 0 || !cmd.every((x) => typeof x === 'string'))
      throw invalidArgument('No exec command specified');
    const env = b.Env ?? [];
    if (!Array.isArray(env) || !env.every((x) => typeof x === 'string'))
      throw invalidArgument('Env must be a list of strings');
    const id = randomBytes(32).toString('hex');
    this.execs.set(id, {
      id,
      containerId: c.id,
      config: {
        AttachStdin: b.AttachStdin === true,
        AttachStdout: b.AttachStdout === true,
        AttachStderr: b.AttachStderr === true,
        Tty: b.Tty === true,
        Cmd: cmd as string[],
        Env: env as string[],
        WorkingDir: typeof b.WorkingDir === 'string' ? b.WorkingDir : '',
        User: typeof b.User === 'string' ? b.User : '',
        Privileged: b.Privileged === true,
        DetachKeys: typeof b.DetachKeys === 'string' ? b.DetachKeys : '',
      },
      running: false,
      started: false,
      exitCode: null,
      pid: 0,
    });
    return id;
  }

  get(id: string): ExecRecord {
    const e = this.execs.get(id);
    if (!e) throw notFound(`No such exec instance: ${id}`);
    return e;
  }

  /**
   * Starts the process. Output goes to `onOutput` until `onEnd`; a start failure is reported to the
   * client as Docker does (a message in the stream and exit code 126).
   */
  async start(
    id: string,
    io: {
      onOutput(stream: OutputStream, data: Buffer): void;
      onEnd(): void;
      tty?: boolean;
      /** `exec -d`: the process must outlive the daemon, so it runs under conmon. */
      detach?: boolean;
    },
  ): Promise<{ write(b: Buffer): void; end(): void; close(): void }> {
    const e = this.get(id);
    if (e.started) throw conflict(`Exec instance ${id} has already been started`);
    const c = this.containers.get(e.containerId);
    if (!c.state.Running) throw conflict(`Container ${c.id} is not running`);
    e.started = true;
    const bundle = this.containers.bundle(c.id);
    const execDir = path.join(bundle, 'exec', id.slice(0, 24));
    const config = JSON.parse(readFileSync(path.join(bundle, 'config.json'), 'utf8')) as {
      process: ExecProcess;
      linux?: { seccomp?: OciSeccomp };
    };
    const base = config.process;
    const rootfs = path.join(bundle, 'rootfs');
    const user = e.config.User ? resolveUser(rootfs, e.config.User) : undefined;
    const envMap = new Map<string, string>();
    for (const kv of [...(base.env ?? []), ...e.config.Env]) envMap.set(kv.split('=')[0], kv);
    // as runc does: a process without HOME gets its user's home directory
    if (!envMap.has('HOME'))
      envMap.set('HOME', `HOME=${(user ?? resolveUser(rootfs, String(base.user.uid))).home}`);
    const tty = io.tty ?? e.config.Tty;
    const spec: ExecProcess = {
      ...base,
      terminal: tty,
      args: e.config.Cmd,
      env: [...envMap.values()],
      cwd: e.config.WorkingDir || base.cwd,
      ...(user ? { user: { uid: user.uid, gid: user.gid, additionalGids: user.additionalGids } } : {}),
    };
    e.running = true;
    try {
      const stdin = e.config.AttachStdin;
      const h =
        tty || io.detach
          ? await this.runtime.exec(c.id, execDir, spec, { terminal: tty, stdin })
          : await this.runtime.execDirect(c.id, execDir, spec, {
              stdin,
              initPid: c.state.Pid,
              seccomp: config.linux?.seccomp,
            });
      e.pid = h.pid;
      e.conn = h.attach;
      if (e.pendingSize) this.runtime.resize(execDir, e.pendingSize.rows, e.pendingSize.cols);
      h.attach.onData((s, d) => io.onOutput(s, d));
      let ended = false;
      let code: number | undefined;
      const finish = () => {
        if (!ended || code === undefined) return;
        e.running = false;
        e.exitCode = code;
        void fsp.rm(execDir, { recursive: true, force: true });
        io.onEnd();
      };
      h.attach.onEnd(() => {
        ended = true;
        finish();
      });
      void h.exitCode.then((n) => {
        code = n;
        // conmon may deliver the last output after the exit code (conmon.md §7): wait for both.
        setTimeout(() => {
          ended = true;
          finish();
        }, 200).unref();
        finish();
      });
      return {
        write: (b) => h.attach.write(b),
        end: () => h.attach.endStdin(),
        close: () => h.attach.close(),
      };
    } catch (err) {
      e.running = false;
      e.exitCode = 126;
      const msg = `OCI runtime exec failed: ${(err as Error).message}: unknown\r\n`;
      io.onOutput('stdout', Buffer.from(msg));
      io.onEnd();
      await fsp.rm(execDir, { recursive: true, force: true });
      return { write: () => undefined, end: () => undefined, close: () => undefined };
    }
  }

  resize(id: string, rows: number, cols: number): void {
    const e = this.get(id);
    if (!e.pid) {
      e.pendingSize = { rows, cols };
      return;
    }
    if (!e.running) return;
    this.runtime.resize(
      path.join(this.containers.bundle(e.containerId), 'exec', id.slice(0, 24)),
      rows,
      cols,
    );
  }

  inspect(id: string): Record<string, unknown> {
    const e = this.get(id);
    return {
      CanRemove: false,
      ContainerID: e.containerId,
      DetachKeys: e.config.DetachKeys,
      ExitCode: e.exitCode ?? 0,
      ID: e.id,
      OpenStderr: e.config.AttachStderr,
      OpenStdin: e.config.AttachStdin,
      OpenStdout: e.config.AttachStdout,
      ProcessConfig: {
        arguments: e.config.Cmd.slice(1),
        entrypoint: e.config.Cmd[0],
        privileged: e.config.Privileged,
        tty: e.config.Tty,
        user: e.config.User,
      },
      Running: e.running,
      Pid: e.pid,
    };
  }

  /** Drops a finished exec's record (internal execs such as health probes). */
  forget(id: string): void {
    this.execs.delete(id);
  }

  idsOf(containerId: string): string[] {
    return [...this.execs.values()].filter((e) => e.containerId === containerId).map((e) => e.id);
  }
}

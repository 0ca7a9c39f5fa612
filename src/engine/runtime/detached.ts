/**
 * Starting a monitor that outlives the daemon (conmon for a container): in its own session, the
 * sync pipe as its fd 3, its stderr kept for error messages, stdin and stdout on /dev/null.
 * child_process.spawn forks, and copying the daemon's page tables makes that ~5–8 ms of every
 * container start here; the addon's posix_spawn shares the daemon's memory until the exec and
 * costs well under a millisecond. An addon built before it had spawnDetached: child_process.
 */
import { spawn } from 'node:child_process';
import { closeSync } from 'node:fs';
import { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { native } from '../../common/native.js';

export interface DetachedProcess {
  pid: number;
  /** Its fd 3. */
  sync: Readable;
  stderr: Readable;
  /** Lets it go: its exit is collected (no zombie) and nothing of it keeps the daemon running. */
  release(): void;
}

export function spawnDetached(
  file: string,
  args: string[],
  opts: { env: NodeJS.ProcessEnv; cwd: string },
): DetachedProcess {
  const { pipe, spawnDetached: nativeSpawn, reap } = native;
  if (!pipe || !nativeSpawn || !reap) return withChildProcess(file, args, opts);
  const env = Object.entries(opts.env).flatMap(([k, v]) => (v === undefined ? [] : [`${k}=${v}`]));
  const [errRead, errWrite] = pipe();
  const [syncRead, syncWrite] = pipe();
  let pid: number;
  try {
    pid = nativeSpawn(file, [file, ...args], env, opts.cwd, [-1, -1, errWrite, syncWrite]);
  } catch (err) {
    closeSync(errRead);
    closeSync(syncRead);
    throw err;
  } finally {
    closeSync(errWrite);
    closeSync(syncWrite);
  }
  const stderr = new Socket({ fd: errRead, readable: true, writable: false });
  const sync = new Socket({ fd: syncRead, readable: true, writable: false });
  return {
    pid,
    sync,
    stderr,
    release: () => {
      sync.destroy();
      stderr.destroy();
      collectExit(pid, reap);
    },
  };
}

/**
 * A process started by us, not by libuv, is not waited for by libuv: polls until it has exited
 * (conmon's first process exits as soon as it has forked the monitor; the exec helper once it has
 * reported the exit code).
 */
export function collectExit(pid: number, reap: (pid: number) => number, delay = 5): void {
  try {
    if (reap(pid) >= 0) return;
  } catch {
    return; // not ours any more (ECHILD)
  }
  setTimeout(() => collectExit(pid, reap, Math.min(delay * 2, 1000)), delay).unref();
}

function withChildProcess(
  file: string,
  args: string[],
  opts: { env: NodeJS.ProcessEnv; cwd: string },
): DetachedProcess {
  const child = spawn(file, args, {
    stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
    env: opts.env,
    detached: true,
    cwd: opts.cwd,
  });
  child.on('error', () => undefined); // seen as the sync pipe's end without a line
  const sync = child.stdio[3] as Readable;
  return {
    pid: child.pid ?? 0,
    sync,
    stderr: child.stderr!,
    release: () => {
      sync.destroy();
      child.stderr!.destroy();
      child.unref();
    },
  };
}

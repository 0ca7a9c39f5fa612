/**
 * Log rotation for `--log-opt max-size=… max-file=…` (json-file semantics): conmon writes
 * `container.log`; when it passes max-size the daemon renames it to `.1` (older ones shift up,
 * the oldest beyond max-file is dropped) and asks conmon to reopen, so no line is lost.
 *
 * The size is checked when the file grows: the container's directory is watched (inotify, which
 * follows the name across rotations, where a watch on the file would follow the renamed inode),
 * and a burst of writes costs one stat at a time. A slow timer checks every watched container too,
 * in case an event was missed (inotify's queue can overflow).
 */
import { type FSWatcher, promises as fsp, watch } from 'node:fs';
import * as path from 'node:path';
import { log } from '../../common/log.js';
import { parseLogSize } from './create.js';

export interface RotationPolicy {
  maxSize: number;
  maxFile: number;
}

export function rotationPolicy(cfg: Record<string, string>): RotationPolicy | undefined {
  const size = cfg['max-size'];
  if (!size || size === '-1') return undefined;
  const maxFile = cfg['max-file'] ? Number(cfg['max-file']) : 1;
  return { maxSize: parseLogSize(size), maxFile: Math.max(1, maxFile) };
}

/** The files holding a container's log, oldest first. */
export function logFiles(file: string, policy: RotationPolicy | undefined): string[] {
  const out: string[] = [];
  for (let n = (policy?.maxFile ?? 1) - 1; n >= 1; n--) out.push(`${file}.${n}`);
  out.push(file);
  return out;
}

/** Rotates when the live file has reached max-size; returns true when it did. */
export async function rotateIfNeeded(
  file: string,
  policy: RotationPolicy,
  reopen: () => void,
): Promise<boolean> {
  let size: number;
  try {
    size = (await fsp.stat(file)).size;
  } catch {
    return false;
  }
  if (size < policy.maxSize) return false;
  if (policy.maxFile <= 1) {
    // Only one file: the old content goes once conmon has moved to a fresh file.
    await fsp.rename(file, `${file}.1`);
    reopen();
    await fsp.rm(`${file}.1`, { force: true });
    return true;
  }
  await fsp.rm(`${file}.${policy.maxFile - 1}`, { force: true });
  for (let n = policy.maxFile - 2; n >= 1; n--)
    await fsp.rename(`${file}.${n}`, `${file}.${n + 1}`).catch(() => undefined);
  await fsp.rename(file, `${file}.1`);
  reopen();
  return true;
}

/** What rotating one container's log needs; undefined when it has no max-size (or is gone). */
export interface RotationTarget {
  file: string;
  policy: RotationPolicy;
  reopen: () => void;
}

interface Watched {
  watcher?: FSWatcher;
  /** A check is running; `again` asks for one more after it (the file grew meanwhile). */
  busy: boolean;
  again: boolean;
}

const FALLBACK_MS = 5000;

/** Rotates the logs of running containers as they grow. */
export class LogRotator {
  private readonly watched = new Map<string, Watched>();
  private timer?: NodeJS.Timeout;

  constructor(private readonly targetOf: (id: string) => RotationTarget | undefined) {}

  /** Starts the fallback timer. */
  start(): void {
    this.timer = setInterval(() => {
      for (const id of this.watched.keys()) this.check(id);
    }, FALLBACK_MS);
    this.timer.unref();
  }

  /** Watches a container that runs now (nothing when its log has no max-size). */
  watch(id: string): void {
    const target = this.targetOf(id);
    if (!target || this.watched.has(id)) return;
    const name = path.basename(target.file);
    const w: Watched = { busy: false, again: false };
    this.watched.set(id, w);
    try {
      w.watcher = watch(path.dirname(target.file), { persistent: false }, (_event, changed) => {
        if (changed === null || changed === name) this.check(id);
      });
      w.watcher.on('error', () => this.closeWatcher(w));
    } catch (err) {
      // No watch (no inotify instance left, ...): the fallback timer still rotates.
      log.debug('log rotation falls back to polling', { id, error: String(err) });
    }
    this.check(id);
  }

  /** The container stopped (or is removed). */
  unwatch(id: string): void {
    const w = this.watched.get(id);
    if (!w) return;
    this.watched.delete(id);
    this.closeWatcher(w);
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    for (const id of [...this.watched.keys()]) this.unwatch(id);
  }

  private closeWatcher(w: Watched): void {
    w.watcher?.close();
    w.watcher = undefined;
  }

  /** Checks (and rotates) one container's log; one check at a time, a burst of events costs one more. */
  private check(id: string): void {
    const w = this.watched.get(id);
    if (!w) return;
    if (w.busy) {
      w.again = true;
      return;
    }
    const target = this.targetOf(id);
    if (!target) return;
    w.busy = true;
    void rotateIfNeeded(target.file, target.policy, target.reopen)
      .catch((err: unknown) => log.warn('log rotation failed', { id, error: String(err) }))
      .finally(() => {
        w.busy = false;
        if (!w.again) return;
        w.again = false;
        this.check(id);
      });
  }
}

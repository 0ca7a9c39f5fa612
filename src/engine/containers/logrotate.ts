/**
 * Log rotation for `--log-opt max-size=… max-file=…` (json-file semantics): conmon writes
 * `container.log`; when it passes max-size the daemon renames it to `.1` (older ones shift up,
 * the oldest beyond max-file is dropped) and asks conmon to reopen, so no line is lost.
 */
import { promises as fsp } from 'node:fs';
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

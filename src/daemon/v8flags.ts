/**
 * The daemon's V8 flags, applied by re-executing itself (same pid) before anything loads: V8
 * reads heap sizes only at start-up. A young generation capped at 4 MiB per semi-space keeps an
 * idle daemon small after bursts of short-lived allocations (log reads, API bodies); the default
 * grows it to 16 MiB and never gives it back. Measured (daemon RSS after 5 logs of 200,000 lines
 * and 5 execs / daemon CPU for the logs): 1 MiB 77-94 MiB / slower (early promotion),
 * 4 MiB 72 MiB / fastest, 16 MiB 93-98 MiB.
 *
 * An old generation allowed 64 MiB before V8 collects it in full: V8 counts the Buffers allocated
 * since the last full GC against that limit (every request body chunk is one, copied by Node's
 * HTTP parser), and the default limit (about twice the ~10 MiB a daemon holds) meant one full GC
 * per 20 MB build context, whatever its garbage. Young collections still free short-lived chunks,
 * and the idle trim (idletrim.ts) collects in full anyway once the daemon is idle, so idle memory
 * is unchanged. Measured on a fully cached 20 MB build: one full GC in ten builds instead of one
 * per build, daemon CPU 111 -> 96 ms, wall 193 -> 171 ms.
 */
import { native } from '../common/native.js';

export const DAEMON_V8_FLAGS = ['--max-semi-space-size=4', '--initial-old-space-size=64'];

/**
 * glibc malloc settings for the re-executed daemon (read by malloc at process start): buffers of
 * 128 KiB and more are mmapped and unmapped when freed, and free heap above 128 KiB is trimmed,
 * instead of the dynamic thresholds that keep tens of MiB after one big log or image read;
 * two arenas instead of one per thread-pool thread.
 */
const MALLOC_ENV: Record<string, string> = {
  MALLOC_ARENA_MAX: '2',
  MALLOC_MMAP_THRESHOLD_: '131072',
  MALLOC_TRIM_THRESHOLD_: '131072',
};

/** Re-executes node with DAEMON_V8_FLAGS unless already given (or BERTHD_NO_V8_FLAGS=1). */
export function relaunchWithV8Flags(): void {
  if (process.env.BERTHD_NO_V8_FLAGS === '1' || !native.execve) return;
  const given = new Set(process.execArgv.map((a) => a.split('=')[0]));
  const missing = DAEMON_V8_FLAGS.filter((f) => !given.has(f.split('=')[0]));
  if (missing.length === 0) return;
  const env = Object.entries({ ...MALLOC_ENV, ...process.env }).map(([k, v]) => `${k}=${v ?? ''}`);
  try {
    native.execve(
      process.execPath,
      [process.execPath, ...missing, ...process.execArgv, ...process.argv.slice(1)],
      env,
    );
  } catch {
    // could not re-exec: run with V8's defaults
  }
}

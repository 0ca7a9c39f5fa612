/**
 * Health checks: the HEALTHCHECK of the image or `--health-*` of the container, run as an exec
 * every interval while the container runs. Status moves starting -> healthy <-> unhealthy
 * (after Retries consecutive failures; failures inside the start period don't count), the last
 * five results are kept in State.Health, and each change is a `health_status: …` event.
 */
import { log } from '../../common/log.js';
import type { EventBus } from '../events/events.js';
import type { ContainerRecord, Health, HealthConfig, HealthLogEntry } from './containers.js';
import type { ExecService } from './exec.js';
import type { ContainerService } from './service.js';

const SECOND = 1e9;
export const HEALTH_DEFAULTS = {
  interval: 30 * SECOND,
  timeout: 30 * SECOND,
  startInterval: 5 * SECOND,
  retries: 3,
};
const MAX_LOG_ENTRIES = 5;
const MAX_OUTPUT = 4096;

/** The probe's command line, or undefined when there is no (enabled) check. */
export function probeCommand(hc: HealthConfig | undefined): string[] | undefined {
  const test = hc?.Test;
  if (!test || test.length === 0 || test[0] === 'NONE') return undefined;
  if (test[0] === 'CMD') return test.length > 1 ? test.slice(1) : undefined;
  if (test[0] === 'CMD-SHELL') return test.length > 1 ? ['/bin/sh', '-c', test[1]] : undefined;
  return undefined;
}

interface Watch {
  timer?: NodeJS.Timeout;
  startedAt: number;
  generation: number;
  running: boolean;
}

export class HealthMonitor {
  private readonly watches = new Map<string, Watch>();
  private unsubscribe?: () => void;

  constructor(
    private readonly containers: ContainerService,
    private readonly execs: ExecService,
    private readonly events: EventBus,
  ) {}

  /** Starts watching: running containers (after a daemon restart) and every later start. */
  init(): void {
    for (const rec of this.containers.list()) if (rec.state.Running) this.watch(rec, false);
    this.unsubscribe = this.events.subscribe((ev) => {
      if (ev.Type !== 'container') return;
      if (ev.Action === 'start') {
        const rec = this.containers.tryGet(ev.Actor.ID);
        if (rec) this.watch(rec, true);
      } else if (ev.Action === 'die' || ev.Action === 'destroy') this.unwatch(ev.Actor.ID);
    });
  }

  close(): void {
    this.unsubscribe?.();
    for (const id of [...this.watches.keys()]) this.unwatch(id);
  }

  private watch(rec: ContainerRecord, fresh: boolean): void {
    this.unwatch(rec.id);
    const hc = rec.config.Healthcheck;
    if (!probeCommand(hc)) return;
    if (fresh || !rec.state.Health) {
      rec.state.Health = { Status: 'starting', FailingStreak: 0, Log: [] };
      void this.containers.saveState(rec.id).catch(() => undefined);
    }
    const w: Watch = { startedAt: Date.now(), generation: rec.generation, running: false };
    this.watches.set(rec.id, w);
    this.schedule(rec.id, w);
  }

  private unwatch(id: string): void {
    const w = this.watches.get(id);
    if (w?.timer) clearTimeout(w.timer);
    this.watches.delete(id);
  }

  private schedule(id: string, w: Watch): void {
    const rec = this.containers.tryGet(id);
    if (!rec) return;
    const hc = rec.config.Healthcheck ?? {};
    const inStartPeriod = Date.now() - w.startedAt < (hc.StartPeriod ?? 0) / 1e6;
    const ns =
      inStartPeriod && rec.state.Health?.Status === 'starting' && hc.StartInterval
        ? hc.StartInterval
        : (hc.Interval ?? HEALTH_DEFAULTS.interval);
    w.timer = setTimeout(() => void this.probe(id, w), ns / 1e6);
    w.timer.unref();
  }

  private async probe(id: string, w: Watch): Promise<void> {
    if (this.watches.get(id) !== w) return;
    const rec = this.containers.tryGet(id);
    if (!rec || !rec.state.Running || rec.generation !== w.generation) return this.unwatch(id);
    if (rec.state.Paused) return this.schedule(id, w);
    const hc = rec.config.Healthcheck ?? {};
    const cmd = probeCommand(hc);
    if (!cmd) return this.unwatch(id);
    const result = await this.runProbe(rec, cmd, (hc.Timeout ?? HEALTH_DEFAULTS.timeout) / 1e6).catch(
      (err: unknown): HealthLogEntry => {
        const now = new Date().toISOString();
        return { Start: now, End: now, ExitCode: -1, Output: String(err) };
      },
    );
    if (this.watches.get(id) !== w || !rec.state.Running) return;
    const inStartPeriod = Date.now() - w.startedAt < (hc.StartPeriod ?? 0) / 1e6;
    this.record(rec, result, hc, inStartPeriod);
    this.schedule(id, w);
  }

  private record(rec: ContainerRecord, r: HealthLogEntry, hc: HealthConfig, inStartPeriod: boolean): void {
    const h: Health = rec.state.Health ?? { Status: 'starting', FailingStreak: 0, Log: [] };
    const before = h.Status;
    if (r.ExitCode === 0) {
      h.Status = 'healthy';
      h.FailingStreak = 0;
    } else if (!(inStartPeriod && h.Status === 'starting')) {
      h.FailingStreak++;
      if (h.FailingStreak >= (hc.Retries || HEALTH_DEFAULTS.retries)) h.Status = 'unhealthy';
    }
    h.Log = [...h.Log, r].slice(-MAX_LOG_ENTRIES);
    rec.state.Health = h;
    void this.containers.saveState(rec.id).catch(() => undefined);
    if (h.Status !== before)
      this.events.publish('container', `health_status: ${h.Status}`, rec.id, {
        ...rec.config.Labels,
        image: rec.image,
        name: rec.name,
      });
  }

  /** One probe as an exec; a probe that outlives its timeout is killed and counts as failed. */
  private runProbe(rec: ContainerRecord, cmd: string[], timeoutMs: number): Promise<HealthLogEntry> {
    const start = new Date();
    const execId = this.execs.create(rec.id, { Cmd: cmd, AttachStdout: true, AttachStderr: true });
    const chunks: Buffer[] = [];
    let size = 0;
    return new Promise<HealthLogEntry>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const finish = (code: number, output?: string) => {
        if (timer) clearTimeout(timer);
        timer = undefined;
        this.execs.forget(execId);
        resolve({
          Start: start.toISOString(),
          End: new Date().toISOString(),
          ExitCode: code,
          Output: output ?? Buffer.concat(chunks).toString('utf8'),
        });
      };
      let done = false;
      this.execs
        .start(execId, {
          onOutput: (_s, d) => {
            if (size >= MAX_OUTPUT) return;
            const part = d.subarray(0, MAX_OUTPUT - size);
            chunks.push(part);
            size += part.length;
          },
          onEnd: () => {
            if (done) return;
            done = true;
            finish(this.execs.get(execId).exitCode ?? -1);
          },
          tty: false,
        })
        .then(
          () => {
            timer = setTimeout(() => {
              if (done) return;
              done = true;
              const pid = this.execs.get(execId).pid;
              if (pid > 0)
                try {
                  process.kill(pid, 'SIGKILL');
                } catch (err) {
                  log.debug('health probe already gone', { id: rec.id, error: String(err) });
                }
              finish(-1, `Health check exceeded timeout (${timeoutMs / 1000}s)`);
            }, timeoutMs);
            timer.unref();
          },
          (err: unknown) => {
            if (done) return;
            done = true;
            finish(-1, String(err));
          },
        );
    });
  }
}

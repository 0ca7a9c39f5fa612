import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { request, type TestDaemon } from '../helpers/daemon.js';

const made: string[] = [];

/** A context directory with the given files ('->target' makes a symlink); removed by cleanupContexts. */
export function makeContext(files: Record<string, string | Buffer>): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-ctx-'));
  made.push(dir);
  for (const [name, content] of Object.entries(files)) {
    const p = path.join(dir, name);
    mkdirSync(path.dirname(p), { recursive: true });
    if (typeof content === 'string' && content.startsWith('->')) symlinkSync(content.slice(2), p);
    else writeFileSync(p, content);
  }
  return dir;
}

export function cleanupContexts(): void {
  for (const d of made.splice(0))
    // Tests put files beside a context too (`<ctx>.iid`, `<ctx>.tgz`).
    for (const p of [d, `${d}.iid`, `${d}.tgz`]) rmSync(p, { recursive: true, force: true });
}

export async function imageConfig(d: TestDaemon, name: string): Promise<Record<string, unknown>> {
  const r = await request(d, 'GET', `/images/${name}/json`);
  if (r.status !== 200) throw new Error(`inspect ${name}: ${r.status} ${r.body.toString()}`);
  return (JSON.parse(r.body.toString()) as { Config: Record<string, unknown> }).Config;
}

export async function containerCount(d: TestDaemon): Promise<number> {
  const r = await request(d, 'GET', '/containers/json?all=1');
  return (JSON.parse(r.body.toString()) as unknown[]).length;
}

/** Container events in [since, now]. */
export async function containerEvents(d: TestDaemon, since: number): Promise<string[]> {
  const until = Math.ceil(Date.now() / 1000) + 1;
  const filters = encodeURIComponent(JSON.stringify({ type: { container: true } }));
  const r = await request(d, 'GET', `/events?since=${since}&until=${until}&filters=${filters}`);
  return r.body
    .toString()
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { Action: string }).Action);
}

/**
 * Seed images built from the project's own Dockerfiles (images/<name>/Dockerfile): the daemon
 * builds them with the classic builder (RUN on the host network, so apt reaches Debian's mirror)
 * and pushes them to the hub as library/<name>.
 */
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Client, JsonMessage } from '../client/client.js';
import { contextTar, readDockerignore } from '../cli/buildcontext.js';

/** Images the project builds from a Dockerfile. */
export const BUILT_SEEDS = ['redis'];

const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

function failOn(m: JsonMessage): void {
  if (typeof m.error === 'string') throw new Error(m.error);
}

/** Builds images/<name> as <registry>/library/<name>:latest and pushes it; returns the digest. */
export async function buildAndPushSeed(
  client: Client,
  registry: string,
  name: string,
  log: (line: string) => void,
): Promise<string> {
  const dir = path.join(PROJECT_ROOT, 'images', name);
  if (!existsSync(path.join(dir, 'Dockerfile')))
    throw new Error(`no Dockerfile for seed image ${name} in ${dir}`);
  const repo = `${registry}/library/${name}`;
  await ensureBase(client, registry, readFileSync(path.join(dir, 'Dockerfile'), 'utf8'), log);
  await client.build(
    contextTar(dir, { excludes: readDockerignore(dir), keep: ['Dockerfile', '.dockerignore'] }),
    { t: [`${repo}:latest`], dockerfile: 'Dockerfile', networkmode: 'host', version: 1 },
    (m) => {
      failOn(m);
      if (typeof m.stream === 'string') log(m.stream);
      else if (typeof m.status === 'string') log(`${m.id ? `${String(m.id)}: ` : ''}${m.status}\n`);
    },
  );
  let digest = '';
  await client.pushImage(repo, { tag: 'latest' }, (m) => {
    failOn(m);
    const aux = m.aux as { Digest?: string } | undefined;
    if (aux?.Digest) digest = aux.Digest;
  });
  if (!digest) throw new Error(`pushing ${repo}:latest reported no digest`);
  return digest;
}

/**
 * The base image (e.g. debian:bookworm-slim, seeded just before) taken from the registry being
 * seeded when the daemon does not have it, so that seeding a fresh hub root works whatever the
 * daemon's mirrors are.
 */
async function ensureBase(client: Client, registry: string, dockerfile: string, log: (l: string) => void) {
  const m = /^\s*FROM\s+(?:--\S+\s+)*(\S+)/im.exec(dockerfile);
  if (!m || m[1] === 'scratch' || m[1].includes('$')) return;
  const base = m[1];
  try {
    await client.inspectImage(base);
    return;
  } catch {
    // not there: from the registry being seeded
  }
  const [name, tag = 'latest'] = base.split(':');
  const fromImage = `${registry}/${name.includes('/') ? name : `library/${name}`}`;
  try {
    await client.pullImage(fromImage, { tag }, failOn);
    await client.tagImage(`${fromImage}:${tag}`, name, tag);
    log(`${base}: taken from ${fromImage}:${tag}\n`);
  } catch (err) {
    log(
      `${base}: not in ${registry} (${(err as Error).message}); the build pulls it through the daemon's mirrors\n`,
    );
  }
}

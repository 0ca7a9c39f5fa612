/**
 * Build routes: the classic builder's `POST /build` (context tar as the body, Docker's JSON stream)
 * and `POST /build/prune`.
 */
import { invalidArgument } from '../common/errors.js';
import { pull, resolvePull } from '../distribution/pull.js';
import type { BuildOptions, PullFn } from '../engine/build/build.js';
import { RunFailedError } from '../engine/build/builder.js';
import type { Engine } from '../engine/engine.js';
import { parsePlatformOption } from '../engine/images/manifest.js';
import { JsonStream, queryBool, type Router, sendJson } from './http.js';

function jsonParam<T extends Record<string, unknown>>(q: URLSearchParams, key: string): T {
  const v = q.get(key);
  if (!v) return {} as T;
  try {
    const parsed: unknown = JSON.parse(v);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
      throw new Error('not an object');
    return parsed as T;
  } catch (err) {
    throw invalidArgument(`invalid ${key} parameter: ${(err as Error).message}`);
  }
}

function buildOptions(q: URLSearchParams): BuildOptions {
  const buildArgs = jsonParam<Record<string, string | null>>(q, 'buildargs');
  for (const [k, v] of Object.entries(buildArgs))
    if (v !== null && typeof v !== 'string') throw invalidArgument(`invalid buildargs value for ${k}`);
  const labels = jsonParam<Record<string, string>>(q, 'labels');
  for (const [k, v] of Object.entries(labels))
    if (typeof v !== 'string') throw invalidArgument(`invalid labels value for ${k}`);
  if (q.get('remote'))
    throw invalidArgument('remote build contexts are not supported: send the context as the body');
  return {
    tags: q.getAll('t').filter((t) => t !== ''),
    dockerfile: q.get('dockerfile') || 'Dockerfile',
    buildArgs,
    target: q.get('target') || undefined,
    noCache: queryBool(q, 'nocache'),
    pull: queryBool(q, 'pull'),
    labels,
    quiet: queryBool(q, 'q'),
    networkMode: q.get('networkmode') || undefined,
    platform: q.get('platform') || undefined,
    rm: queryBool(q, 'rm', true),
    forceRm: queryBool(q, 'forcerm'),
  };
}

export function buildRoutes(router: Router, engine: Engine): void {
  const deps = {
    content: engine.content,
    snapshots: engine.snapshots,
    images: engine.images,
    events: engine.events,
  };
  const pullFn: PullFn = async (ref, platform, onProgress) => {
    const cfg = { mirrors: engine.config.registryMirrors, insecure: engine.config.insecureRegistries };
    const resolved = await resolvePull(ref, cfg, platform ? parsePlatformOption(platform) : undefined);
    return pull(deps, resolved, onProgress);
  };

  router.add('POST', '/build', async (ctx) => {
    const opts = buildOptions(ctx.query);
    if (opts.platform) parsePlatformOption(opts.platform);
    // Context and Dockerfile errors come before any output: a plain HTTP error, as Docker's.
    const run = await engine.builder.prepare(ctx.req, opts);
    const stream = new JsonStream(ctx.res);
    try {
      const id = await run.run((m) => {
        if (!opts.quiet) stream.send(m);
      }, pullFn);
      if (opts.quiet) stream.send({ stream: `${id}\n` });
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      const code = err instanceof RunFailedError ? err.code : undefined;
      stream.send({ errorDetail: { ...(code !== undefined ? { code } : {}), message }, error: message });
    }
    stream.end();
  });

  router.add('POST', '/build/prune', async (ctx) => {
    ctx.req.resume();
    sendJson(ctx.res, 200, await engine.builder.prune());
  });
}

/**
 * Image routes: translate between the Engine API and the image room.
 */
import { invalidArgument } from '../common/errors.js';
import { decodeRegistryAuth } from '../distribution/auth.js';
import { pull, pullAllTags, resolvePull } from '../distribution/pull.js';
import { familiarString, parseReference } from '../common/reference.js';
import type { Engine } from '../engine/engine.js';
import { importImage, loadImages, saveImages } from '../engine/images/archive.js';
import type { Image, ImageFilters } from '../engine/images/images.js';
import type { HistoryEntry } from '../engine/images/manifest.js';
import { parsePlatformOption } from '../engine/images/manifest.js';
import { checkFilterKeys, JsonStream, parseFilters, queryBool, type Router, sendJson } from './http.js';

export function imageRoutes(router: Router, engine: Engine): void {
  const images = engine.images;
  const deps = { content: engine.content, snapshots: engine.snapshots, images, events: engine.events };

  router.add('GET', '/images/json', (ctx) => {
    const filters = imageFilters(parseFilters(ctx.query));
    const all = queryBool(ctx.query, 'all');
    const list = images.list({ all, filters });
    sendJson(
      ctx.res,
      200,
      list.map((img) => imageSummary(img)),
    );
  });

  router.add('POST', '/images/load', async (ctx) => {
    const { messages } = await loadImages(deps, ctx.req);
    const stream = new JsonStream(ctx.res);
    for (const msg of messages) stream.send({ stream: `${msg}\n` });
    stream.end();
  });

  router.add('GET', '/images/get', async (ctx) => {
    await sendSave(ctx.res, ctx.query.getAll('names'));
  });

  router.add('GET', '/images/{name*}/get', async (ctx) => {
    await sendSave(ctx.res, [ctx.params.name]);
  });

  async function sendSave(res: import('node:http').ServerResponse, names: string[]): Promise<void> {
    if (names.length === 0) throw invalidArgument('no images specified');
    const tar = await saveImages(deps, names);
    res.writeHead(200, { 'Content-Type': 'application/x-tar' });
    tar.pipe(res);
    await new Promise<void>((resolve) => {
      tar.on('error', () => res.destroy());
      res.on('close', resolve);
    });
  }

  router.add('POST', '/images/create', async (ctx) => {
    const fromSrc = ctx.query.get('fromSrc');
    if (fromSrc === null) {
      const from = ctx.query.get('fromImage');
      if (!from) throw invalidArgument('fromImage or fromSrc is required');
      const tag = ctx.query.get('tag');
      const name = tag ? (tag.startsWith('sha256:') ? `${from}@${tag}` : `${from}:${tag}`) : from;
      const platformStr = ctx.query.get('platform');
      const platform = platformStr ? parsePlatformOption(platformStr) : undefined;
      const cfg = { mirrors: engine.config.registryMirrors, insecure: engine.config.insecureRegistries };
      const credentials = decodeRegistryAuth(ctx.req.headers['x-registry-auth']);
      const named = parseReference(name);
      if (!named.tag && !named.digest) {
        // A name alone pulls every tag (Docker's `pull --all-tags`).
        const stream = new JsonStream(ctx.res);
        try {
          await pullAllTags(deps, name, cfg, platform, credentials, (p) => stream.send(p));
        } catch (err) {
          stream.error(err);
        }
        stream.end();
        return;
      }
      const resolved = await resolvePull(name, cfg, platform, credentials);
      const stream = new JsonStream(ctx.res);
      try {
        await pull(deps, resolved, (p) => stream.send(p));
      } catch (err) {
        stream.error(err);
      }
      stream.end();
      return;
    }
    if (fromSrc !== '-')
      throw invalidArgument('importing from a URL is not supported; send the tarball as the body');
    const repo = ctx.query.get('repo') ?? '';
    const tag = ctx.query.get('tag') ?? '';
    let ref: string | undefined;
    if (repo) {
      const parsed = parseReference(repo);
      if (tag && (parsed.tag || parsed.digest)) throw invalidArgument('invalid reference format');
      ref = tag ? `${repo}:${tag}` : repo;
      parseReference(ref);
    }
    const platformStr = ctx.query.get('platform');
    const id = await importImage(deps, ctx.req, {
      changes: ctx.query.getAll('changes'),
      message: ctx.query.get('message') ?? undefined,
      tag: ref,
      platform: platformStr ? parsePlatformOption(platformStr) : undefined,
    });
    const stream = new JsonStream(ctx.res);
    stream.send({ status: id });
    stream.end();
  });

  router.add('POST', '/images/prune', async (ctx) => {
    const f = parseFilters(ctx.query);
    checkFilterKeys(f, ['dangling', 'label', 'until']);
    const all = f.dangling?.[0] !== undefined && ['false', '0'].includes(f.dangling[0]);
    const { deleted, reclaimed } = await images.prune({ all, filters: { label: f.label } });
    sendJson(ctx.res, 200, { ImagesDeleted: deleted.length ? deleted : null, SpaceReclaimed: reclaimed });
  });

  router.add('GET', '/images/{name*}/json', (ctx) => {
    sendJson(ctx.res, 200, imageInspect(images.resolve(ctx.params.name)));
  });

  router.add('GET', '/images/{name*}/history', (ctx) => {
    sendJson(ctx.res, 200, imageHistory(images.resolve(ctx.params.name)));
  });

  router.add('POST', '/images/{name*}/tag', async (ctx) => {
    const repo = ctx.query.get('repo') ?? '';
    const tag = ctx.query.get('tag') ?? '';
    if (!repo) throw invalidArgument('repository name must have at least one component');
    const target = tag ? `${repo}:${tag}` : repo;
    await images.tag(ctx.params.name, target);
    ctx.res.writeHead(201, { 'Content-Length': 0 });
    ctx.res.end();
  });

  router.add('DELETE', '/images/{name*}', async (ctx) => {
    const results = await images.remove(ctx.params.name, {
      force: queryBool(ctx.query, 'force'),
      noPrune: queryBool(ctx.query, 'noprune'),
    });
    sendJson(ctx.res, 200, results);
  });
}

function imageFilters(f: Record<string, string[]>): ImageFilters {
  checkFilterKeys(f, ['dangling', 'label', 'reference', 'before', 'since']);
  const out: ImageFilters = {};
  if (f.dangling?.length) {
    const v = f.dangling[0].toLowerCase();
    if (!['true', 'false', '1', '0'].includes(v)) throw invalidArgument(`invalid filter 'dangling=${v}'`);
    out.dangling = v === 'true' || v === '1';
  }
  if (f.label?.length) out.label = f.label;
  if (f.reference?.length) out.reference = f.reference;
  if (f.before?.length) out.before = f.before[0];
  if (f.since?.length) out.since = f.since[0];
  return out;
}

function familiar(refs: string[]): string[] {
  return refs.map((r) => familiarString(parseReference(r)));
}

function createdSeconds(img: Image): number {
  const t = img.config.created ? Date.parse(img.config.created) : NaN;
  return Number.isNaN(t) ? 0 : Math.floor(t / 1000);
}

export function imageSummary(img: Image): Record<string, unknown> {
  const tags = familiar(img.repoTags);
  const digests = familiar(img.repoDigests);
  const none = tags.length === 0 && digests.length === 0;
  return {
    Containers: -1,
    Created: createdSeconds(img),
    Id: img.record.id,
    Labels: img.config.config?.Labels ?? null,
    ParentId: img.record.parent ?? '',
    RepoDigests: none ? ['<none>@<none>'] : digests,
    RepoTags: none ? ['<none>:<none>'] : tags,
    SharedSize: -1,
    Size: img.record.size,
    VirtualSize: img.record.size,
  };
}

export function imageInspect(img: Image): Record<string, unknown> {
  const c = img.config;
  const out: Record<string, unknown> = {
    Id: img.record.id,
    RepoTags: familiar(img.repoTags),
    RepoDigests: familiar(img.repoDigests),
    Parent: img.record.parent ?? '',
    Comment: c.comment ?? '',
    Created: c.created ?? '0001-01-01T00:00:00Z',
    Container: c.container ?? '',
    ContainerConfig: containerConfigShape(c.container_config ?? {}),
    DockerVersion: c.docker_version ?? '',
    Author: c.author ?? '',
    Config: containerConfigShape(c.config ?? {}),
    Architecture: c.architecture,
    Os: c.os,
    Size: img.record.size,
    VirtualSize: img.record.size,
    GraphDriver: { Data: null, Name: 'overlay2' },
    RootFS: { Type: 'layers', Layers: c.rootfs.diff_ids },
    Metadata: { LastTagTime: '0001-01-01T00:00:00Z' },
  };
  if (c.variant) out.Variant = c.variant;
  return out;
}

/** Docker's Config shape in inspect: every field present. */
function containerConfigShape(cc: NonNullable<Image['config']['config']>): Record<string, unknown> {
  return {
    Hostname: '',
    Domainname: '',
    User: cc.User ?? '',
    AttachStdin: false,
    AttachStdout: false,
    AttachStderr: false,
    ...(cc.ExposedPorts ? { ExposedPorts: cc.ExposedPorts } : {}),
    Tty: false,
    OpenStdin: false,
    StdinOnce: false,
    Env: cc.Env ?? null,
    Cmd: cc.Cmd ?? null,
    ...(cc.Healthcheck ? { Healthcheck: cc.Healthcheck } : {}),
    ...(cc.ArgsEscaped ? { ArgsEscaped: true } : {}),
    Image: '',
    Volumes: cc.Volumes ?? null,
    WorkingDir: cc.WorkingDir ?? '',
    Entrypoint: cc.Entrypoint ?? null,
    OnBuild: cc.OnBuild ?? null,
    Labels: cc.Labels ?? null,
    ...(cc.StopSignal ? { StopSignal: cc.StopSignal } : {}),
    ...(cc.Shell ? { Shell: cc.Shell } : {}),
  };
}

/** Docker's history: newest first; the top entry carries the image id and tags. */
export function imageHistory(img: Image): Record<string, unknown>[] {
  const sizes = img.record.layers.map((l) => l.unpackedSize ?? 0);
  const history = img.config.history?.length
    ? img.config.history
    : img.config.rootfs.diff_ids.map((): HistoryEntry => ({ created: img.config.created, created_by: '' }));
  let layerIndex = 0;
  const entries = history.map((h) => {
    const size = h.empty_layer ? 0 : (sizes[layerIndex++] ?? 0);
    return {
      Comment: h.comment ?? '',
      Created: h.created ? Math.floor(Date.parse(h.created) / 1000) || 0 : 0,
      CreatedBy: h.created_by ?? '',
      Id: '<missing>',
      Size: size,
      Tags: null as string[] | null,
    };
  });
  entries.reverse();
  if (entries.length) {
    entries[0].Id = img.record.id;
    entries[0].Tags = img.repoTags.length ? familiar(img.repoTags) : null;
  }
  return entries;
}

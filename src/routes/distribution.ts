/**
 * Registry routes: push (`/images/{name}/push`), login (`/auth`) and manifest inspection
 * (`/distribution/{name}/json`). Credentials come from `X-Registry-Auth` or the `/auth` body.
 */
import { invalidArgument } from '../common/errors.js';
import { decodeRegistryAuth, normaliseCredentials } from '../distribution/auth.js';
import { registryBase } from '../distribution/hosts.js';
import { planPush, push } from '../distribution/push.js';
import { resolveTop } from '../distribution/pull.js';
import { RegistryClient } from '../distribution/registry.js';
import type { Engine } from '../engine/engine.js';
import {
  type Descriptor,
  manifestKind,
  parseImageConfig,
  parseIndex,
  parseJson,
  parseManifest,
  type Platform,
} from '../engine/images/manifest.js';
import { JsonStream, readJson, type Router, sendJson } from './http.js';

export function distributionRoutes(router: Router, engine: Engine): void {
  const cfg = () => ({ mirrors: engine.config.registryMirrors, insecure: engine.config.insecureRegistries });

  router.add('POST', '/images/{name*}/push', async (ctx) => {
    const credentials = decodeRegistryAuth(ctx.req.headers['x-registry-auth']);
    const plan = planPush(engine.images, ctx.params.name, ctx.query.get('tag') ?? undefined);
    const stream = new JsonStream(ctx.res);
    try {
      await push(
        { content: engine.content, images: engine.images, events: engine.events },
        plan,
        cfg(),
        credentials,
        (p) => stream.send(p),
      );
    } catch (err) {
      stream.error(err);
    }
    stream.end();
  });

  router.add('POST', '/auth', async (ctx) => {
    const creds = normaliseCredentials(await readJson<unknown>(ctx.req, {}));
    if (!creds.username && !creds.identitytoken) throw invalidArgument('username is required');
    const { base } = registryBase(creds.serveraddress ?? '', cfg());
    const client = new RegistryClient({ base, repo: '' }, { credentials: creds });
    await client.login();
    sendJson(ctx.res, 200, { Status: 'Login Succeeded', IdentityToken: '' });
  });

  router.add('GET', '/distribution/{name*}/json', async (ctx) => {
    const credentials = decodeRegistryAuth(ctx.req.headers['x-registry-auth']);
    const top = await resolveTop(ctx.params.name, cfg(), credentials);
    const json = parseJson(top.body, 'manifest');
    const kind = manifestKind(json, top.mediaType);
    const declared = (json as { mediaType?: unknown }).mediaType;
    const mediaType =
      top.mediaType && top.mediaType !== 'application/octet-stream'
        ? top.mediaType
        : typeof declared === 'string'
          ? declared
          : '';
    let platforms: Platform[];
    if (kind === 'index') {
      platforms = parseIndex(top.body)
        .manifests.map((m: Descriptor) => m.platform)
        .filter((p): p is Platform => !!p);
    } else {
      const m = parseManifest(top.body);
      const { stream } = await top.client.getBlob(m.config.digest);
      const chunks: Buffer[] = [];
      let n = 0;
      for await (const c of stream) {
        n += (c as Buffer).length;
        if (n > 8 * 1024 * 1024) throw invalidArgument('image config too large');
        chunks.push(c as Buffer);
      }
      const c = parseImageConfig(Buffer.concat(chunks));
      const p: Platform = { architecture: c.architecture, os: c.os };
      if (c.variant) p.variant = c.variant;
      platforms = [p];
    }
    sendJson(ctx.res, 200, {
      Descriptor: { mediaType, digest: top.digest, size: top.body.length },
      Platforms: platforms,
    });
  });
}

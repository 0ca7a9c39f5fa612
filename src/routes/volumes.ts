/**
 * Volume routes: the Engine API's /volumes translated onto the volumes room.
 */
import { invalidArgument } from '../common/errors.js';
import type { Engine } from '../engine/engine.js';
import { type Ctx, parseFilters, queryBool, readJson, type Router, sendEmpty, sendJson } from './http.js';

type Json = Record<string, unknown>;

function stringMap(body: Json, key: string): Record<string, string> | null {
  const v = body[key];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'object' || Array.isArray(v) || !Object.values(v).every((x) => typeof x === 'string'))
    throw invalidArgument(
      `json: cannot unmarshal into Go struct field CreateOptions.${key} of type map[string]string`,
    );
  return v as Record<string, string>;
}

function stringField(body: Json, key: string): string {
  const v = body[key];
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string')
    throw invalidArgument(
      `json: cannot unmarshal ${typeof v} into Go struct field CreateOptions.${key} of type string`,
    );
  return v;
}

export function volumeRoutes(router: Router, engine: Engine): void {
  const svc = engine.volumes;

  router.add('GET', '/volumes', (ctx: Ctx) => {
    sendJson(ctx.res, 200, { Volumes: svc.list(parseFilters(ctx.query)), Warnings: null });
  });

  router.add('POST', '/volumes/create', async (ctx: Ctx) => {
    const body = await readJson<unknown>(ctx.req, {});
    if (typeof body !== 'object' || body === null || Array.isArray(body))
      throw invalidArgument('invalid JSON: the request body must be an object');
    const b = body as Json;
    const vol = await svc.create({
      Name: stringField(b, 'Name'),
      Driver: stringField(b, 'Driver'),
      DriverOpts: stringMap(b, 'DriverOpts'),
      Labels: stringMap(b, 'Labels'),
    });
    sendJson(ctx.res, 201, vol);
  });

  router.add('POST', '/volumes/prune', async (ctx: Ctx) => {
    ctx.req.resume();
    const { deleted, reclaimed } = await svc.prune(parseFilters(ctx.query));
    sendJson(ctx.res, 200, { VolumesDeleted: deleted.length ? deleted : null, SpaceReclaimed: reclaimed });
  });

  router.add('GET', '/volumes/{name}', (ctx: Ctx) => {
    sendJson(ctx.res, 200, svc.inspect(ctx.params.name));
  });

  router.add('DELETE', '/volumes/{name}', async (ctx: Ctx) => {
    await svc.remove(ctx.params.name, queryBool(ctx.query, 'force'));
    sendEmpty(ctx.res, 204);
  });
}

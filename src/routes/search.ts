/** `GET /images/search` (docker search): the engine asks the registry, filters, answers Docker's list. */
import { invalidArgument } from '../common/errors.js';
import { type SearchFilters, searchRegistry } from '../distribution/search.js';
import type { Engine } from '../engine/engine.js';
import { checkFilterKeys, parseFilters, type Router, sendJson } from './http.js';

function bool(key: string, v: string): boolean {
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw invalidArgument(`invalid filter '${key}=${v}'`);
}

export function searchRoutes(router: Router, engine: Engine): void {
  router.add('GET', '/images/search', async (ctx) => {
    const term = ctx.query.get('term') ?? '';
    const limitRaw = ctx.query.get('limit');
    const limit = limitRaw ? Number(limitRaw) : 25;
    const f = parseFilters(ctx.query);
    checkFilterKeys(f, ['is-official', 'is-automated', 'stars']);
    const filters: SearchFilters = {};
    if (f['is-official']?.length) filters.isOfficial = bool('is-official', f['is-official'][0]);
    if (f['is-automated']?.length) filters.isAutomated = bool('is-automated', f['is-automated'][0]);
    if (f.stars?.length) {
      const n = Number(f.stars[0]);
      if (!Number.isInteger(n)) throw invalidArgument(`invalid filter 'stars=${f.stars[0]}'`);
      filters.stars = n;
    }
    const results = await searchRegistry(term, limit, filters, {
      mirrors: engine.config.registryMirrors,
      insecure: engine.config.insecureRegistries,
    });
    sendJson(ctx.res, 200, results);
  });
}

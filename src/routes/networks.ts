/**
 * Network routes: the Engine API's /networks translated onto the network room.
 */
import type { Engine } from '../engine/engine.js';
import type { NetworkRecord } from '../engine/network/network.js';
import { checkFilterKeys, parseFilters, readJson, type Router, sendEmpty, sendJson } from './http.js';

function labelMatch(labels: Record<string, string>, f: string): boolean {
  const eq = f.indexOf('=');
  return eq < 0 ? f in labels : labels[f.slice(0, eq)] === f.slice(eq + 1);
}

export function networkRoutes(router: Router, engine: Engine): void {
  const net = engine.network;

  router.add('GET', '/networks', (ctx) => {
    const f = parseFilters(ctx.query);
    checkFilterKeys(f, ['name', 'id', 'label', 'driver', 'type', 'dangling', 'scope']);
    const builtin = (r: NetworkRecord) => ['bridge', 'host', 'none'].includes(r.Name);
    const list = net
      .list()
      .filter(
        (r) =>
          (!f.name || f.name.some((n) => r.Name.includes(n))) &&
          (!f.id || f.id.some((i) => r.Id.startsWith(i))) &&
          (!f.label || f.label.every((l) => labelMatch(r.Labels, l))) &&
          (!f.driver || f.driver.includes(r.Driver)) &&
          (!f.scope || f.scope.includes('local')) &&
          (!f.type ||
            f.type.some((t) => (t === 'builtin' && builtin(r)) || (t === 'custom' && !builtin(r)))) &&
          (!f.dangling ||
            f.dangling.some(
              (d) => (d === 'true' || d === '1') === (!builtin(r) && net.endpointsOf(r.Id).length === 0),
            )),
      );
    sendJson(
      ctx.res,
      200,
      list.map((r) => net.view(r)),
    );
  });

  router.add('POST', '/networks/create', async (ctx) => {
    const body = await readJson<unknown>(ctx.req);
    sendJson(ctx.res, 201, await net.create(body));
  });

  router.add('POST', '/networks/prune', async (ctx) => {
    const f = parseFilters(ctx.query);
    checkFilterKeys(f, ['label', 'until']);
    const removed = await net.prune(f.label ?? []);
    sendJson(ctx.res, 200, { NetworksDeleted: removed.length ? removed : null });
  });

  router.add('GET', '/networks/{id}', (ctx) => sendJson(ctx.res, 200, net.view(net.get(ctx.params.id))));

  router.add('DELETE', '/networks/{id}', async (ctx) => {
    await net.remove(ctx.params.id);
    sendEmpty(ctx.res, 204);
  });

  router.add('POST', '/networks/{id}/connect', async (ctx) => {
    await net.connect(ctx.params.id, await readJson<unknown>(ctx.req, {}));
    ctx.res.writeHead(200, { 'Content-Length': 0 });
    ctx.res.end();
  });

  router.add('POST', '/networks/{id}/disconnect', async (ctx) => {
    await net.disconnect(ctx.params.id, await readJson<unknown>(ctx.req, {}));
    ctx.res.writeHead(200, { 'Content-Length': 0 });
    ctx.res.end();
  });
}

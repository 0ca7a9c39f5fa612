import type { HubContext } from './gate.js';
export async function webPage(ctx: HubContext, _p: string): Promise<void> {
  ctx.req.resume();
  ctx.res.writeHead(404);
  ctx.res.end();
}

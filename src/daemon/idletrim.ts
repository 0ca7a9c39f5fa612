/**
 * Gives the memory a burst of work used back to the kernel once the daemon is idle again. Buffers
 * (a build's streamed context, a pull's chunks) are freed only when V8 collects their objects, and
 * an idle daemon runs no collection; glibc then keeps freed heap pages inside the process when
 * anything allocated later sits above them. So: one full collection, then malloc_trim, which
 * returns every free page wherever it is. Run a moment after the last API answer ends, so busy
 * periods pay nothing.
 */
import type * as http from 'node:http';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { native } from '../common/native.js';

/** V8's gc(), made reachable without starting node with --expose-gc. */
function fullCollection(): () => void {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  v8.setFlagsFromString('--no-expose-gc');
  return gc;
}

export const IDLE_TRIM_DELAY_MS = 1000;

export function trimWhenIdle(servers: http.Server[], delayMs = IDLE_TRIM_DELAY_MS): void {
  const trim = native.mallocTrim;
  if (!trim) return;
  const gc = fullCollection();
  let timer: NodeJS.Timeout | undefined;
  // Work can outlive its answer (a build's clean-up, a socket the client keeps open): one more
  // pass a while later catches what the first could not free yet.
  let passes = 0;
  const fire = () => {
    gc();
    trim();
    if (++passes < 2) timer = setTimeout(fire, delayMs * 3).unref();
  };
  const arm = () => {
    passes = 0;
    if (timer) clearTimeout(timer);
    timer = setTimeout(fire, delayMs).unref();
  };
  for (const s of servers)
    s.on('request', (_req: http.IncomingMessage, res: http.ServerResponse) => res.once('close', arm));
}

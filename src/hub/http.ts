/** Small HTTP helpers shared by the hub's routes. */
import type * as http from 'node:http';

export function ociError(
  res: http.ServerResponse,
  status: number,
  code: string,
  message: string,
  detail?: unknown,
): void {
  const body = JSON.stringify({ errors: [{ code, message, detail: detail ?? null }] });
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

export function json(
  res: http.ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const data = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(data),
    ...headers,
  });
  res.end(data);
}

/** Reads a request body up to `limit` bytes; undefined when it is larger (the rest is drained). */
export async function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req) {
    n += (c as Buffer).length;
    // Past the limit keep reading (and dropping) so the client gets the error, not a reset.
    if (n <= limit) chunks.push(c as Buffer);
  }
  return n > limit ? undefined : Buffer.concat(chunks);
}

/** Paginates a sorted list with OCI's `n` and `last`; sets the Link header for the next page. */
export function paginate(
  res: http.ServerResponse,
  items: string[],
  url: URL,
  base: string,
): string[] | undefined {
  const nParam = url.searchParams.get('n');
  const last = url.searchParams.get('last');
  let out = last ? items.filter((t) => t > last) : items;
  if (nParam === null) return out;
  if (!/^\d+$/.test(nParam)) return undefined;
  const n = Number(nParam);
  if (out.length > n) {
    out = out.slice(0, n);
    if (n > 0)
      res.setHeader('Link', `<${base}?n=${n}&last=${encodeURIComponent(out[out.length - 1])}>; rel="next"`);
  }
  return out;
}

/**
 * Berth Hub: an OCI Distribution Spec registry over a HubStorage (anonymous, no accounts yet).
 */
import * as http from 'node:http';
import { Readable } from 'node:stream';
import { type Digest, isDigest, sha256Digest } from '../common/digest.js';
import { log } from '../common/log.js';
import {
  indexTypes,
  manifestKind,
  manifestTypes,
  parseIndex,
  parseManifest,
} from '../engine/images/manifest.js';
import type { HubStorage } from './storage.js';

const NAME = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*)*';
const ROUTE = new RegExp(`^/v2/(${NAME})/(manifests|blobs|tags)/(.*)$`);
const TAG = /^[\w][\w.-]{0,127}$/;
const MAX_MANIFEST = 4 * 1024 * 1024;

type Res = http.ServerResponse;

function ociError(res: Res, status: number, code: string, message: string, detail?: unknown): void {
  const body = JSON.stringify({ errors: [{ code, message, detail: detail ?? null }] });
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

async function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req) {
    n += (c as Buffer).length;
    // Past the limit keep reading (and dropping) so the client gets the error, not a reset.
    if (n <= limit) chunks.push(c as Buffer);
  }
  return n > limit ? undefined : Buffer.concat(chunks);
}

export function createHubServer(storage: HubStorage): http.Server {
  const server = http.createServer((req, res) => {
    res.setHeader('Docker-Distribution-API-Version', 'registry/2.0');
    handle(storage, req, res).catch((err: unknown) => {
      log.error('hub request failed', { error: String(err) });
      if (!res.headersSent) ociError(res, 500, 'UNKNOWN', String((err as Error).message ?? err));
      else res.destroy();
    });
  });
  return server;
}

async function handle(storage: HubStorage, req: http.IncomingMessage, res: Res): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://hub');
  const p = url.pathname;
  const method = req.method ?? 'GET';
  if (p === '/v2/' || p === '/v2') {
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': 2 });
    res.end('{}');
    return;
  }
  if (p === '/v2/_catalog') {
    const n = Number(url.searchParams.get('n') ?? '0');
    const last = url.searchParams.get('last');
    let repos = await storage.repositories();
    if (last) repos = repos.filter((r) => r > last);
    if (n > 0 && repos.length > n) {
      repos = repos.slice(0, n);
      res.setHeader(
        'Link',
        `</v2/_catalog?n=${n}&last=${encodeURIComponent(repos[repos.length - 1])}>; rel="next"`,
      );
    }
    json(res, 200, { repositories: repos });
    return;
  }
  const m = ROUTE.exec(p);
  if (!m) {
    if (p.startsWith('/v2/')) ociError(res, 404, 'NAME_INVALID', 'invalid repository name');
    else ociError(res, 404, 'NOT_FOUND', 'not found');
    req.resume();
    return;
  }
  const [, name, kind, rest] = m;
  if (name.length > 255) return ociError(res, 400, 'NAME_INVALID', 'repository name too long');
  if (kind === 'tags' && rest === 'list') {
    let tags = await storage.tags(name);
    if (!tags.length && !(await storage.repositories()).includes(name))
      return ociError(res, 404, 'NAME_UNKNOWN', 'repository name not known to registry');
    const n = Number(url.searchParams.get('n') ?? '0');
    const last = url.searchParams.get('last');
    if (last) tags = tags.filter((t) => t > last);
    if (n > 0 && tags.length > n) {
      tags = tags.slice(0, n);
      res.setHeader(
        'Link',
        `</v2/${name}/tags/list?n=${n}&last=${encodeURIComponent(tags[tags.length - 1])}>; rel="next"`,
      );
    }
    json(res, 200, { name, tags });
    return;
  }
  if (kind === 'blobs') return blobs(storage, req, res, name, rest, url);
  if (kind === 'manifests') return manifests(storage, req, res, name, rest, method);
  ociError(res, 404, 'NOT_FOUND', 'not found');
}

function json(res: Res, status: number, body: unknown): void {
  const data = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) });
  res.end(data);
}

async function blobs(
  storage: HubStorage,
  req: http.IncomingMessage,
  res: Res,
  name: string,
  rest: string,
  url: URL,
): Promise<void> {
  const method = req.method ?? 'GET';
  if (rest === 'uploads/' || rest === 'uploads') {
    if (method !== 'POST') return ociError(res, 405, 'UNSUPPORTED', 'method not allowed');
    const mount = url.searchParams.get('mount');
    if (mount && isDigest(mount) && (await storage.blobSize(mount)) !== undefined) {
      req.resume();
      res.writeHead(201, {
        Location: `/v2/${name}/blobs/${mount}`,
        'Docker-Content-Digest': mount,
        'Content-Length': 0,
      });
      res.end();
      return;
    }
    const id = await storage.startUpload();
    const digest = url.searchParams.get('digest');
    if (digest) {
      if (!isDigest(digest)) return ociError(res, 400, 'DIGEST_INVALID', 'invalid digest');
      await storage.appendUpload(id, req);
      if (!(await storage.commitUpload(id, digest)))
        return ociError(res, 400, 'DIGEST_INVALID', 'provided digest did not match uploaded content');
      res.writeHead(201, {
        Location: `/v2/${name}/blobs/${digest}`,
        'Docker-Content-Digest': digest,
        'Content-Length': 0,
      });
      res.end();
      return;
    }
    req.resume();
    res.writeHead(202, {
      Location: `/v2/${name}/blobs/uploads/${id}`,
      Range: '0-0',
      'Docker-Upload-UUID': id,
      'Content-Length': 0,
    });
    res.end();
    return;
  }
  const up = /^uploads\/([0-9a-f-]{36})$/.exec(rest);
  if (up) {
    const id = up[1];
    const size = await storage.uploadSize(id);
    if (size === undefined) {
      req.resume();
      return ociError(res, 404, 'BLOB_UPLOAD_UNKNOWN', 'blob upload unknown to registry');
    }
    if (method === 'GET') {
      res.writeHead(204, {
        Location: `/v2/${name}/blobs/uploads/${id}`,
        Range: `0-${Math.max(0, size - 1)}`,
        'Docker-Upload-UUID': id,
      });
      res.end();
      return;
    }
    if (method === 'DELETE') {
      await storage.cancelUpload(id);
      res.writeHead(204);
      res.end();
      return;
    }
    if (method === 'PATCH' || method === 'PUT') {
      const cr = req.headers['content-range'];
      const offset = typeof cr === 'string' && /^\d+-\d+$/.test(cr) ? Number(cr.split('-')[0]) : undefined;
      let newSize: number;
      try {
        newSize = await storage.appendUpload(id, req, offset);
      } catch (err) {
        if ((err as { code?: string }).code === 'RANGE')
          return ociError(res, 416, 'BLOB_UPLOAD_INVALID', 'content range does not match the upload');
        throw err;
      }
      if (method === 'PATCH') {
        res.writeHead(202, {
          Location: `/v2/${name}/blobs/uploads/${id}`,
          Range: `0-${Math.max(0, newSize - 1)}`,
          'Docker-Upload-UUID': id,
          'Content-Length': 0,
        });
        res.end();
        return;
      }
      const digest = url.searchParams.get('digest');
      if (!digest || !isDigest(digest))
        return ociError(res, 400, 'DIGEST_INVALID', 'invalid or missing digest');
      if (!(await storage.commitUpload(id, digest)))
        return ociError(res, 400, 'DIGEST_INVALID', 'provided digest did not match uploaded content');
      res.writeHead(201, {
        Location: `/v2/${name}/blobs/${digest}`,
        'Docker-Content-Digest': digest,
        'Content-Length': 0,
      });
      res.end();
      return;
    }
    return ociError(res, 405, 'UNSUPPORTED', 'method not allowed');
  }
  req.resume();
  if (!isDigest(rest)) return ociError(res, 400, 'DIGEST_INVALID', 'invalid digest');
  const size = await storage.blobSize(rest);
  if (size === undefined)
    return ociError(res, 404, 'BLOB_UNKNOWN', 'blob unknown to registry', { digest: rest });
  const headers: Record<string, string | number> = {
    'Docker-Content-Digest': rest,
    'Accept-Ranges': 'bytes',
    'Content-Type': 'application/octet-stream',
  };
  const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
  if (range) {
    const start = Number(range[1]);
    const end = range[2] ? Math.min(Number(range[2]), size - 1) : size - 1;
    if (start >= size || start > end) {
      res.writeHead(416, { 'Content-Range': `bytes */${size}` });
      res.end();
      return;
    }
    res.writeHead(206, {
      ...headers,
      'Content-Length': end - start + 1,
      'Content-Range': `bytes ${start}-${end}/${size}`,
    });
    if (method === 'HEAD') return void res.end();
    storage.readBlob(rest, { start, end }).pipe(res);
    return;
  }
  res.writeHead(200, { ...headers, 'Content-Length': size });
  if (method === 'HEAD') return void res.end();
  if (method === 'DELETE') return void res.end();
  storage.readBlob(rest).pipe(res);
}

async function manifests(
  storage: HubStorage,
  req: http.IncomingMessage,
  res: Res,
  name: string,
  ref: string,
  method: string,
): Promise<void> {
  const byDigest = isDigest(ref);
  if (!byDigest && !TAG.test(ref)) {
    req.resume();
    return ociError(res, 400, 'TAG_INVALID', 'manifest tag did not match URI');
  }
  if (method === 'PUT') {
    const body = await readBody(req, MAX_MANIFEST);
    if (!body) return ociError(res, 413, 'SIZE_INVALID', 'manifest too large');
    const digest = sha256Digest(body);
    if (byDigest && ref !== digest)
      return ociError(res, 400, 'DIGEST_INVALID', 'manifest digest did not match');
    const ctype = String(req.headers['content-type'] ?? '').split(';')[0];
    let mediaType: string;
    try {
      const parsed = JSON.parse(body.toString()) as unknown;
      const kind = manifestKind(parsed, ctype || undefined);
      if (kind === 'index') {
        const idx = parseIndex(body);
        for (const m of idx.manifests)
          if (!(await storage.hasManifest(name, m.digest)))
            return ociError(
              res,
              400,
              'MANIFEST_BLOB_UNKNOWN',
              'manifest references a manifest not in the repository',
              { digest: m.digest },
            );
        mediaType =
          idx.mediaType ?? (indexTypes.has(ctype) ? ctype : 'application/vnd.oci.image.index.v1+json');
      } else {
        const man = parseManifest(body);
        for (const b of [man.config, ...man.layers])
          if ((await storage.blobSize(b.digest)) === undefined)
            return ociError(res, 400, 'MANIFEST_BLOB_UNKNOWN', 'blob unknown to registry', {
              digest: b.digest,
            });
        mediaType =
          man.mediaType ?? (manifestTypes.has(ctype) ? ctype : 'application/vnd.oci.image.manifest.v1+json');
      }
    } catch (err) {
      return ociError(res, 400, 'MANIFEST_INVALID', `manifest invalid: ${(err as Error).message}`);
    }
    const id = await storage.startUpload();
    await storage.appendUpload(id, Readable.from([body]));
    await storage.commitUpload(id, digest);
    await storage.linkManifest(name, digest, mediaType, byDigest ? undefined : ref);
    res.writeHead(201, {
      Location: `/v2/${name}/manifests/${digest}`,
      'Docker-Content-Digest': digest,
      'Content-Length': 0,
    });
    res.end();
    return;
  }
  req.resume();
  const digest: Digest | undefined = byDigest ? ref : await storage.resolveTag(name, ref);
  if (method === 'DELETE') {
    const ok = byDigest ? await storage.deleteManifest(name, ref) : await storage.deleteTag(name, ref);
    if (!ok) return ociError(res, 404, 'MANIFEST_UNKNOWN', 'manifest unknown');
    res.writeHead(202, { 'Content-Length': 0 });
    res.end();
    return;
  }
  const mediaType = digest ? await storage.manifestType(name, digest) : undefined;
  const size = digest && mediaType ? await storage.blobSize(digest) : undefined;
  if (!digest || !mediaType || size === undefined)
    return ociError(res, 404, 'MANIFEST_UNKNOWN', 'manifest unknown', { name, reference: ref });
  res.writeHead(200, { 'Content-Type': mediaType, 'Docker-Content-Digest': digest, 'Content-Length': size });
  if (method === 'HEAD') return void res.end();
  storage.readBlob(digest).pipe(res);
}

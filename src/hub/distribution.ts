/**
 * The OCI Distribution Spec v1.1 routes: /v2/, _catalog, tags list (paginated), blobs
 * (GET/HEAD with Range, DELETE), uploads (monolithic, chunked, cross-repository mount),
 * manifests (GET/HEAD/PUT/DELETE by tag or digest, `subject` → referrers) and the referrers API.
 */
import type * as http from 'node:http';
import { Readable } from 'node:stream';
import { type Digest, isDigest, sha256Digest } from '../common/digest.js';
import { checkPushedManifest, ManifestError } from './manifest.js';
import { json, ociError, paginate, readBody } from './http.js';
import { authorize, authorizeBase, canList, type HubContext, principalOrAnonymous } from './gate.js';
import { sendFileRange } from './send.js';
import type { Descriptor } from './storage.js';

const COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
export const NAME_RE = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const ROUTE = /^\/v2\/(.+?)\/(manifests|blobs|tags|referrers)\/(.*)$/;
const TAG = /^[\w][\w.-]{0,127}$/;
/** Manifests up to 4 MiB, the spec's suggested minimum a registry accepts. */
export const MAX_MANIFEST = 4 * 1024 * 1024;
const INDEX = 'application/vnd.oci.image.index.v1+json';

export async function distribution(ctx: HubContext, rawPath: string): Promise<void> {
  const { req, res, url, storage } = ctx;
  if (rawPath === '/v2/' || rawPath === '/v2') {
    req.resume();
    if (!(await authorizeBase(ctx))) return;
    return json(res, 200, {});
  }
  if (rawPath === '/v2/_catalog') {
    req.resume();
    const p = await principalOrAnonymous(ctx);
    const repos = [];
    for (const r of await storage.repositories()) if (await canList(ctx, p, r)) repos.push(r);
    const page = paginate(res, repos, url, '/v2/_catalog');
    if (!page) return ociError(res, 400, 'PAGINATION_NUMBER_INVALID', 'invalid number of results requested');
    return json(res, 200, { repositories: page });
  }
  const m = ROUTE.exec(rawPath);
  if (!m) {
    req.resume();
    return ociError(res, 404, 'NOT_FOUND', 'no such route');
  }
  const [, name, kind, rest] = m;
  if (!NAME_RE.test(name) || name.length > 255) {
    req.resume();
    return ociError(res, 400, 'NAME_INVALID', 'invalid repository name', { name });
  }
  const method = req.method ?? 'GET';
  const action = method === 'GET' || method === 'HEAD' ? 'pull' : method === 'DELETE' ? 'delete' : 'push';
  if (!(await authorize(ctx, name, action))) return;
  if (kind === 'tags' && rest === 'list') {
    req.resume();
    const tags = await storage.tags(name);
    if (!tags.length && !(await storage.repositories()).includes(name))
      return ociError(res, 404, 'NAME_UNKNOWN', 'repository name not known to registry', { name });
    const page = paginate(res, tags, url, `/v2/${name}/tags/list`);
    if (!page) return ociError(res, 400, 'PAGINATION_NUMBER_INVALID', 'invalid number of results requested');
    return json(res, 200, { name, tags: page });
  }
  if (kind === 'referrers') return referrers(ctx, name, rest);
  if (kind === 'blobs') return blobs(ctx, name, rest);
  if (kind === 'manifests') return manifests(ctx, name, rest);
  req.resume();
  ociError(res, 404, 'NOT_FOUND', 'no such route');
}

async function referrers(ctx: HubContext, name: string, ref: string): Promise<void> {
  const { req, res, url, storage } = ctx;
  req.resume();
  if (req.method !== 'GET') return ociError(res, 405, 'UNSUPPORTED', 'method not allowed');
  if (!isDigest(ref)) return ociError(res, 400, 'DIGEST_INVALID', 'invalid digest', { digest: ref });
  let list = await storage.referrers(name, ref);
  const filter = url.searchParams.get('artifactType');
  const headers: Record<string, string> = {};
  if (filter) {
    list = list.filter((d) => d.artifactType === filter);
    headers['OCI-Filters-Applied'] = 'artifactType';
  }
  const body = JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests: list });
  res.writeHead(200, { 'Content-Type': INDEX, 'Content-Length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

function created(
  ctx: HubContext,
  location: string,
  digest: Digest,
  extra: Record<string, string> = {},
): void {
  ctx.res.writeHead(201, {
    Location: location,
    'Docker-Content-Digest': digest,
    'Content-Length': 0,
    ...extra,
  });
  ctx.res.end();
}

async function blobs(ctx: HubContext, name: string, rest: string): Promise<void> {
  const { req, res, url, storage } = ctx;
  const method = req.method ?? 'GET';
  if (rest === 'uploads/' || rest === 'uploads') {
    if (method !== 'POST') {
      req.resume();
      return ociError(res, 405, 'UNSUPPORTED', 'method not allowed');
    }
    const mount = url.searchParams.get('mount');
    const from = url.searchParams.get('from');
    if (mount && isDigest(mount)) {
      // Mount from the named repository when the caller may read it; otherwise fall through to a
      // plain upload session, as the spec allows.
      let source = false;
      if (from && NAME_RE.test(from) && (await storage.hasBlobIn(from, mount)))
        source = !ctx.opts.auth || (await canRead(ctx, from));
      else if (!from && !ctx.opts.auth) source = (await storage.blobSize(mount)) !== undefined;
      if (source) {
        req.resume();
        await storage.linkBlob(name, mount);
        return created(ctx, `/v2/${name}/blobs/${mount}`, mount);
      }
    }
    const digest = url.searchParams.get('digest');
    if (digest !== null && !isDigest(digest)) {
      req.resume();
      return ociError(res, 400, 'DIGEST_INVALID', 'invalid digest', { digest });
    }
    const id = await storage.startUpload(name);
    if (digest) {
      await storage.appendUpload(id, req);
      if (!(await storage.commitUpload(id, digest)))
        return ociError(res, 400, 'DIGEST_INVALID', 'provided digest did not match uploaded content', {
          digest,
        });
      await storage.linkBlob(name, digest);
      return created(ctx, `/v2/${name}/blobs/${digest}`, digest);
    }
    req.resume();
    res.writeHead(202, {
      Location: `/v2/${name}/blobs/uploads/${id}`,
      Range: '0-0',
      'Docker-Upload-UUID': id,
      'OCI-Chunk-Min-Length': '0',
      'Content-Length': 0,
    });
    res.end();
    return;
  }
  const up = /^uploads\/([^/]+)$/.exec(rest);
  if (up) return upload(ctx, name, up[1]);
  req.resume();
  if (!isDigest(rest)) return ociError(res, 400, 'DIGEST_INVALID', 'invalid digest', { digest: rest });
  if (method === 'DELETE') {
    if (!(await storage.unlinkBlob(name, rest)))
      return ociError(res, 404, 'BLOB_UNKNOWN', 'blob unknown to registry', { digest: rest });
    res.writeHead(202, { 'Content-Length': 0 });
    res.end();
    return;
  }
  if (method !== 'GET' && method !== 'HEAD') return ociError(res, 405, 'UNSUPPORTED', 'method not allowed');
  let blob = await storage.openBlobIn(name, rest);
  if (!blob && ctx.opts.proxy) {
    await ctx.opts.proxy.fetchBlob(storage, name, rest);
    blob = await storage.openBlobIn(name, rest);
  }
  if (!blob) return ociError(res, 404, 'BLOB_UNKNOWN', 'blob unknown to registry', { digest: rest });
  const { file, size } = blob;
  const headers: Record<string, string | number> = {
    'Docker-Content-Digest': rest,
    'Accept-Ranges': 'bytes',
    'Content-Type': 'application/octet-stream',
  };
  let start = 0;
  let length = size;
  const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
  if (range) {
    start = Number(range[1]);
    const end = range[2] ? Math.min(Number(range[2]), size - 1) : size - 1;
    if (start >= size || start > end) {
      await file.close();
      res.writeHead(416, { 'Content-Range': `bytes */${size}` });
      res.end();
      return;
    }
    length = end - start + 1;
    res.writeHead(206, {
      ...headers,
      'Content-Length': length,
      'Content-Range': `bytes ${start}-${end}/${size}`,
    });
  } else res.writeHead(200, { ...headers, 'Content-Length': size });
  if (method === 'HEAD') {
    await file.close();
    res.end();
    return;
  }
  await sendFileRange(res, file, start, length);
}

async function canRead(ctx: HubContext, repo: string): Promise<boolean> {
  const p = await principalOrAnonymous(ctx);
  return canList(ctx, p, repo);
}

async function upload(ctx: HubContext, name: string, id: string): Promise<void> {
  const { req, res, url, storage } = ctx;
  const method = req.method ?? 'GET';
  const owner = await storage.uploadRepo(id);
  const size = owner === name ? await storage.uploadSize(id) : undefined;
  if (size === undefined) {
    req.resume();
    return ociError(res, 404, 'BLOB_UPLOAD_UNKNOWN', 'blob upload unknown to registry', { uuid: id });
  }
  const progress = (status: number, n: number) => {
    res.writeHead(status, {
      Location: `/v2/${name}/blobs/uploads/${id}`,
      Range: `0-${Math.max(0, n - 1)}`,
      'Docker-Upload-UUID': id,
      'Content-Length': 0,
    });
    res.end();
  };
  if (method === 'GET') {
    req.resume();
    return progress(204, size);
  }
  if (method === 'DELETE') {
    req.resume();
    await storage.cancelUpload(id);
    res.writeHead(204);
    res.end();
    return;
  }
  if (method !== 'PATCH' && method !== 'PUT') {
    req.resume();
    return ociError(res, 405, 'UNSUPPORTED', 'method not allowed');
  }
  const digest = url.searchParams.get('digest');
  if (method === 'PUT' && (!digest || !isDigest(digest))) {
    req.resume();
    return ociError(res, 400, 'DIGEST_INVALID', 'invalid or missing digest', { digest });
  }
  const cr = req.headers['content-range'];
  let offset: number | undefined;
  if (typeof cr === 'string') {
    const r = /^(?:bytes[ =])?(\d+)-(\d+)$/.exec(cr.trim());
    if (!r) {
      req.resume();
      return ociError(res, 416, 'BLOB_UPLOAD_INVALID', 'malformed Content-Range');
    }
    offset = Number(r[1]);
  }
  let newSize: number;
  try {
    newSize = await storage.appendUpload(id, req, offset);
  } catch (err) {
    req.resume();
    if ((err as { code?: string }).code === 'RANGE') {
      res.setHeader('Range', `0-${Math.max(0, size - 1)}`);
      return ociError(res, 416, 'BLOB_UPLOAD_INVALID', 'content range does not match the upload');
    }
    if ((err as { code?: string }).code === 'BLOB_UPLOAD_UNKNOWN')
      return ociError(res, 404, 'BLOB_UPLOAD_UNKNOWN', 'blob upload unknown to registry', { uuid: id });
    throw err;
  }
  if (method === 'PATCH') return progress(202, newSize);
  if (!(await storage.commitUpload(id, digest as Digest)))
    return ociError(res, 400, 'DIGEST_INVALID', 'provided digest did not match uploaded content', { digest });
  await storage.linkBlob(name, digest as Digest);
  created(ctx, `/v2/${name}/blobs/${digest}`, digest as Digest);
}

async function manifests(ctx: HubContext, name: string, ref: string): Promise<void> {
  const { req, res, storage } = ctx;
  const method = req.method ?? 'GET';
  const byDigest = isDigest(ref);
  if (!byDigest && !TAG.test(ref)) {
    req.resume();
    if (/^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:/.test(ref))
      return ociError(res, 400, 'DIGEST_INVALID', 'invalid or unsupported digest', { reference: ref });
    return ociError(res, 400, 'TAG_INVALID', 'manifest tag did not match URI', { reference: ref });
  }
  if (method === 'PUT') return putManifest(ctx, name, ref, byDigest);
  req.resume();
  if (method === 'DELETE') {
    let ok: boolean;
    if (byDigest) {
      const subject = await manifestSubject(ctx, ref);
      ok = await storage.deleteManifest(name, ref);
      if (ok && subject) await storage.removeReferrer(name, subject, ref);
    } else ok = await storage.deleteTag(name, ref);
    if (!ok) return ociError(res, 404, 'MANIFEST_UNKNOWN', 'manifest unknown', { name, reference: ref });
    res.writeHead(202, { 'Content-Length': 0 });
    res.end();
    return;
  }
  if (method !== 'GET' && method !== 'HEAD') return ociError(res, 405, 'UNSUPPORTED', 'method not allowed');
  let digest: Digest | undefined = byDigest ? ref : await storage.resolveTag(name, ref);
  if ((!digest || !(await storage.hasManifest(name, digest))) && ctx.opts.proxy) {
    await ctx.opts.proxy.fetchManifest(storage, name, ref);
    digest = byDigest ? ref : await storage.resolveTag(name, ref);
  }
  const mediaType = digest ? await storage.manifestType(name, digest) : undefined;
  const size = digest && mediaType ? await storage.blobSize(digest) : undefined;
  if (!digest || !mediaType || size === undefined)
    return ociError(res, 404, 'MANIFEST_UNKNOWN', 'manifest unknown', { name, reference: ref });
  res.writeHead(200, { 'Content-Type': mediaType, 'Docker-Content-Digest': digest, 'Content-Length': size });
  if (method === 'HEAD') return void res.end();
  storage.readBlob(digest).pipe(res);
}

async function manifestSubject(ctx: HubContext, digest: Digest): Promise<Digest | undefined> {
  try {
    const chunks: Buffer[] = [];
    for await (const c of ctx.storage.readBlob(digest)) chunks.push(c as Buffer);
    const d = (JSON.parse(Buffer.concat(chunks).toString()) as { subject?: { digest?: unknown } }).subject
      ?.digest;
    return typeof d === 'string' && isDigest(d) ? d : undefined;
  } catch {
    return undefined;
  }
}

/** Discards a request body up to `limit` bytes; false when it was longer (or failed). */
function drain(req: http.IncomingMessage, limit: number): Promise<boolean> {
  if (req.readableEnded) return Promise.resolve(true);
  return new Promise((resolve) => {
    let n = 0;
    const onData = (c: Buffer) => {
      n += c.length;
      if (n > limit) {
        req.off('data', onData);
        req.pause();
        resolve(false);
      }
    };
    req.on('data', onData);
    req.once('end', () => resolve(true));
    req.once('error', () => resolve(false));
  });
}

async function putManifest(ctx: HubContext, name: string, ref: string, byDigest: boolean): Promise<void> {
  const { req, res, storage } = ctx;
  const declared = Number(req.headers['content-length'] ?? '0');
  const body = declared > MAX_MANIFEST ? undefined : await readBody(req, MAX_MANIFEST);
  if (!body) {
    // Read the rest (bounded) before answering: a client still sending would otherwise get EPIPE
    // instead of the 413.
    if (!(await drain(req, 16 * MAX_MANIFEST))) res.setHeader('Connection', 'close');
    return ociError(res, 413, 'SIZE_INVALID', `manifest larger than ${MAX_MANIFEST} bytes`);
  }
  const digest = sha256Digest(body);
  if (byDigest && ref !== digest)
    return ociError(res, 400, 'DIGEST_INVALID', 'manifest digest did not match its content', {
      expected: ref,
      computed: digest,
    });
  const ctype =
    String(req.headers['content-type'] ?? '')
      .split(';')[0]
      .trim() || undefined;
  let man;
  try {
    man = checkPushedManifest(body, ctype);
  } catch (err) {
    if (err instanceof ManifestError)
      return ociError(res, 400, 'MANIFEST_INVALID', `manifest invalid: ${err.message}`);
    throw err;
  }
  for (const d of man.references) {
    const present =
      man.kind === 'index'
        ? await storage.hasManifest(name, d.digest)
        : await storage.hasBlobIn(name, d.digest);
    if (!present)
      return ociError(
        res,
        400,
        'MANIFEST_BLOB_UNKNOWN',
        man.kind === 'index'
          ? 'manifest references a manifest not in the repository'
          : 'blob unknown to registry',
        { digest: d.digest },
      );
  }
  const id = await storage.startUpload(name);
  await storage.appendUpload(id, Readable.from([body]));
  await storage.commitUpload(id, digest);
  await storage.linkBlob(name, digest);
  // The referrers entry first: a crash between the two leaves an entry whose manifest is not
  // linked, which referrers() skips.
  const headers: Record<string, string> = {};
  if (man.subject) {
    const descriptor: Descriptor = {
      mediaType: man.mediaType,
      digest,
      size: body.length,
      artifactType: man.artifactType ?? man.configMediaType,
    };
    if (man.annotations) descriptor.annotations = man.annotations;
    await storage.addReferrer(name, man.subject.digest, descriptor);
    headers['OCI-Subject'] = man.subject.digest;
  }
  await storage.linkManifest(name, digest, man.mediaType, byDigest ? undefined : ref);
  created(ctx, `/v2/${name}/manifests/${digest}`, digest, headers);
}

/**
 * The hub's web pages, rendered on the server as plain HTML: the repository list (`/`), search
 * (`/search?q=`), a repository's tags (`/r/<name>`), and a tag's or digest's manifest with its
 * platforms (an index), or its config and layers (`/r/<name>/tags/<tag>`,
 * `/r/<name>/manifests/<digest>`). Pages show what an anonymous caller may pull.
 */
import { type Digest, isDigest } from '../common/digest.js';
import { NAME_RE } from './distribution.js';
import { canList, type HubContext } from './gate.js';
import { searchRepos } from './search.js';

const esc = (s: unknown): string =>
  String(s).replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c,
  );

const STYLE = `body{font-family:system-ui,sans-serif;margin:0;color:#1b1f24}
header{background:#0b3d91;color:#fff;padding:.6em 1.2em;display:flex;gap:1.5em;align-items:center}
header a{color:#fff;text-decoration:none;font-weight:600}main{padding:1em 1.2em}
table{border-collapse:collapse}td,th{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:left}
code{font-size:.9em}pre{background:#f4f6f8;padding:.8em;overflow:auto}.muted{color:#667}`;

function page(title: string, body: string, q = ''): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(title)} · Berth Hub</title>
<style>${STYLE}</style></head><body><header><a href="/">Berth Hub</a>
<form action="/search" method="get"><input name="q" value="${esc(q)}" placeholder="Search images" aria-label="search"> <button type="submit">Search</button></form>
</header><main><h1>${esc(title)}</h1>${body}</main></body></html>`;
}

function send(ctx: HubContext, status: number, html: string): void {
  ctx.res.writeHead(status, {
    'Content-Type': 'text/html; charset=utf-8',
    'Content-Length': Buffer.byteLength(html),
    'Content-Security-Policy': "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
    'X-Content-Type-Options': 'nosniff',
  });
  ctx.res.end(ctx.req.method === 'HEAD' ? undefined : html);
}

const notFound = (ctx: HubContext, what: string) => send(ctx, 404, page('Not found', `<p>${esc(what)}</p>`));

function humanSize(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i ? v.toFixed(1) : v} ${units[i]}`;
}

async function readJsonBlob(ctx: HubContext, d: Digest): Promise<Record<string, unknown> | undefined> {
  const size = await ctx.storage.blobSize(d);
  if (size === undefined || size > 4 * 1024 * 1024) return undefined;
  const chunks: Buffer[] = [];
  for await (const c of ctx.storage.readBlob(d)) chunks.push(c as Buffer);
  try {
    return JSON.parse(Buffer.concat(chunks).toString()) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

function repoLink(name: string): string {
  return `<a href="/r/${esc(name)}">${esc(name)}</a>`;
}

async function repoList(ctx: HubContext): Promise<void> {
  const rows: string[] = [];
  for (const r of await ctx.storage.repositories()) {
    if (!(await canList(ctx, undefined, r))) continue;
    const meta = await ctx.storage.repoMeta(r);
    const tags = await ctx.storage.tags(r);
    rows.push(
      `<tr><td>${repoLink(r)}</td><td>${esc(meta.description ?? '')}</td><td>${tags.length}</td></tr>`,
    );
  }
  send(
    ctx,
    200,
    page(
      'Repositories',
      rows.length
        ? `<table id="repositories"><thead><tr><th>Repository</th><th>Description</th><th>Tags</th></tr></thead><tbody>${rows.join('')}</tbody></table>`
        : '<p>No repositories yet.</p>',
    ),
  );
}

async function search(ctx: HubContext): Promise<void> {
  const q = ctx.url.searchParams.get('q') ?? '';
  const results = await searchRepos(ctx, undefined, q);
  const rows = results.map((r) => {
    const repo = r.is_official ? `library/${r.name}` : r.name;
    return `<tr><td><a href="/r/${esc(repo)}">${esc(r.name)}</a>${r.is_official ? ' <span class="muted">official</span>' : ''}</td><td>${esc(r.description)}</td><td>${r.star_count}</td></tr>`;
  });
  send(
    ctx,
    200,
    page(
      `Search: ${q}`,
      `<p>${results.length} result${results.length === 1 ? '' : 's'}</p>` +
        (rows.length
          ? `<table id="results"><thead><tr><th>Name</th><th>Description</th><th>Stars</th></tr></thead><tbody>${rows.join('')}</tbody></table>`
          : ''),
      q,
    ),
  );
}

async function repository(ctx: HubContext, name: string): Promise<void> {
  const tags = await ctx.storage.tags(name);
  if (!tags.length && !(await ctx.storage.repositories()).includes(name))
    return notFound(ctx, `No repository ${name}.`);
  const meta = await ctx.storage.repoMeta(name);
  const rows: string[] = [];
  for (const t of tags) {
    const d = await ctx.storage.resolveTag(name, t);
    const type = d ? await ctx.storage.manifestType(name, d) : undefined;
    rows.push(
      `<tr><td><a href="/r/${esc(name)}/tags/${esc(t)}">${esc(t)}</a></td><td><code>${esc(d ?? '')}</code></td><td>${esc(type ?? '')}</td></tr>`,
    );
  }
  const pullName = name.startsWith('library/') ? name.slice(8) : name;
  send(
    ctx,
    200,
    page(
      name,
      `<p>${esc(meta.description ?? '')}</p><p>Pull: <code>docker pull ${esc(ctx.req.headers.host ?? '')}/${esc(name)}</code>${
        pullName !== name ? ` (or <code>${esc(pullName)}</code> through the mirror)` : ''
      }</p><h2>Tags</h2><table id="tags"><thead><tr><th>Tag</th><th>Digest</th><th>Type</th></tr></thead><tbody>${rows.join('')}</tbody></table>`,
    ),
  );
}

async function manifest(ctx: HubContext, name: string, digest: Digest, title: string): Promise<void> {
  const mediaType = await ctx.storage.manifestType(name, digest);
  const m = mediaType ? await readJsonBlob(ctx, digest) : undefined;
  if (!m) return notFound(ctx, `No manifest ${digest} in ${name}.`);
  const parts = [
    `<p><a href="/r/${esc(name)}">← ${esc(name)}</a></p>`,
    `<table><tr><th>Digest</th><td><code id="manifest-digest">${esc(digest)}</code></td></tr><tr><th>Media type</th><td>${esc(mediaType)}</td></tr></table>`,
  ];
  if (Array.isArray(m.manifests)) {
    const rows = (m.manifests as { digest?: string; size?: number; platform?: Record<string, string> }[]).map(
      (x) => {
        const p = x.platform
          ? [x.platform.os, x.platform.architecture, x.platform.variant].filter(Boolean).join('/')
          : '';
        const link =
          typeof x.digest === 'string' && isDigest(x.digest)
            ? `<a href="/r/${esc(name)}/manifests/${esc(x.digest)}"><code>${esc(x.digest)}</code></a>`
            : esc(x.digest);
        return `<tr><td>${esc(p)}</td><td>${link}</td><td>${esc(humanSize(Number(x.size ?? 0)))}</td></tr>`;
      },
    );
    parts.push(
      `<h2>Platforms</h2><table id="platforms"><thead><tr><th>Platform</th><th>Manifest</th><th>Size</th></tr></thead><tbody>${rows.join('')}</tbody></table>`,
    );
  } else {
    const layers = Array.isArray(m.layers)
      ? (m.layers as { digest?: string; size?: number; mediaType?: string }[])
      : [];
    const rows = layers.map(
      (l, i) =>
        `<tr><td>${i + 1}</td><td><code class="layer-digest">${esc(l.digest)}</code></td><td>${esc(humanSize(Number(l.size ?? 0)))}</td><td>${esc(l.mediaType)}</td></tr>`,
    );
    const total = layers.reduce((n, l) => n + Number(l.size ?? 0), 0);
    parts.push(
      `<h2>Layers</h2><p>${layers.length} layer${layers.length === 1 ? '' : 's'}, ${esc(humanSize(total))} compressed</p><table id="layers"><thead><tr><th>#</th><th>Digest</th><th>Size</th><th>Media type</th></tr></thead><tbody>${rows.join('')}</tbody></table>`,
    );
    const cfgDesc = m.config as { digest?: string } | undefined;
    const cfg =
      cfgDesc && typeof cfgDesc.digest === 'string' && isDigest(cfgDesc.digest)
        ? await readJsonBlob(ctx, cfgDesc.digest)
        : undefined;
    if (cfg) {
      const c = (cfg.config ?? {}) as Record<string, unknown>;
      const field = (k: string, v: unknown) =>
        v === undefined || v === null
          ? ''
          : `<tr><th>${esc(k)}</th><td><code>${esc(JSON.stringify(v))}</code></td></tr>`;
      parts.push(
        `<h2>Config</h2><p><code id="config-digest">${esc(cfgDesc!.digest)}</code></p><table id="config">${[
          field('Platform', [cfg.os, cfg.architecture, cfg.variant].filter(Boolean).join('/')),
          field('Created', cfg.created),
          field('Entrypoint', c.Entrypoint),
          field('Cmd', c.Cmd),
          field('Env', c.Env),
          field('WorkingDir', c.WorkingDir || undefined),
          field('User', c.User || undefined),
          field('ExposedPorts', c.ExposedPorts ? Object.keys(c.ExposedPorts as object) : undefined),
          field('Labels', c.Labels),
        ].join('')}</table>`,
      );
      if (Array.isArray(cfg.history))
        parts.push(
          `<h2>History</h2><table id="history">${(
            cfg.history as { created_by?: string; empty_layer?: boolean }[]
          )
            .map(
              (h) =>
                `<tr><td><code>${esc(h.created_by ?? '')}</code></td><td>${h.empty_layer ? '<span class="muted">no layer</span>' : ''}</td></tr>`,
            )
            .join('')}</table>`,
        );
    }
  }
  send(ctx, 200, page(title, parts.join('')));
}

export async function webPage(ctx: HubContext, rawPath: string): Promise<void> {
  ctx.req.resume();
  if (ctx.req.method !== 'GET' && ctx.req.method !== 'HEAD') {
    ctx.res.writeHead(405, { Allow: 'GET, HEAD' });
    ctx.res.end();
    return;
  }
  if (rawPath === '/') return repoList(ctx);
  if (rawPath === '/search') return search(ctx);
  const m = /^\/r\/(.+?)(?:\/(tags|manifests)\/([^/]+))?$/.exec(rawPath);
  if (!m || !NAME_RE.test(m[1])) return notFound(ctx, 'No such page.');
  const [, name, kind, ref] = m;
  // Private repositories do not exist for the web pages.
  if (!(await canList(ctx, undefined, name))) return notFound(ctx, `No repository ${name}.`);
  if (!kind) return repository(ctx, name);
  if (kind === 'manifests') {
    if (!isDigest(ref)) return notFound(ctx, 'Not a digest.');
    return manifest(ctx, name, ref, `${name}@${ref.slice(0, 19)}…`);
  }
  const tag = decodeURIComponent(ref);
  const d = await ctx.storage.resolveTag(name, tag);
  if (!d) return notFound(ctx, `No tag ${tag} in ${name}.`);
  return manifest(ctx, name, d, `${name}:${tag}`);
}

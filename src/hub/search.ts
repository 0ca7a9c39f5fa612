/**
 * `docker search` against the hub: Docker Hub's v1 search JSON (`GET /v1/search?q=&n=&page=`),
 * over the repositories the caller may see. Official images are `library/*`, shown without the
 * prefix as Docker Hub does.
 */
import type { Principal } from './auth.js';
import { json } from './http.js';
import { canList, type HubContext } from './gate.js';

export interface SearchResult {
  name: string;
  description: string;
  star_count: number;
  is_official: boolean;
  is_automated: boolean;
}

/** All repositories matching `q` (name or description, case-insensitive), most stars first. */
export async function searchRepos(
  ctx: HubContext,
  p: Principal | undefined,
  q: string,
): Promise<SearchResult[]> {
  const term = q.trim().toLowerCase();
  const out: SearchResult[] = [];
  for (const repo of await ctx.storage.repositories()) {
    if (!(await canList(ctx, p, repo))) continue;
    const meta = await ctx.storage.repoMeta(repo);
    const description = meta.description ?? '';
    if (term && !repo.includes(term) && !description.toLowerCase().includes(term)) continue;
    const official = repo.startsWith('library/');
    out.push({
      name: official ? repo.slice('library/'.length) : repo,
      description,
      star_count: meta.stars ?? 0,
      is_official: official,
      is_automated: false,
    });
  }
  return out.sort(
    (a, b) =>
      b.star_count - a.star_count ||
      Number(b.is_official) - Number(a.is_official) ||
      a.name.localeCompare(b.name),
  );
}

export async function searchRoute(ctx: HubContext, p: Principal | undefined): Promise<void> {
  const { req, res, url } = ctx;
  req.resume();
  const q = url.searchParams.get('q') ?? '';
  const n = Math.min(100, Math.max(1, Number.parseInt(url.searchParams.get('n') ?? '25', 10) || 25));
  const page = Math.max(1, Number.parseInt(url.searchParams.get('page') ?? '1', 10) || 1);
  const all = await searchRepos(ctx, p, q);
  json(res, 200, {
    num_pages: Math.max(1, Math.ceil(all.length / n)),
    num_results: all.length,
    page_size: n,
    page,
    query: q,
    results: all.slice((page - 1) * n, page * n),
  });
}

/**
 * `docker search`: asks a registry's v1 search (`GET /v1/search?q=&n=`, Docker Hub's index API).
 * A term naming a host (`127.0.0.1:5000/redis`) asks that registry; any other term asks Docker
 * Hub's index — through the first configured registry mirror when there is one, since machines
 * without the internet reach Docker Hub only through their mirror (Berth Hub serves /v1/search).
 * Filters (is-official, is-automated, stars) are applied here, as Docker's daemon does.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import { invalidArgument, unavailable } from '../common/errors.js';
import { type RegistryConfig, registryBase } from './hosts.js';

export interface SearchResult {
  name: string;
  description: string;
  star_count: number;
  is_official: boolean;
  is_automated: boolean;
}

export interface SearchFilters {
  isOfficial?: boolean;
  isAutomated?: boolean;
  stars?: number;
}

const DOCKER_INDEX = 'https://index.docker.io';

/** Splits `host:port/term` into the registry to ask and the term. */
export function searchTarget(term: string, cfg: RegistryConfig): { base: string; query: string } {
  const slash = term.indexOf('/');
  const first = slash > 0 ? term.slice(0, slash) : '';
  if (first && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    const { host, base } = registryBase(first, cfg);
    if (host !== 'docker.io') return { base, query: term.slice(slash + 1) };
    return { base: cfg.mirrors[0]?.replace(/\/+$/, '') ?? DOCKER_INDEX, query: term.slice(slash + 1) };
  }
  return { base: cfg.mirrors[0]?.replace(/\/+$/, '') ?? DOCKER_INDEX, query: term };
}

function get(url: URL): Promise<{ status: number; body: string }> {
  const mod = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.get(url, { headers: { 'User-Agent': 'berth/0.1.0' }, timeout: 15_000 }, (res) => {
      const chunks: Buffer[] = [];
      let n = 0;
      res.on('data', (c: Buffer) => {
        n += c.length;
        if (n > 8 * 1024 * 1024) req.destroy(new Error('search answer too large'));
        else chunks.push(c);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => reject(unavailable(`error searching ${url.host}: ${err.message}`)));
  });
}

export async function searchRegistry(
  term: string,
  limit: number,
  filters: SearchFilters,
  cfg: RegistryConfig,
): Promise<SearchResult[]> {
  if (!term.trim()) throw invalidArgument('term is required');
  if (!Number.isInteger(limit) || limit < 1 || limit > 100)
    throw invalidArgument(`limit ${limit} is outside the range of [1, 100]`);
  const { base, query } = searchTarget(term, cfg);
  const url = new URL('/v1/search', base);
  url.searchParams.set('q', query);
  url.searchParams.set('n', String(limit));
  const r = await get(url);
  if (r.status !== 200) throw unavailable(`Unexpected status code ${r.status} searching ${url.host}`);
  let parsed: { results?: unknown };
  try {
    parsed = JSON.parse(r.body) as { results?: unknown };
  } catch {
    throw unavailable(`invalid search answer from ${url.host}`);
  }
  const results = Array.isArray(parsed.results) ? parsed.results : [];
  const out: SearchResult[] = [];
  for (const x of results as Record<string, unknown>[]) {
    if (typeof x !== 'object' || x === null || typeof x.name !== 'string') continue;
    const res: SearchResult = {
      name: x.name,
      description: typeof x.description === 'string' ? x.description : '',
      star_count: typeof x.star_count === 'number' ? x.star_count : 0,
      is_official: x.is_official === true,
      is_automated: x.is_automated === true,
    };
    if (filters.isOfficial !== undefined && res.is_official !== filters.isOfficial) continue;
    if (filters.isAutomated !== undefined && res.is_automated !== filters.isAutomated) continue;
    if (filters.stars !== undefined && res.star_count < filters.stars) continue;
    out.push(res);
  }
  return out.slice(0, limit);
}

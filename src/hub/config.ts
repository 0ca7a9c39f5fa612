/**
 * A hub's settings, kept beside its data in `<root>/config.json` so that `berth hub serve` and a
 * berthd-embedded hub on the same root behave alike:
 *   { "auth": true, "service": "berth-hub", "token-ttl": 300, "realm": "http://…/token",
 *     "proxy": "http://upstream:5000" }
 * Flags given to `berth hub serve` override the file.
 */
import * as path from 'node:path';
import { readJsonIfExists } from '../common/atomic.js';
import { invalidArgument } from '../common/errors.js';
import { HubAuth } from './auth.js';
import type { HubOptions } from './gate.js';
import { PullThrough } from './proxy.js';
import { FsHubStorage } from './storage.js';

export interface HubConfig {
  auth?: boolean;
  service?: string;
  tokenTtl?: number;
  realm?: string;
  proxy?: string;
}

export async function readHubConfig(root: string): Promise<HubConfig> {
  const raw = (await readJsonIfExists<Record<string, unknown>>(path.join(root, 'config.json'))) ?? {};
  const cfg: HubConfig = {};
  for (const [k, v] of Object.entries(raw)) {
    if (k === 'auth' && typeof v === 'boolean') cfg.auth = v;
    else if (k === 'service' && typeof v === 'string') cfg.service = v;
    else if (k === 'token-ttl' && typeof v === 'number' && v > 0) cfg.tokenTtl = v;
    else if (k === 'realm' && typeof v === 'string') cfg.realm = v;
    else if (k === 'proxy' && typeof v === 'string') cfg.proxy = v;
    else throw invalidArgument(`hub config ${path.join(root, 'config.json')}: invalid setting ${k}`);
  }
  return cfg;
}

/** Opens a hub root: storage initialised, auth keys made when auth is on. */
export async function openHub(
  root: string,
  overrides: HubConfig = {},
): Promise<{ storage: FsHubStorage; opts: HubOptions; config: HubConfig }> {
  const config = { ...(await readHubConfig(root)), ...overrides };
  const storage = new FsHubStorage(root);
  await storage.init();
  const opts: HubOptions = {};
  if (config.auth) {
    opts.auth = new HubAuth(root, config.service ?? 'berth-hub', config.tokenTtl ?? 300);
    await opts.auth.init();
  }
  if (config.realm) opts.realm = config.realm;
  if (config.proxy) {
    if (!/^https?:\/\/[^/]+/.test(config.proxy)) throw invalidArgument(`invalid proxy URL: ${config.proxy}`);
    opts.proxy = new PullThrough(config.proxy);
  }
  return { storage, opts, config };
}

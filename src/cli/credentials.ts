/**
 * Registry credentials in Docker's client config (`$DOCKER_CONFIG/config.json`, else
 * `~/.docker/config.json`): `auths.<server>.auth` is base64 of `user:password`. Other keys of the
 * file are kept as they are; the file is written atomically with mode 0600.
 */
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeFileAtomic } from '../common/atomic.js';
import { errnoCode } from '../common/errors.js';
import { parseReference } from '../common/reference.js';
import type { Credentials } from '../distribution/auth.js';
import { DOCKER_HUB_LOGIN } from '../distribution/hosts.js';

interface ConfigFile {
  auths?: Record<string, { auth?: string; identitytoken?: string; email?: string }>;
  [key: string]: unknown;
}

export function configDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.DOCKER_CONFIG || path.join(os.homedir(), '.docker');
}

export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(configDir(env), 'config.json');
}

async function readConfig(file: string): Promise<ConfigFile> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return {};
    throw err;
  }
  if (!text.trim()) return {};
  const parsed = JSON.parse(text) as unknown;
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new Error(`${file}: not a JSON object`);
  return parsed as ConfigFile;
}

/** The key Docker files a registry under: Docker Hub's v1 URL, else the bare host[:port]. */
export function serverKey(server: string | undefined): string {
  if (!server) return DOCKER_HUB_LOGIN;
  const host = server
    .replace(/^https?:\/\//, '')
    .replace(/\/.*$/, '')
    .toLowerCase();
  if (['docker.io', 'index.docker.io', 'registry-1.docker.io'].includes(host)) return DOCKER_HUB_LOGIN;
  return host;
}

/** The registry host an image reference goes to, as a config key. */
export function serverKeyForImage(image: string): string {
  try {
    return serverKey(parseReference(image).domain);
  } catch {
    return DOCKER_HUB_LOGIN;
  }
}

export async function loadCredentials(server: string, file = configPath()): Promise<Credentials | undefined> {
  const cfg = await readConfig(file);
  const key = serverKey(server);
  for (const [k, v] of Object.entries(cfg.auths ?? {})) {
    if (serverKey(k) !== key || !v) continue;
    const out: Credentials = { serveraddress: key };
    if (v.auth) {
      const plain = Buffer.from(v.auth, 'base64').toString('utf8');
      const i = plain.indexOf(':');
      if (i > 0) {
        out.username = plain.slice(0, i);
        out.password = plain.slice(i + 1);
      }
    }
    if (v.identitytoken) out.identitytoken = v.identitytoken;
    return out.username || out.identitytoken ? out : undefined;
  }
  return undefined;
}

async function writeConfig(file: string, cfg: ConfigFile): Promise<void> {
  await fsp.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  await writeFileAtomic(file, JSON.stringify(cfg, null, '\t') + '\n', 0o600);
}

export async function storeCredentials(
  server: string,
  username: string,
  password: string,
  file = configPath(),
): Promise<void> {
  const cfg = await readConfig(file);
  const key = serverKey(server);
  const auths = { ...(cfg.auths ?? {}) };
  for (const k of Object.keys(auths)) if (serverKey(k) === key) delete auths[k];
  auths[key] = { auth: Buffer.from(`${username}:${password}`).toString('base64') };
  await writeConfig(file, { ...cfg, auths });
}

/** Removes the server's entry; false when there was none. */
export async function eraseCredentials(server: string, file = configPath()): Promise<boolean> {
  const cfg = await readConfig(file);
  const key = serverKey(server);
  const auths = { ...(cfg.auths ?? {}) };
  let found = false;
  for (const k of Object.keys(auths))
    if (serverKey(k) === key) {
      delete auths[k];
      found = true;
    }
  if (found) await writeConfig(file, { ...cfg, auths });
  return found;
}

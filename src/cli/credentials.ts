/**
 * Registry credentials in Docker's client config (`$DOCKER_CONFIG/config.json`, else
 * `~/.docker/config.json`): `auths.<server>.auth` is base64 of `user:password`, unless a credential
 * helper is configured (`credHelpers.<server>`, else `credsStore`): then the secret goes to
 * `docker-credential-<name>` and the file keeps an empty `auths.<server>` entry, as the docker CLI
 * does. Other keys of the file are kept as they are; the file is written atomically with mode 0600.
 */
import { spawn } from 'node:child_process';
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
  credsStore?: string;
  credHelpers?: Record<string, string>;
  [key: string]: unknown;
}

/** The docker-credential-helpers protocol: `store` takes this JSON, `get` answers it. */
interface HelperCredentials {
  ServerURL: string;
  Username: string;
  Secret: string;
}

/** What helpers print when they hold nothing for a server (docker-credential-helpers' wording). */
const HELPER_NOT_FOUND = 'credentials not found in native keychain';
/** The Username under which a helper keeps an identity token instead of a password. */
const TOKEN_USERNAME = '<token>';

export class CredentialHelperError extends Error {}

/** The helper that keeps `key`'s credentials: its `credHelpers` entry, else `credsStore`, else none. */
function helperFor(cfg: ConfigFile, key: string): string | undefined {
  for (const [server, helper] of Object.entries(cfg.credHelpers ?? {}))
    if (serverKey(server) === key && helper) return helper;
  return cfg.credsStore || undefined;
}

/** Runs `docker-credential-<helper> <action>` with `input` on stdin; its stdout, or a clear error. */
function runHelper(helper: string, action: 'get' | 'store' | 'erase', input: string): Promise<string> {
  const program = `docker-credential-${helper}`;
  return new Promise((resolve, reject) => {
    const child = spawn(program, [action], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => out.push(b));
    child.on('error', (err) =>
      reject(
        new CredentialHelperError(
          errnoCode(err) === 'ENOENT'
            ? `error getting credentials - err: exec: "${program}": executable file not found in $PATH`
            : `${program} ${action}: ${err.message}`,
        ),
      ),
    );
    child.on('close', (code) => {
      const text = Buffer.concat(out).toString('utf8').trim();
      if (code === 0) resolve(text);
      else reject(new CredentialHelperError(text || `${program} ${action} exited with ${code}`));
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  });
}

async function helperGet(helper: string, key: string): Promise<Credentials | undefined> {
  let text: string;
  try {
    text = await runHelper(helper, 'get', key);
  } catch (err) {
    if (err instanceof CredentialHelperError && err.message.includes(HELPER_NOT_FOUND)) return undefined;
    throw err;
  }
  let got: Partial<HelperCredentials>;
  try {
    got = JSON.parse(text) as Partial<HelperCredentials>;
  } catch {
    throw new CredentialHelperError(`docker-credential-${helper} get: not JSON: ${text.slice(0, 200)}`);
  }
  if (!got.Secret) return undefined;
  if (got.Username === TOKEN_USERNAME) return { serveraddress: key, identitytoken: got.Secret };
  return { serveraddress: key, username: got.Username ?? '', password: got.Secret };
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
  const helper = helperFor(cfg, key);
  if (helper) return helperGet(helper, key);
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

/** Stores the credentials; the helper's name when a helper took them, else undefined (in the file). */
export async function storeCredentials(
  server: string,
  username: string,
  password: string,
  file = configPath(),
): Promise<string | undefined> {
  const cfg = await readConfig(file);
  const key = serverKey(server);
  const helper = helperFor(cfg, key);
  if (helper) {
    const body: HelperCredentials = { ServerURL: key, Username: username, Secret: password };
    await runHelper(helper, 'store', JSON.stringify(body));
  }
  const auths = { ...(cfg.auths ?? {}) };
  for (const k of Object.keys(auths)) if (serverKey(k) === key) delete auths[k];
  auths[key] = helper ? {} : { auth: Buffer.from(`${username}:${password}`).toString('base64') };
  await writeConfig(file, { ...cfg, auths });
  return helper;
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
  const helper = helperFor(cfg, key);
  if (helper)
    try {
      await runHelper(helper, 'erase', key);
      found = true;
    } catch (err) {
      if (!(err instanceof CredentialHelperError && err.message.includes(HELPER_NOT_FOUND))) throw err;
    }
  if (found) await writeConfig(file, { ...cfg, auths });
  return found;
}

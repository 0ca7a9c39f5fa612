/**
 * Registry credentials as the Engine API carries them: `X-Registry-Auth` is base64url JSON of
 * Docker's AuthConfig (`{}` when anonymous), and `POST /auth` takes the same object as its body.
 */
import { invalidArgument } from '../common/errors.js';

export interface Credentials {
  username?: string;
  password?: string;
  /** Docker's `auth` field: base64 of `user:password`. */
  auth?: string;
  email?: string;
  serveraddress?: string;
  identitytoken?: string;
  registrytoken?: string;
}

export function hasCredentials(c: Credentials | undefined): c is Credentials {
  return !!c && !!(c.username || c.registrytoken || c.identitytoken);
}

/** Normalises an AuthConfig: `auth` split into username and password. */
export function normaliseCredentials(raw: unknown): Credentials {
  if (raw === null || raw === undefined) return {};
  if (typeof raw !== 'object' || Array.isArray(raw))
    throw invalidArgument('invalid registry auth: not an object');
  const out: Credentials = {};
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    const key = k.toLowerCase();
    if (typeof v !== 'string') continue;
    if (
      ['username', 'password', 'auth', 'email', 'serveraddress', 'identitytoken', 'registrytoken'].includes(
        key,
      )
    )
      (out as Record<string, string>)[key] = v;
  }
  if (out.auth && !out.username) {
    const plain = Buffer.from(out.auth, 'base64').toString('utf8');
    const i = plain.indexOf(':');
    if (i > 0) {
      out.username = plain.slice(0, i);
      out.password = plain.slice(i + 1);
    }
  }
  return out;
}

/** Decodes `X-Registry-Auth` (base64 or base64url JSON); absent or `{}` is anonymous. */
export function decodeRegistryAuth(header: string | string[] | undefined): Credentials {
  const v = Array.isArray(header) ? header[0] : header;
  if (!v) return {};
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(v.replace(/-/g, '+').replace(/_/g, '/'), 'base64').toString('utf8'));
  } catch {
    throw invalidArgument('invalid X-Registry-Auth header: not base64 JSON');
  }
  return normaliseCredentials(json);
}

/** What the CLI sends: base64url JSON, `e30=` (`{}`) when there is nothing. */
export function encodeRegistryAuth(c: Credentials | undefined): string {
  const body: Credentials = {};
  if (c?.username) body.username = c.username;
  if (c?.password) body.password = c.password;
  if (c?.serveraddress) body.serveraddress = c.serveraddress;
  if (c?.identitytoken) body.identitytoken = c.identitytoken;
  if (c?.registrytoken) body.registrytoken = c.registrytoken;
  return Buffer.from(JSON.stringify(body))
    .toString('base64url')
    .padEnd(Math.ceil(Buffer.byteLength(JSON.stringify(body)) / 3) * 4, '=');
}

import { createHash } from 'node:crypto';
import { invalidArgument } from './errors.js';

/** A content digest such as `sha256:<64 hex>`. Only sha256 is accepted for storage. */
export type Digest = `sha256:${string}`;

const SHA256_RE = /^sha256:[a-f0-9]{64}$/;

export function isDigest(s: string): s is Digest {
  return SHA256_RE.test(s);
}

export function parseDigest(s: string): Digest {
  if (!isDigest(s)) {
    if (/^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/.test(s) && !s.startsWith('sha256:')) {
      throw invalidArgument(`unsupported digest algorithm: ${s}`);
    }
    throw invalidArgument(`invalid digest: ${JSON.stringify(s)}`);
  }
  return s;
}

export function sha256Hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

export function sha256Digest(data: Buffer | string): Digest {
  return `sha256:${sha256Hex(data)}`;
}

export function digestHex(d: Digest): string {
  return d.slice(7);
}

export function shortId(d: string, len = 12): string {
  const hex = d.startsWith('sha256:') ? d.slice(7) : d;
  return hex.slice(0, len);
}

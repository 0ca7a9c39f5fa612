/**
 * Docker image references, normalized like Docker: `redis` is docker.io/library/redis:latest.
 * Grammar from the distribution reference spec: [domain/]path[:tag][@digest].
 */
import { type Digest, isDigest } from './digest.js';
import { invalidArgument } from './errors.js';

export interface ImageReference {
  domain: string;
  path: string;
  tag?: string;
  digest?: Digest;
}

export const DEFAULT_DOMAIN = 'docker.io';
const LEGACY_DOMAIN = 'index.docker.io';
const NAME_MAX = 255;

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DOMAIN_PART = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
const HEX64 = /^[a-f0-9]{64}$/;

function bad(detail?: string): Error {
  return invalidArgument(detail ? `invalid reference format: ${detail}` : 'invalid reference format');
}

function isDomain(s: string): boolean {
  if (s.startsWith('[')) return /^\[[0-9a-fA-F:.]+\](?::\d+)?$/.test(s);
  const [host, port, ...rest] = s.split(':');
  if (rest.length) return false;
  if (port !== undefined && !/^\d+$/.test(port)) return false;
  return host.split('.').every((p) => DOMAIN_PART.test(p));
}

/** Parses and normalizes a reference; throws InvalidArgument in Docker's words. */
export function parseReference(input: string): ImageReference {
  const s = input;
  if (s === '') throw bad();
  let rest = s;
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    const d = rest.slice(at + 1);
    if (!isDigest(d)) throw bad();
    digest = d;
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const slash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > slash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw bad();
  }
  if (rest === '') throw bad();
  if (HEX64.test(rest) && !tag && !digest)
    throw bad(`repository name (library/${rest}) cannot be a 64-byte hexadecimal strings`);
  let domain = DEFAULT_DOMAIN;
  let path = rest;
  const firstSlash = rest.indexOf('/');
  if (firstSlash >= 0) {
    const first = rest.slice(0, firstSlash);
    if (first.includes('.') || first.includes(':') || first === 'localhost') {
      if (!isDomain(first)) throw bad();
      domain = first === LEGACY_DOMAIN ? DEFAULT_DOMAIN : first;
      path = rest.slice(firstSlash + 1);
    }
  }
  if (domain === DEFAULT_DOMAIN && !path.includes('/')) path = `library/${path}`;
  const components = path.split('/');
  for (const c of components) {
    if (!COMPONENT.test(c)) {
      if (c.toLowerCase() !== c && COMPONENT.test(c.toLowerCase()))
        throw bad('repository name must be lowercase');
      throw bad();
    }
  }
  const nameLength = (domain === DEFAULT_DOMAIN ? 0 : domain.length + 1) + path.length;
  if (nameLength > NAME_MAX) throw bad(`repository name must not be more than ${NAME_MAX} characters`);
  const ref: ImageReference = { domain, path };
  if (tag) ref.tag = tag;
  if (digest) ref.digest = digest;
  return ref;
}

/** docker.io/library/redis */
export function fullName(ref: ImageReference): string {
  return `${ref.domain}/${ref.path}`;
}

/** redis, user/app, localhost:5000/app */
export function familiarName(ref: ImageReference): string {
  if (ref.domain !== DEFAULT_DOMAIN) return fullName(ref);
  return ref.path.startsWith('library/') && ref.path.split('/').length === 2 ? ref.path.slice(8) : ref.path;
}

function suffix(ref: ImageReference): string {
  return (ref.tag ? `:${ref.tag}` : '') + (ref.digest ? `@${ref.digest}` : '');
}

/** docker.io/library/redis:latest */
export function refString(ref: ImageReference): string {
  return fullName(ref) + suffix(ref);
}

/** redis:latest */
export function familiarString(ref: ImageReference): string {
  return familiarName(ref) + suffix(ref);
}

export function withDefaultTag(ref: ImageReference): ImageReference {
  return ref.tag || ref.digest ? ref : { ...ref, tag: 'latest' };
}

/** A full or short image id (hex, optionally with `sha256:`). */
export function looksLikeImageId(s: string): boolean {
  return /^(sha256:)?[a-f0-9]{1,64}$/.test(s);
}

/**
 * Resolving a path inside a container's root file system the way the container sees it: symlinks
 * are followed relative to the root (an absolute link restarts at the root, `..` never climbs above
 * it), so the result always stays inside `root`.
 */
import { lstatSync, readlinkSync } from 'node:fs';
import * as path from 'node:path';
import { invalidArgument } from './errors.js';

const MAX_LINKS = 255;

/**
 * The walk shared by a real root and an in-memory tree: `p` resolved component by component,
 * `linkAt(rel)` giving the target of a symlink at `rel` (relative to the root) or undefined.
 * Returns the resolved path relative to the root ('' for the root itself).
 */
export function resolveWithin(
  p: string,
  followLast: boolean,
  linkAt: (rel: string) => string | undefined,
): string {
  const pending = p.split('/').filter((c) => c !== '' && c !== '.');
  const parts: string[] = [];
  let links = 0;
  while (pending.length) {
    const c = pending.shift()!;
    if (c === '..') {
      parts.pop();
      continue;
    }
    const target = pending.length > 0 || followLast ? linkAt([...parts, c].join('/')) : undefined;
    if (target !== undefined) {
      if (++links > MAX_LINKS) throw invalidArgument(`too many levels of symbolic links: ${p}`);
      if (target.startsWith('/')) parts.length = 0;
      pending.unshift(...target.split('/').filter((x) => x !== '' && x !== '.'));
      continue;
    }
    parts.push(c);
  }
  return parts.join('/');
}

/** Returns the host path for `p` under `root`, following symlinks except (optionally) the last. */
export function resolveInRoot(root: string, p: string, followLast = true): string {
  const rel = resolveWithin(p, followLast, (r) => {
    const candidate = path.join(root, r);
    try {
      return lstatSync(candidate).isSymbolicLink() ? readlinkSync(candidate) : undefined;
    } catch {
      return undefined;
    }
  });
  return path.join(root, rel);
}

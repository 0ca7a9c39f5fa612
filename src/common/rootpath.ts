/**
 * Resolving a path inside a container's root file system the way the container sees it: symlinks
 * are followed relative to the root (an absolute link restarts at the root, `..` never climbs above
 * it), so the result always stays inside `root`.
 */
import { lstatSync, readlinkSync } from 'node:fs';
import * as path from 'node:path';
import { invalidArgument } from './errors.js';

const MAX_LINKS = 255;

/** Returns the host path for `p` under `root`, following symlinks except (optionally) the last. */
export function resolveInRoot(root: string, p: string, followLast = true): string {
  const pending = p.split('/').filter((c) => c !== '' && c !== '.');
  const parts: string[] = [];
  let links = 0;
  while (pending.length) {
    const c = pending.shift()!;
    if (c === '..') {
      parts.pop();
      continue;
    }
    const candidate = path.join(root, ...parts, c);
    let isLink = false;
    try {
      isLink = lstatSync(candidate).isSymbolicLink();
    } catch {
      isLink = false;
    }
    if (isLink && (pending.length > 0 || followLast)) {
      if (++links > MAX_LINKS) throw invalidArgument(`too many levels of symbolic links: ${p}`);
      const target = readlinkSync(candidate);
      if (target.startsWith('/')) parts.length = 0;
      pending.unshift(...target.split('/').filter((x) => x !== '' && x !== '.'));
      continue;
    }
    parts.push(c);
  }
  return path.join(root, ...parts);
}

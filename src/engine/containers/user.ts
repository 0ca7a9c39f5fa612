/**
 * Resolves Docker's `user[:group]` against the container's own /etc/passwd and /etc/group.
 */
import { readFileSync } from 'node:fs';
import { invalidArgument } from '../../common/errors.js';
import { resolveInRoot } from '../../common/rootpath.js';

function readTable(rootfs: string, file: string): string[][] {
  try {
    // resolved the way the container sees it: a symlinked /etc/passwd never reads a host file
    return readFileSync(resolveInRoot(rootfs, `/etc/${file}`), 'utf8')
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => l.split(':'));
  } catch {
    return [];
  }
}

export interface ResolvedUser {
  uid: number;
  gid: number;
  additionalGids: number[];
  home: string;
}

export function resolveUser(rootfs: string, spec: string, groupAdd: string[] = []): ResolvedUser {
  const [userPart, groupPart] = spec ? spec.split(':', 2) : ['', undefined];
  const passwd = readTable(rootfs, 'passwd');
  const groups = readTable(rootfs, 'group');
  let uid = 0;
  let gid = 0;
  let home = '/';
  let name = 'root';
  if (userPart) {
    const entry = /^\d+$/.test(userPart)
      ? passwd.find((p) => p[2] === userPart)
      : passwd.find((p) => p[0] === userPart);
    if (entry) {
      name = entry[0];
      uid = Number(entry[2]);
      gid = Number(entry[3]);
      home = entry[5] || '/';
    } else if (/^\d+$/.test(userPart)) {
      uid = Number(userPart);
      gid = uid === 0 ? 0 : uid;
      name = '';
    } else throw invalidArgument(`unable to find user ${userPart}: no matching entries in passwd file`);
  } else {
    const root = passwd.find((p) => p[2] === '0');
    if (root) home = root[5] || '/root';
  }
  const groupId = (g: string): number => {
    if (/^\d+$/.test(g)) return Number(g);
    const e = groups.find((x) => x[0] === g);
    if (!e) throw invalidArgument(`unable to find group ${g}: no matching entries in group file`);
    return Number(e[2]);
  };
  if (groupPart) gid = groupId(groupPart);
  const additional = new Set<number>();
  if (name)
    for (const g of groups)
      if ((g[3] ?? '').split(',').includes(name) && Number(g[2]) !== gid) additional.add(Number(g[2]));
  for (const g of groupAdd) additional.add(groupId(g));
  return { uid, gid, additionalGids: [...additional], home };
}

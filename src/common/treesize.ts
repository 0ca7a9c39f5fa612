/** How much a directory tree holds, as `du` counts it. */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';

/** Bytes of the regular files and symlinks under dir (hard links counted once), like du. */
export async function treeSize(dir: string): Promise<number> {
  const seen = new Set<number>();
  let total = 0;
  const walk = async (d: string): Promise<void> => {
    let names: string[];
    try {
      names = await fsp.readdir(d);
    } catch {
      return;
    }
    for (const n of names) {
      const p = path.join(d, n);
      const st = await fsp.lstat(p).catch(() => undefined);
      if (!st) continue;
      if (st.isDirectory()) await walk(p);
      else if (!seen.has(st.ino)) {
        seen.add(st.ino);
        if (st.isFile() || st.isSymbolicLink()) total += st.size;
      }
    }
  };
  await walk(dir);
  return total;
}

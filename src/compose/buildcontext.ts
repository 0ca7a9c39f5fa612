/**
 * A build context as the docker CLI sends it: a tar of the directory with .dockerignore applied
 * (the Dockerfile and .dockerignore always included), entries sorted, owner 0:0, directories
 * with a trailing slash.
 */
import { createReadStream, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { createRequire } from 'node:module';
import tarStream from 'tar-stream';

// A CommonJS module whose typings declare an ES default export.
const dockerignore = createRequire(import.meta.url)(
  '@balena/dockerignore',
) as typeof import('@balena/dockerignore').default;

async function walk(root: string, rel: string, keep: (p: string) => boolean, out: string[]): Promise<void> {
  const entries = await fsp.readdir(path.join(root, rel), { withFileTypes: true });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    const p = rel ? `${rel}/${e.name}` : e.name;
    const included = keep(p);
    // An ignored directory may still hold re-included (`!`) entries, so it is always walked.
    if (included) out.push(p);
    if (e.isDirectory()) await walk(root, p, keep, out);
  }
}

export async function packContext(dir: string, dockerfile = 'Dockerfile'): Promise<Readable> {
  let rules: string[] = [];
  try {
    rules = (await fsp.readFile(path.join(dir, '.dockerignore'), 'utf8')).split(/\r?\n/);
  } catch {
    // no .dockerignore
  }
  const ig = dockerignore().add(rules.map((l) => l.trim()).filter((l) => l && !l.startsWith('#')));
  const always = new Set([dockerfile.replace(/^\.\//, ''), '.dockerignore']);
  const files: string[] = [];
  await walk(dir, '', (p) => always.has(p) || !ig.ignores(p), files);
  const tar = tarStream.pack();
  void (async () => {
    try {
      for (const rel of files) {
        const full = path.join(dir, rel);
        const st = await fsp.lstat(full);
        const common = { uid: 0, gid: 0, uname: '', gname: '', mode: st.mode & 0o7777, mtime: st.mtime };
        if (st.isDirectory()) tar.entry({ ...common, name: `${rel}/`, type: 'directory' });
        else if (st.isSymbolicLink())
          tar.entry({ ...common, name: rel, type: 'symlink', linkname: await fsp.readlink(full) });
        else if (st.isFile()) {
          const entry = tar.entry({ ...common, name: rel, type: 'file', size: st.size });
          await new Promise<void>((resolve, reject) => {
            createReadStream(full).on('error', reject).pipe(entry);
            entry.on('finish', resolve).on('error', reject);
          });
        }
      }
      tar.finalize();
    } catch (err) {
      tar.destroy(err as Error);
    }
  })();
  return tar as unknown as Readable;
}

/**
 * `berth hub seed --with debian`: `library/debian:bookworm-slim` made from Debian's own packages
 * with `debootstrap --variant=minbase`, slimmed as Docker's slim images are (no docs, man pages,
 * apt lists or caches), in one reproducible layer: entries sorted by name, every mtime the
 * archive's Release date, numeric owners, no atime/ctime, gzip without a timestamp.
 *
 * debootstrap takes minutes, so the finished layer is cached under /var/cache/berth keyed by
 * the content it came from: the suite, the variant and the SHA-256 of the mirror's
 * main/binary-<arch>/Packages.xz in InRelease (the package list). A second seed with an unchanged
 * archive reads the cache and takes seconds; with no network it uses the newest cached build.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, promises as fsp, readdirSync, readFileSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { writeFileAtomic, writeJsonAtomic, readJsonIfExists } from '../common/atomic.js';
import { type Digest, sha256Digest } from '../common/digest.js';
import { failedPrecondition, unavailable } from '../common/errors.js';
import type { SeedImage } from './seed.js';

const run = promisify(execFile);
export const DEFAULT_CACHE = '/var/cache/berth';
const VARIANT = 'minbase';
const PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface DebianOptions {
  suite?: string;
  mirror?: string;
  cacheDir?: string;
  arch?: string;
  /** Progress lines (debootstrap is slow). */
  log?: (line: string) => void;
}

interface CacheEntry {
  key: string;
  suite: string;
  mirror: string;
  released: string;
  diffId: Digest;
  digest: Digest;
  size: number;
}

/** The Debian mirror this machine's apt uses for `suite` (deb822 .sources or one-line lists). */
export function aptMirror(suite: string): string {
  const files = ['/etc/apt/sources.list'];
  try {
    for (const f of readdirSync('/etc/apt/sources.list.d').sort())
      files.push(path.join('/etc/apt/sources.list.d', f));
  } catch {
    /* no directory */
  }
  for (const f of files) {
    let text: string;
    try {
      text = readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    if (f.endsWith('.sources')) {
      for (const stanza of text.split(/\n\s*\n/)) {
        const uri = /^URIs:\s*(\S+)/im.exec(stanza)?.[1];
        const suites = /^Suites:\s*(.+)$/im.exec(stanza)?.[1].split(/\s+/) ?? [];
        if (uri && suites.includes(suite) && !/security/.test(uri)) return uri.replace(/\/+$/, '');
      }
    } else {
      for (const line of text.split('\n')) {
        const m = /^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)/.exec(line);
        if (m && m[2] === suite) return m[1].replace(/\/+$/, '');
      }
    }
  }
  return 'http://deb.debian.org/debian';
}

function fetchText(url: string): Promise<string> {
  const mod = url.startsWith('https:') ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.get(url, { timeout: 20_000 }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        reject(unavailable(`${url}: HTTP ${res.statusCode}`));
        return;
      }
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

/** The archive's state: its Release date and the hash of the package list debootstrap will use. */
async function archiveState(
  mirror: string,
  suite: string,
  arch: string,
): Promise<{ key: string; released: Date }> {
  const text = await fetchText(`${mirror}/dists/${suite}/InRelease`);
  const date = /^Date:\s*(.+)$/m.exec(text)?.[1];
  const sha = text.split(/^SHA256:$/m)[1] ?? '';
  const packages = new RegExp(`^\\s*([0-9a-f]{64})\\s+\\d+\\s+main/binary-${arch}/Packages\\.xz$`, 'm').exec(
    sha,
  )?.[1];
  if (!date || !packages)
    throw unavailable(`${mirror}/dists/${suite}/InRelease: no Date or Packages.xz hash`);
  const key = createHash('sha256').update(`v1|${suite}|${VARIANT}|${arch}|slim|${packages}`).digest('hex');
  return { key, released: new Date(date) };
}

/** Slims a debootstrapped tree as Docker's -slim images: no docs but copyrights, no caches. */
async function slim(root: string): Promise<void> {
  const rmChildren = async (dir: string, keep: (name: string) => boolean = () => false) => {
    let names: string[];
    try {
      names = await fsp.readdir(path.join(root, dir));
    } catch {
      return;
    }
    for (const n of names)
      if (!keep(n)) await fsp.rm(path.join(root, dir, n), { recursive: true, force: true });
  };
  for (const d of [
    'var/cache/apt',
    'var/lib/apt/lists',
    'usr/share/man',
    'usr/share/info',
    'usr/share/groff',
    'usr/share/linda',
    'usr/share/lintian',
    'var/cache/man',
    'dev',
    'run',
    'tmp',
  ])
    await rmChildren(d);
  await rmChildren('var/log', () => false);
  await rmChildren('usr/share/locale', (n) => n === 'locale.alias');
  // Keep each package's copyright; drop the rest of its docs.
  for (const pkg of await fsp.readdir(path.join(root, 'usr/share/doc')).catch(() => [] as string[]))
    await rmChildren(path.join('usr/share/doc', pkg), (n) => n === 'copyright');
  for (const f of ['var/cache/ldconfig/aux-cache', 'etc/hostname', 'etc/resolv.conf'])
    await fsp.rm(path.join(root, f), { force: true });
  await fsp.writeFile(path.join(root, 'etc/machine-id'), '');
  await fsp.mkdir(path.join(root, 'var/lib/apt/lists/partial'), { recursive: true });
  await fsp.mkdir(path.join(root, 'var/cache/apt/archives/partial'), { recursive: true });
  await fsp.chmod(path.join(root, 'tmp'), 0o1777);
  await fsp.writeFile(
    path.join(root, 'etc/dpkg/dpkg.cfg.d/docker'),
    [
      '# Like Debian slim images: no documentation from packages installed later.',
      'path-exclude /usr/share/doc/*',
      'path-include /usr/share/doc/*/copyright',
      'path-exclude /usr/share/man/*',
      'path-exclude /usr/share/groff/*',
      'path-exclude /usr/share/info/*',
      'path-exclude /usr/share/lintian/*',
      'path-exclude /usr/share/linda/*',
      'path-exclude /usr/share/locale/*',
      'path-include /usr/share/locale/locale.alias',
      '',
    ].join('\n'),
  );
  await fsp.writeFile(
    path.join(root, 'etc/apt/apt.conf.d/docker-clean'),
    'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\nAPT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\nBinary::apt::APT::Keep-Downloaded-Packages "false";\n',
  );
}

/** Builds (or reads from the cache) the debian seed image. */
export async function debianSeed(o: DebianOptions = {}): Promise<SeedImage> {
  const suite = o.suite ?? 'bookworm';
  const arch = o.arch ?? 'amd64';
  const mirror = (o.mirror ?? aptMirror(suite)).replace(/\/+$/, '');
  const cacheDir = o.cacheDir ?? DEFAULT_CACHE;
  const log = o.log ?? (() => undefined);
  await fsp.mkdir(cacheDir, { recursive: true });
  let state: { key: string; released: Date } | undefined;
  try {
    state = await archiveState(mirror, suite, arch);
  } catch (err) {
    log(
      `cannot read ${mirror}'s ${suite} release (${(err as Error).message}); using the newest cached build`,
    );
  }
  let entry: CacheEntry | undefined;
  if (state)
    entry = await readJsonIfExists<CacheEntry>(path.join(cacheDir, `debian-${suite}-${state.key}.json`));
  else {
    const candidates: { e: CacheEntry; mtime: number }[] = [];
    for (const f of await fsp.readdir(cacheDir))
      if (f.startsWith(`debian-${suite}-`) && f.endsWith('.json')) {
        const e = await readJsonIfExists<CacheEntry>(path.join(cacheDir, f));
        if (e) candidates.push({ e, mtime: (await fsp.stat(path.join(cacheDir, f))).mtimeMs });
      }
    entry = candidates.sort((a, b) => b.mtime - a.mtime)[0]?.e;
    if (!entry) throw unavailable(`no network to ${mirror} and no cached ${suite} build in ${cacheDir}`);
  }
  const layerFile = (key: string) => path.join(cacheDir, `debian-${suite}-${key}.tar.gz`);
  if (entry && existsSync(layerFile(entry.key))) log(`using cached ${suite} layer ${entry.digest}`);
  else {
    if (!state) throw unavailable('no archive state');
    entry = await build(suite, arch, mirror, state, cacheDir, layerFile(state.key), log);
  }
  const layer = await fsp.readFile(layerFile(entry.key));
  if (sha256Digest(layer) !== entry.digest) {
    await fsp.rm(layerFile(entry.key), { force: true });
    throw failedPrecondition(`cached layer ${layerFile(entry.key)} is corrupt; removed it, seed again`);
  }
  const created = entry.released;
  const config = Buffer.from(
    JSON.stringify({
      architecture: arch,
      os: 'linux',
      created,
      config: { Env: [PATH_ENV], Cmd: ['bash'] },
      rootfs: { type: 'layers', diff_ids: [entry.diffId] },
      history: [
        {
          created,
          created_by: `berth hub seed: debootstrap --variant=${VARIANT} --arch=${arch} ${suite} ${entry.mirror}, slimmed`,
        },
        { created, created_by: 'CMD ["bash"]', empty_layer: true },
      ],
    }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: {
        mediaType: 'application/vnd.oci.image.config.v1+json',
        digest: sha256Digest(config),
        size: config.length,
      },
      layers: [
        {
          mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
          digest: entry.digest,
          size: layer.length,
        },
      ],
    }),
  );
  return {
    repo: 'library/debian',
    tag: `${suite}-slim`,
    blobs: [
      { digest: sha256Digest(config), data: config },
      { digest: entry.digest, data: layer },
    ],
    manifests: [],
    top: { body: manifest, mediaType: 'application/vnd.oci.image.manifest.v1+json' },
  };
}

async function build(
  suite: string,
  arch: string,
  mirror: string,
  state: { key: string; released: Date },
  cacheDir: string,
  layerFile: string,
  log: (line: string) => void,
): Promise<CacheEntry> {
  if (!existsSync('/usr/sbin/debootstrap'))
    throw failedPrecondition('debootstrap is not installed (apt-get install debootstrap)');
  const work = await fsp.mkdtemp(path.join(cacheDir, `.build-${suite}-`));
  const root = path.join(work, 'rootfs');
  const epoch = Math.floor(state.released.getTime() / 1000);
  try {
    log(`debootstrap --variant=${VARIANT} ${suite} from ${mirror} (takes a few minutes)`);
    await run('debootstrap', [`--variant=${VARIANT}`, `--arch=${arch}`, suite, root, mirror], {
      env: { ...process.env, SOURCE_DATE_EPOCH: String(epoch), LANG: 'C.UTF-8' },
      maxBuffer: 64 * 1024 * 1024,
    });
    await slim(root);
    const top = (await fsp.readdir(root)).sort();
    const tarFile = path.join(work, 'layer.tar');
    await run(
      'tar',
      [
        '-C',
        root,
        '--sort=name',
        `--mtime=@${epoch}`,
        '--numeric-owner',
        '--format=posix',
        '--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime',
        '--xattrs',
        '-cf',
        tarFile,
        '--',
        ...top,
      ],
      { maxBuffer: 64 * 1024 * 1024 },
    );
    const tarData = await fsp.readFile(tarFile);
    const diffId = sha256Digest(tarData);
    const gz = gzipSync(tarData, { level: 6 });
    const entry: CacheEntry = {
      key: state.key,
      suite,
      mirror,
      released: state.released.toISOString().replace(/\.\d{3}Z$/, 'Z'),
      diffId,
      digest: sha256Digest(gz),
      size: gz.length,
    };
    await writeFileAtomic(layerFile, gz);
    await writeJsonAtomic(path.join(cacheDir, `debian-${suite}-${state.key}.json`), entry);
    log(`built ${suite} layer ${entry.digest} (${gz.length} bytes, ${tarData.length} uncompressed)`);
    return entry;
  } finally {
    await fsp.rm(work, { recursive: true, force: true });
  }
}

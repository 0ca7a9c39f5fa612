/**
 * `berth hub seed`: pushes the project's own images to a registry — `library/hello-world` (the
 * generated image) and `library/busybox` (made from the host's static busybox).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import tar from 'tar-stream';
import { type Digest, sha256Digest } from '../common/digest.js';
import { RegistryClient } from '../distribution/registry.js';
import { buildHelloWorld, singleLayerManifest } from '../hello/image.js';

export interface SeedImage {
  repo: string;
  tag: string;
  blobs: { digest: Digest; data: Buffer }[];
  manifests: { digest: Digest; body: Buffer; mediaType: string }[];
  /** What the tag points at (an index or a manifest). */
  top: { body: Buffer; mediaType: string };
}

export function helloWorldSeed(): SeedImage {
  const img = buildHelloWorld();
  return {
    repo: 'library/hello-world',
    tag: 'latest',
    blobs: img.manifests.flatMap((m) => [
      { digest: m.configDigest, data: m.config },
      { digest: m.layerDigest, data: m.layer },
    ]),
    manifests: img.manifests.map((m) => ({
      digest: m.manifestDigest,
      body: m.manifest,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
    })),
    top: { body: img.index, mediaType: 'application/vnd.oci.image.index.v1+json' },
  };
}

async function tarOf(
  entries: {
    name: string;
    type: 'file' | 'symlink' | 'directory';
    data?: Buffer;
    linkname?: string;
    mode: number;
  }[],
): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => chunks.push(c as Buffer));
  const done = new Promise<Buffer>((resolve, reject) => {
    pack.on('end', () => resolve(Buffer.concat(chunks)));
    pack.on('error', reject);
  });
  for (const e of entries) {
    const h = {
      name: e.name,
      type: e.type,
      mode: e.mode,
      mtime: new Date(0),
      uid: 0,
      gid: 0,
      linkname: e.linkname,
    };
    if (e.type === 'file') pack.entry(h, e.data!);
    else pack.entry(h);
  }
  pack.finalize();
  return done;
}

/** A busybox image from the host's static binary (Debian's busybox-static), one applet link each. */
export async function busyboxSeed(binary = '/bin/busybox'): Promise<SeedImage> {
  const bin = readFileSync(binary);
  const applets = execFileSync(binary, ['--list'])
    .toString()
    .split('\n')
    .filter((a) => /^[\w.[-]+$/.test(a) && a !== 'busybox')
    .sort();
  const entries: Parameters<typeof tarOf>[0] = [
    { name: 'bin/', type: 'directory', mode: 0o755 },
    { name: 'bin/busybox', type: 'file', data: bin, mode: 0o755 },
    ...applets.map((a) => ({ name: `bin/${a}`, type: 'symlink' as const, linkname: 'busybox', mode: 0o777 })),
    { name: 'etc/', type: 'directory', mode: 0o755 },
    {
      name: 'etc/passwd',
      type: 'file',
      data: Buffer.from('root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n'),
      mode: 0o644,
    },
    { name: 'etc/group', type: 'file', data: Buffer.from('root:x:0:\nnogroup:x:65534:\n'), mode: 0o644 },
    { name: 'root/', type: 'directory', mode: 0o700 },
    { name: 'tmp/', type: 'directory', mode: 0o1777 },
  ];
  const layer = await tarOf(entries);
  const layerDigest = sha256Digest(layer);
  const version =
    /BusyBox v([\d.]+)/.exec(
      execFileSync(binary, ['--help'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString(),
    )?.[1] ?? 'unknown';
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      created: '2026-01-01T00:00:00Z',
      config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['sh'] },
      rootfs: { type: 'layers', diff_ids: [layerDigest] },
      history: [
        {
          created: '2026-01-01T00:00:00Z',
          created_by: `berth: BusyBox ${version} from the host's busybox-static`,
        },
      ],
    }),
  );
  const configDigest = sha256Digest(config);
  const manifest = singleLayerManifest(config, layer);
  return {
    repo: 'library/busybox',
    tag: 'latest',
    blobs: [
      { digest: configDigest, data: config },
      { digest: layerDigest, data: layer },
    ],
    manifests: [],
    top: { body: manifest, mediaType: 'application/vnd.oci.image.manifest.v1+json' },
  };
}

/** Pushes blobs, then manifests, then the tag. Returns the tag's digest. */
export async function pushSeed(registry: string, img: SeedImage): Promise<Digest> {
  const base = registry.includes('://') ? registry : `http://${registry}`;
  const client = new RegistryClient({ base, repo: img.repo });
  for (const b of img.blobs) if (!(await client.hasBlob(b.digest))) await client.putBlob(b.digest, b.data);
  for (const m of img.manifests) await client.putManifest(m.digest, m.body, m.mediaType);
  return client.putManifest(img.tag, img.top.body, img.top.mediaType);
}

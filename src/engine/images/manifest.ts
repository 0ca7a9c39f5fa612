/**
 * OCI and Docker schema2 image formats: media types, validation of untrusted JSON, platform choice.
 */
import { type Digest, isDigest } from '../../common/digest.js';
import { invalidArgument } from '../../common/errors.js';

export const MediaType = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  ociLayerNondist: 'application/vnd.oci.image.layer.nondistributable.v1.tar',
  ociLayerNondistGzip: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  dockerForeignLayerGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
} as const;

const layerTypes = new Set<string>([
  MediaType.ociLayer,
  MediaType.ociLayerGzip,
  MediaType.ociLayerZstd,
  MediaType.ociLayerNondist,
  MediaType.ociLayerNondistGzip,
  MediaType.dockerLayer,
  MediaType.dockerLayerGzip,
  MediaType.dockerForeignLayerGzip,
]);
const configTypes = new Set<string>([MediaType.ociConfig, MediaType.dockerConfig]);
export const manifestTypes = new Set<string>([MediaType.ociManifest, MediaType.dockerManifest]);
export const indexTypes = new Set<string>([MediaType.ociIndex, MediaType.dockerManifestList]);

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
  'os.version'?: string;
}

export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  platform?: Platform;
  annotations?: Record<string, string>;
  urls?: string[];
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

/** The container configuration part of an image config (Docker's and OCI's field names). */
export interface ContainerConfig {
  User?: string;
  ExposedPorts?: Record<string, object>;
  Env?: string[];
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  Volumes?: Record<string, object>;
  WorkingDir?: string;
  Labels?: Record<string, string>;
  StopSignal?: string;
  Healthcheck?: {
    Test?: string[];
    Interval?: number;
    Timeout?: number;
    StartPeriod?: number;
    StartInterval?: number;
    Retries?: number;
  };
  OnBuild?: string[] | null;
  Shell?: string[];
  ArgsEscaped?: boolean;
}

export interface HistoryEntry {
  created?: string;
  created_by?: string;
  author?: string;
  comment?: string;
  empty_layer?: boolean;
}

export interface ImageConfig {
  architecture: string;
  os: string;
  variant?: string;
  'os.version'?: string;
  created?: string;
  author?: string;
  config?: ContainerConfig;
  rootfs: { type: 'layers'; diff_ids: Digest[] };
  history?: HistoryEntry[];
  // Docker keeps these extra fields; carried through when present.
  container?: string;
  container_config?: ContainerConfig;
  docker_version?: string;
  comment?: string;
  parent?: string;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function parseJson(data: Buffer | string, what: string): unknown {
  try {
    return JSON.parse(data.toString());
  } catch (err) {
    throw invalidArgument(`invalid ${what}: ${(err as Error).message}`);
  }
}

export function parseDescriptor(v: unknown, where: string): Descriptor {
  if (!isObject(v)) throw invalidArgument(`${where}: descriptor must be an object`);
  const { mediaType, digest, size } = v;
  if (typeof mediaType !== 'string' || mediaType === '') throw invalidArgument(`${where}: missing mediaType`);
  if (typeof digest !== 'string' || !isDigest(digest))
    throw invalidArgument(`${where}: invalid digest ${JSON.stringify(digest)}`);
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0)
    throw invalidArgument(`${where}: invalid size`);
  const d: Descriptor = { mediaType, digest, size };
  if (v.platform !== undefined) {
    const p = v.platform;
    if (!isObject(p) || typeof p.architecture !== 'string' || typeof p.os !== 'string')
      throw invalidArgument(`${where}: invalid platform`);
    d.platform = { architecture: p.architecture, os: p.os };
    if (typeof p.variant === 'string') d.platform.variant = p.variant;
    if (typeof p['os.version'] === 'string') d.platform['os.version'] = p['os.version'];
  }
  if (isObject(v.annotations)) d.annotations = v.annotations as Record<string, string>;
  return d;
}

/** Tells index from manifest by mediaType, falling back to shape (OCI allows mediaType to be absent). */
export function manifestKind(v: unknown, declaredType?: string): 'index' | 'manifest' {
  const mt = (isObject(v) && typeof v.mediaType === 'string' ? v.mediaType : undefined) ?? declaredType;
  if (mt && indexTypes.has(mt)) return 'index';
  if (mt && manifestTypes.has(mt)) return 'manifest';
  if (mt === 'application/vnd.docker.distribution.manifest.v1+json' || mt?.includes('manifest.v1+prettyjws'))
    throw invalidArgument('unsupported manifest format: Docker schema1 manifests are no longer supported');
  if (isObject(v) && Array.isArray(v.manifests)) return 'index';
  if (isObject(v) && Array.isArray(v.layers)) return 'manifest';
  throw invalidArgument(`unsupported manifest media type ${JSON.stringify(mt ?? '')}`);
}

export function parseIndex(data: Buffer | string): ImageIndex {
  const v = parseJson(data, 'image index');
  if (!isObject(v) || v.schemaVersion !== 2 || !Array.isArray(v.manifests))
    throw invalidArgument('invalid image index: expected schemaVersion 2 with manifests');
  const manifests = v.manifests.map((m, i) => parseDescriptor(m, `manifests[${i}]`));
  return { schemaVersion: 2, mediaType: v.mediaType as string | undefined, manifests };
}

export function parseManifest(data: Buffer | string): ImageManifest {
  const v = parseJson(data, 'image manifest');
  if (!isObject(v) || v.schemaVersion !== 2 || !Array.isArray(v.layers))
    throw invalidArgument('invalid image manifest: expected schemaVersion 2 with layers');
  const config = parseDescriptor(v.config, 'config');
  if (!configTypes.has(config.mediaType))
    throw invalidArgument(`unsupported config media type ${JSON.stringify(config.mediaType)}`);
  const layers = v.layers.map((l, i) => parseDescriptor(l, `layers[${i}]`));
  for (const l of layers) {
    if (!layerTypes.has(l.mediaType))
      throw invalidArgument(`unsupported layer media type ${JSON.stringify(l.mediaType)}`);
  }
  return { schemaVersion: 2, mediaType: v.mediaType as string | undefined, config, layers };
}

export function parseImageConfig(data: Buffer | string): ImageConfig {
  const v = parseJson(data, 'image config');
  if (!isObject(v)) throw invalidArgument('invalid image config: not an object');
  const rootfs = v.rootfs;
  if (!isObject(rootfs) || rootfs.type !== 'layers' || !Array.isArray(rootfs.diff_ids))
    throw invalidArgument('invalid image config: rootfs must be of type layers with diff_ids');
  for (const d of rootfs.diff_ids) {
    if (typeof d !== 'string' || !isDigest(d))
      throw invalidArgument(`invalid image config: bad diff_id ${d}`);
  }
  if (typeof v.architecture !== 'string' || typeof v.os !== 'string')
    throw invalidArgument('invalid image config: architecture and os are required');
  if (v.config !== undefined && v.config !== null && !isObject(v.config))
    throw invalidArgument('invalid image config: config must be an object');
  if (v.history !== undefined && !Array.isArray(v.history))
    throw invalidArgument('invalid image config: history must be an array');
  return v as unknown as ImageConfig;
}

export function normalizeArch(arch: string): { architecture: string; variant?: string } {
  switch (arch) {
    case 'x86_64':
    case 'x86-64':
    case 'amd64':
      return { architecture: 'amd64' };
    case 'aarch64':
    case 'arm64':
      return { architecture: 'arm64', variant: 'v8' };
    case 'armhf':
      return { architecture: 'arm', variant: 'v7' };
    default:
      return { architecture: arch };
  }
}

export function platformMatch(candidate: Platform, want: Platform): boolean {
  if (candidate.os !== want.os) return false;
  const c = normalizeArch(candidate.architecture);
  const w = normalizeArch(want.architecture);
  if (c.architecture !== w.architecture) return false;
  const wantVariant = want.variant ?? w.variant;
  if (!wantVariant) return true;
  return (candidate.variant ?? c.variant) === wantVariant;
}

export function hostPlatform(): Platform {
  const arch = process.arch === 'x64' ? 'amd64' : process.arch === 'ia32' ? '386' : process.arch;
  const n = normalizeArch(arch);
  return { os: 'linux', architecture: n.architecture, ...(n.variant ? { variant: n.variant } : {}) };
}

export function platformString(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

/** Picks the manifest for `want` from an index; attestation manifests (unknown/unknown) are never chosen. */
export function selectManifest(index: ImageIndex, want: Platform): Descriptor | undefined {
  return index.manifests.find(
    (m) => m.platform && manifestTypes.has(m.mediaType) && platformMatch(m.platform, want),
  );
}

export function isLayerMediaType(mt: string): boolean {
  return layerTypes.has(mt);
}

/** Parses `--platform` values: linux/amd64, linux/arm64/v8, amd64. */
export function parsePlatformOption(s: string): Platform {
  const parts = s.trim().toLowerCase().split('/');
  if (parts.length > 3 || parts.some((p) => !/^[a-z0-9._-]+$/.test(p)))
    throw invalidArgument(`invalid platform "${s}": expected os/arch[/variant]`);
  if (parts.length === 1) {
    const n = normalizeArch(parts[0]);
    if (n.architecture === 'linux') throw invalidArgument(`invalid platform "${s}": missing architecture`);
    return { os: 'linux', architecture: n.architecture, ...(n.variant ? { variant: n.variant } : {}) };
  }
  const [os, arch, variant] = parts;
  if (os !== 'linux')
    throw invalidArgument(`operating system ${os} is not supported: Berth runs Linux images`);
  const n = normalizeArch(arch);
  const v = variant ?? n.variant;
  return { os, architecture: n.architecture, ...(v ? { variant: v } : {}) };
}

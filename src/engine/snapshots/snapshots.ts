/**
 * Snapshots: the overlayfs layer store.
 *
 * Lifecycle of a layer: apply (a layer tar, plain/gzip/zstd, unpacked into its own directory, keyed by
 * chain id) -> stack (lower dirs of an image, top first) -> mount (read-only lowers + writable upper)
 * -> unmount -> remove (when no image references the chain any more).
 *
 * A chain id names a layer together with everything below it, as in the OCI image spec:
 *   chainId(L0) = diffId(L0); chainId(Ln) = sha256(chainId(Ln-1) + " " + diffId(Ln)).
 * Layers are shared by chain id and never unpacked twice.
 */
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Digest } from '../../common/digest.js';

export interface LayerInfo {
  chainId: Digest;
  parent: Digest | null;
  diffId: Digest;
  /** Bytes of the unpacked files of this layer alone. */
  size: number;
}

export interface ApplyOptions {
  /** When known (from an image config), the uncompressed stream must hash to it. */
  expectedDiffId?: Digest;
  /** Called with bytes of (compressed) input consumed, for progress. */
  onProgress?: (bytes: number) => void;
}

export interface StageOptions {
  inputDigest?: Promise<Digest>;
}

/** A layer unpacked before its parent is known (its content does not depend on the parent). */
export interface StagedLayer {
  id: string;
  diffId: Digest;
  size: number;
}

export interface MountSpec {
  /** Lower directories, top-most first, as overlayfs wants them. */
  lowerDirs: string[];
  upperDir: string;
  workDir: string;
}

export interface Snapshotter {
  /** Prepares directories and removes what a crash left half-made. */
  init(): Promise<void>;
  has(chainId: Digest): boolean;
  get(chainId: Digest): LayerInfo | undefined;
  /**
   * Unpacks a layer tar (compression detected from magic bytes) on top of `parent`.
   * Throws InvalidArgument for malformed archives or unsafe entries; nothing is left behind on error.
   * If the resulting chain already exists, the input is still verified but not unpacked again.
   */
  apply(parent: Digest | null, layer: Readable, opts?: ApplyOptions): Promise<LayerInfo>;
  /**
   * Unpacks a layer whose place in a chain is not known yet (e.g. while an archive streams in).
   * `inputDigest`, when given, settles to the sha256 of `layer`'s bytes as the caller computes them
   * anyway (the content store does): an uncompressed layer then takes it as its diff id instead of
   * hashing the same bytes a second time; a rejection fails the staging.
   */
  stage(layer: Readable, opts?: StageOptions): Promise<StagedLayer>;
  /** Files a staged layer on top of `parent`; if that chain exists already the staged copy is dropped. */
  commitStaged(staged: StagedLayer, parent: Digest | null): Promise<LayerInfo>;
  discardStaged(staged: StagedLayer): Promise<void>;
  /** The chain's layer directories, top-most first. */
  lowerDirs(chainId: Digest): string[];
  /**
   * Creates an empty writable layer for `key` (a container id) over `parent` and returns its overlay spec.
   * Preparing an existing key again with the same parent returns its spec; with another parent, Conflict.
   */
  prepare(key: string, parent: Digest | null): Promise<MountSpec>;
  /** Mounts an overlay for a prepared key at `target` (created if missing). */
  mount(key: string, target: string): Promise<void>;
  /** Detaches the mount at `target`; a target that is not mounted is fine. */
  unmount(target: string): Promise<void>;
  /** Removes a prepared (writable) snapshot; an unknown key is fine. */
  removeActive(key: string): Promise<void>;
  /** Removes a committed layer; Conflict if another layer is stacked on it. */
  remove(chainId: Digest): Promise<void>;
  list(): LayerInfo[];
}

export function chainIdOf(parent: Digest | null, diffId: Digest): Digest {
  if (parent === null) return diffId;
  return `sha256:${createHash('sha256').update(`${parent} ${diffId}`).digest('hex')}`;
}

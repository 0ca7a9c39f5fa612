/**
 * Build: Dockerfile -> steps -> images, with a build cache.
 *
 * Lifecycle of a build: receive the context (streamed to a private directory) -> parse the Dockerfile
 * (errors before any output) -> plan the stages the target needs -> run each step: FROM resolves or
 * pulls, RUN runs a container through the containers room and commits its upper layer, COPY/ADD
 * write into a mounted snapshot, the rest change the config only -> every step is an image whose
 * parent is the previous step's -> tag -> remove the context.
 *
 * Cache: a step's key is its parent image id, its instruction as evaluated (and the build args a RUN
 * sees) and, for COPY/ADD, a checksum of the sources' content and metadata; the index (key -> image
 * id) is a file written atomically, so it survives restarts. `prune` forgets it and deletes the
 * intermediate images nobody else uses.
 */
import type { Digest } from '../../common/digest.js';

export interface BuildOptions {
  tags: string[];
  /** Path of the Dockerfile inside the context. */
  dockerfile: string;
  buildArgs: Record<string, string | null>;
  target?: string;
  noCache: boolean;
  pull: boolean;
  labels: Record<string, string>;
  quiet: boolean;
  /** RUN's network: default, host, none, or a network name. */
  networkMode?: string;
  platform?: string;
  /** Remove the RUN containers (true by default; failed ones too with forceRm, and always here). */
  rm: boolean;
  forceRm: boolean;
}

/** One message of Docker's build stream. */
export type BuildMessage =
  | { stream: string }
  | { status: string; id?: string; progressDetail?: unknown; progress?: string }
  | { aux: { ID: string } };

/** Pulls an image for FROM / COPY --from, streaming Docker's pull messages. */
export type PullFn = (ref: string, platform: string | undefined, onProgress: (m: Record<string, unknown>) => void) => Promise<Digest>;

export interface BuildResult {
  id: Digest;
}

export interface PruneResult {
  CachesDeleted: string[];
  SpaceReclaimed: number;
}

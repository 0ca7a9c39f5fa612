/**
 * Layer bytes arriving from outside (an archive, a registry) go to the content store and, when
 * they look like a layer, to the snapshotter at the same time: read once, unpacked while they stream.
 */
import { PassThrough, type Readable } from 'node:stream';
import { detectCompression, peekStream } from '../../common/decompress.js';
import type { Digest } from '../../common/digest.js';
import type { ContentStore } from '../content/content.js';
import type { Snapshotter, StagedLayer } from '../snapshots/snapshots.js';

const BRANCH_BUFFER = 1024 * 1024;

/** A tar (ustar magic at 257) or a compressed stream: worth unpacking as it arrives. */
function looksLikeLayer(head: Buffer): boolean {
  return (
    detectCompression(head) !== 'none' ||
    (head.length >= 263 && head.toString('latin1', 257, 262) === 'ustar')
  );
}

/**
 * Sends one archive entry to the content store and, when it looks like a layer, to the snapshotter
 * at the same time, so a layer is read once and unpacked while the archive streams.
 */
export async function ingestEntry(
  deps: { content: ContentStore; snapshots: Snapshotter },
  entry: Readable,
  expected: { digest?: Digest; size: number },
): Promise<{ digest: Digest; staged?: StagedLayer }> {
  const { head, stream: source } = await peekStream(entry, 512);
  if (!looksLikeLayer(head)) return { digest: (await deps.content.ingest(source, expected)).digest };
  // Room for a few network reads in each branch, so neither waits on the other's every disk write.
  const toContent = new PassThrough({ highWaterMark: BRANCH_BUFFER });
  const toSnapshot = new PassThrough({ highWaterMark: BRANCH_BUFFER });
  // Each branch reports its errors through its consumer, which may already have settled.
  for (const branch of [toContent, toSnapshot]) branch.on('error', () => undefined);
  source.pipe(toContent);
  source.pipe(toSnapshot);
  source.on('error', (e) => {
    toContent.destroy(e);
    toSnapshot.destroy(e);
  });
  const ingesting = deps.content.ingest(toContent, expected);
  const inputDigest = ingesting.then((r) => r.digest);
  inputDigest.catch(() => undefined); // reported through `ingesting`
  const staging = deps.snapshots.stage(toSnapshot, { inputDigest }).catch(() => {
    // Not a usable layer after all (or a bad one): keep the content side flowing; a real
    // layer is unpacked again from content later and reports its error then.
    toSnapshot.resume();
    return undefined;
  });
  const [ingested, staged] = await Promise.allSettled([ingesting, staging]);
  if (ingested.status === 'rejected') {
    if (staged.status === 'fulfilled' && staged.value) await deps.snapshots.discardStaged(staged.value);
    throw ingested.reason;
  }
  return { digest: ingested.value.digest, staged: staged.status === 'fulfilled' ? staged.value : undefined };
}

/**
 * Docker's stdio framing: raw bytes for TTY containers, else the 8-byte multiplexed header
 * [stream, 0, 0, 0, size BE32] + payload, one frame per write.
 */
import type { OutputStream } from '../engine/runtime/runtime.js';

export function frame(stream: OutputStream | 'stdin' | 'system', data: Buffer): Buffer {
  const out = Buffer.allocUnsafe(8 + data.length);
  writeFrameHeader(out, 0, stream, data.length);
  data.copy(out, 8);
  return out;
}

/** Writes the 8-byte header of a frame of `size` bytes at `pos`. */
export function writeFrameHeader(
  out: Buffer,
  pos: number,
  stream: OutputStream | 'stdin' | 'system',
  size: number,
): void {
  out[pos] = stream === 'stdin' ? 0 : stream === 'stdout' ? 1 : stream === 'stderr' ? 2 : 3;
  out[pos + 1] = out[pos + 2] = out[pos + 3] = 0;
  out.writeUInt32BE(size, pos + 4);
}

/** Docker's default detach sequence is ctrl-p, ctrl-q; `--detach-keys` may change it. */
export function parseDetachKeys(spec: string | null): number[] {
  const s = spec ?? 'ctrl-p,ctrl-q';
  if (s === '') return [];
  return s.split(',').map((k) => {
    const key = k.trim().toLowerCase();
    if (key.length === 1) return key.charCodeAt(0);
    const m = /^ctrl-([a-z@[\\\]^_])$/.exec(key);
    if (!m) throw new Error(`Invalid detach keys (${spec}) provided`);
    return m[1].charCodeAt(0) & 0x1f;
  });
}

/** Watches stdin for the detach sequence; returns what to forward and whether to detach. */
export class DetachWatcher {
  private matched = 0;
  constructor(private readonly keys: number[]) {}

  feed(data: Buffer): { forward: Buffer; detach: boolean } {
    if (this.keys.length === 0) return { forward: data, detach: false };
    const out: number[] = [];
    for (const b of data) {
      if (b === this.keys[this.matched]) {
        this.matched++;
        if (this.matched === this.keys.length) return { forward: Buffer.from(out), detach: true };
        continue;
      }
      // Not the sequence after all: the held-back bytes go through.
      for (let i = 0; i < this.matched; i++) out.push(this.keys[i]);
      this.matched = 0;
      if (b === this.keys[0]) this.matched = 1;
      else out.push(b);
    }
    return { forward: Buffer.from(out), detach: false };
  }
}

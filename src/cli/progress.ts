/**
 * Docker's rendering of JSON progress streams (pull, push): on a terminal, one line per layer id,
 * rewritten in place as its progress moves; elsewhere the status lines only, without bars.
 */
import type { JsonMessage } from '../client/client.js';

export class ProgressPrinter {
  private readonly lines = new Map<string, number>();

  constructor(
    private readonly out: NodeJS.WritableStream,
    private readonly tty = !!(out as NodeJS.WriteStream).isTTY,
  ) {}

  /** Prints one message; throws the stream's error message. */
  handle(m: JsonMessage): void {
    if (typeof m.error === 'string') throw new Error(m.error);
    if (m.aux !== undefined && m.status === undefined) return;
    const id = typeof m.id === 'string' ? m.id : '';
    const progress = typeof m.progress === 'string' ? m.progress : '';
    const hasProgress = m.progressDetail !== undefined;
    if (!this.tty && progress) return;
    let diff = 0;
    if (id && hasProgress) {
      let line = this.lines.get(id);
      if (line === undefined) {
        line = this.lines.size;
        this.lines.set(id, line);
        if (this.tty) this.out.write('\n');
      }
      diff = this.lines.size - line;
      if (this.tty) this.out.write(`\x1b[${diff}A`);
    } else this.lines.clear();
    let text = '';
    if (this.tty && hasProgress) text += '\x1b[2K\r';
    if (id) text += `${id}: `;
    if (typeof m.stream === 'string') text += m.stream;
    else text += String(m.status ?? '') + (this.tty && progress ? ` ${progress}` : '');
    if (this.tty && hasProgress) this.out.write(text + '\r');
    else this.out.write(typeof m.stream === 'string' ? text : text + '\n');
    if (id && hasProgress && this.tty) this.out.write(`\x1b[${diff}B`);
  }
}

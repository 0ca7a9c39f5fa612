/**
 * Docker's table output.
 */

/** Like Go's tabwriter with minwidth 10, padding 3: every column but the last is padded. */
export function formatTable(rows: string[][]): string {
  const widths: number[] = [];
  for (const r of rows)
    r.forEach((cell, i) => {
      if (i < r.length - 1) widths[i] = Math.max(widths[i] ?? 0, Math.max(10, [...cell].length + 3));
    });
  return rows
    .map((r) =>
      r
        .map((cell, i) => (i < r.length - 1 ? cell.padEnd(widths[i] + cell.length - [...cell].length) : cell))
        .join(''),
    )
    .map((l) => l + '\n')
    .join('');
}

export { humanDuration, humanSize } from '../common/units.js';

/** 12 hex digits of an id, without `sha256:`. */
export function truncateId(id: string): string {
  return (id.startsWith('sha256:') ? id.slice(7) : id).slice(0, 12);
}

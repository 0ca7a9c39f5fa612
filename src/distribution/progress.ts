/**
 * Docker's progress text for JSON messages (`progress` field), as jsonmessage.JSONProgress renders it.
 */
import { humanSize } from '../common/units.js';

/** `[=====>      ]  1.2MB/3.4MB`: 50 columns, current right-aligned to 8. */
export function progressBar(current: number, total: number): string {
  if (total <= 0) return `${humanSize(current).padStart(8)}`;
  const pct = Math.min(50, Math.floor((current / total) * 50));
  const box = `[${'='.repeat(pct)}>${' '.repeat(Math.max(0, 50 - pct))}] `;
  if (current > total) return `${box}${humanSize(current).padStart(8)}`;
  return `${box}${humanSize(current).padStart(8)}/${humanSize(total)}`;
}

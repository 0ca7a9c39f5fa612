import { parseGoDuration } from '../common/units.js';

/** Durations as compose writes them: Go's form ("1m30s", "500ms"), or a bare number of seconds. */
export function parseDuration(s: string): number | undefined {
  const t = s.trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Math.round(Number(t) * 1e9);
  return parseGoDuration(t);
}

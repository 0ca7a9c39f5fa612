import { humanDuration } from '../common/units.js';

/** Docker's "Up 5 minutes" wording for list Status fields. */
export function humanDurationSince(iso: string): string {
  return humanDuration(Date.now() - Date.parse(iso));
}

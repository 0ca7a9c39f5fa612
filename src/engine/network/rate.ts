/**
 * Per-container bandwidth (`--network-rate`): a token bucket on both ends of the container's veth,
 * the host end shaping what flows into the container and the container end what flows out.
 */
import { invalidArgument } from '../../common/errors.js';

const UNITS: Record<string, number> = {
  '': 1,
  bit: 1,
  kbit: 1e3,
  mbit: 1e6,
  gbit: 1e9,
  k: 1e3,
  m: 1e6,
  g: 1e9,
  bps: 8,
  kbps: 8e3,
  mbps: 8e6,
  gbps: 8e9,
};

/** `10mbit`, `512kbit`, `1gbit`, `2mbps` (bytes) -> bits per second; 0 or '' means no limit. */
export function parseRate(v: string | number | undefined | null): number {
  if (v === undefined || v === null || v === '' || v === 0 || v === '0') return 0;
  if (typeof v === 'number') {
    if (!Number.isFinite(v) || v < 0) throw invalidArgument(`invalid network rate: ${v}`);
    return Math.floor(v);
  }
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(v.trim());
  const mult = m ? UNITS[m[2].toLowerCase()] : undefined;
  if (!m || mult === undefined)
    throw invalidArgument(
      `invalid network rate "${v}": use a number with bit, kbit, mbit or gbit (e.g. 10mbit)`,
    );
  const bits = Math.floor(Number(m[1]) * mult);
  if (bits < 8000) throw invalidArgument(`invalid network rate "${v}": the minimum is 8kbit`);
  return bits;
}

export function formatRate(bits: number): string {
  if (bits % 1e9 === 0) return `${bits / 1e9}gbit`;
  if (bits % 1e6 === 0) return `${bits / 1e6}mbit`;
  if (bits % 1e3 === 0) return `${bits / 1e3}kbit`;
  return `${bits}bit`;
}

/** tc batch lines that set (or clear, with 0) the rate on a device. */
export function tcLines(dev: string, bits: number): string[] {
  if (!bits) return [`qdisc del dev ${dev} root`];
  // The bucket must hold at least one timer tick's worth of data, and a few full-size packets.
  const burst = Math.max(32 * 1024, Math.ceil(bits / 8 / 100));
  return [`qdisc replace dev ${dev} root tbf rate ${bits}bit burst ${burst} latency 50ms`];
}

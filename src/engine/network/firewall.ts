/**
 * Berth's own iptables chains. Every change re-renders all of them from the network state and
 * loads them with one `iptables-restore --noflush` (a declared chain is flushed first), so a
 * restart after a crash reconciles by simply syncing again.
 *
 *   nat    PREROUTING/OUTPUT (dst local) -> <P>               DNAT of published ports
 *          POSTROUTING                   -> <P>-POSTROUTING   masquerade out, hairpin, loopback
 *   filter FORWARD                       -> <P>-FORWARD       isolation, internal networks
 */
import { log } from '../../common/log.js';
import { mustRun, runTool } from './exec.js';

export interface FirewallNetwork {
  bridge: string;
  subnet: string;
  internal: boolean;
}

export interface FirewallPort {
  proto: 'tcp' | 'udp';
  /** '' for every address */
  hostIp: string;
  hostPort: number;
  containerIp: string;
  containerPort: number;
}

export class Firewall {
  private queue: Promise<void> = Promise.resolve();
  readonly dnat: string;
  readonly post: string;
  readonly forward: string;

  constructor(readonly prefix: string) {
    this.dnat = prefix;
    this.post = `${prefix}-POSTROUTING`;
    this.forward = `${prefix}-FORWARD`;
  }

  private jumps(): { table: string; chain: string; rule: string }[] {
    return [
      { table: 'nat', chain: 'PREROUTING', rule: `-m addrtype --dst-type LOCAL -j ${this.dnat}` },
      { table: 'nat', chain: 'OUTPUT', rule: `-m addrtype --dst-type LOCAL -j ${this.dnat}` },
      { table: 'nat', chain: 'POSTROUTING', rule: `-j ${this.post}` },
      { table: 'filter', chain: 'FORWARD', rule: `-j ${this.forward}` },
    ];
  }

  /** Renders and loads all chains, then makes sure the built-in chains jump to them. */
  sync(networks: FirewallNetwork[], ports: FirewallPort[]): Promise<void> {
    const run = this.queue.then(() => this.apply(networks, ports));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async apply(networks: FirewallNetwork[], ports: FirewallPort[]): Promise<void> {
    const filter = [`:${this.forward} - [0:0]`];
    for (const a of networks)
      for (const b of networks)
        if (a.bridge !== b.bridge) filter.push(`-A ${this.forward} -i ${a.bridge} -o ${b.bridge} -j DROP`);
    for (const n of networks) {
      if (n.internal) {
        filter.push(`-A ${this.forward} -i ${n.bridge} ! -o ${n.bridge} -j DROP`);
        filter.push(`-A ${this.forward} -o ${n.bridge} ! -i ${n.bridge} -j DROP`);
        continue;
      }
      filter.push(`-A ${this.forward} -o ${n.bridge} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`);
      filter.push(`-A ${this.forward} -o ${n.bridge} -m conntrack --ctstate DNAT -j ACCEPT`);
      filter.push(`-A ${this.forward} -i ${n.bridge} -j ACCEPT`);
    }
    const nat = [`:${this.dnat} - [0:0]`, `:${this.post} - [0:0]`];
    for (const p of ports)
      nat.push(
        `-A ${this.dnat} -p ${p.proto}${p.hostIp ? ` -d ${p.hostIp}` : ''} --dport ${p.hostPort} -j DNAT --to-destination ${p.containerIp}:${p.containerPort}`,
      );
    for (const n of networks) {
      if (!n.internal) nat.push(`-A ${this.post} -s ${n.subnet} ! -o ${n.bridge} -j MASQUERADE`);
      // From the host's own addresses (127.0.0.1 through route_localnet) and hairpin through DNAT:
      // the reply must come back through this host to be un-NATed.
      nat.push(`-A ${this.post} -o ${n.bridge} -m addrtype --src-type LOCAL -j MASQUERADE`);
      nat.push(`-A ${this.post} -s ${n.subnet} -o ${n.bridge} -j MASQUERADE`);
    }
    const text = ['*filter', ...filter, 'COMMIT', '*nat', ...nat, 'COMMIT', ''].join('\n');
    await mustRun('iptables-restore', ['--noflush', '-w'], text);
    await this.ensureJumps();
  }

  private jumpsChecked = false;
  private async ensureJumps(): Promise<void> {
    if (this.jumpsChecked) return;
    for (const j of this.jumps()) {
      const args = ['-w', '-t', j.table];
      const r = await runTool('iptables', [...args, '-C', j.chain, ...j.rule.split(' ')]);
      if (r.code !== 0) await mustRun('iptables', [...args, '-I', j.chain, '1', ...j.rule.split(' ')]);
    }
    this.jumpsChecked = true;
  }

  /** Clean shutdown: the jumps and our chains go away. */
  async remove(): Promise<void> {
    await this.queue;
    for (const j of this.jumps()) {
      for (let i = 0; i < 10; i++) {
        const r = await runTool('iptables', ['-w', '-t', j.table, '-D', j.chain, ...j.rule.split(' ')]);
        if (r.code !== 0) break;
      }
    }
    for (const [table, chain] of [
      ['nat', this.dnat],
      ['nat', this.post],
      ['filter', this.forward],
    ]) {
      await runTool('iptables', ['-w', '-t', table, '-F', chain]);
      const r = await runTool('iptables', ['-w', '-t', table, '-X', chain]);
      if (r.code !== 0 && !/No chain|does not exist/i.test(r.stderr))
        log.warn('could not remove chain', { table, chain, error: r.stderr.trim() });
    }
    this.jumpsChecked = false;
  }
}

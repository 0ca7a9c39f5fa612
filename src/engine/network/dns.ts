/**
 * The embedded DNS server of a user-defined network: it listens on the network's gateway address,
 * answers A queries for the containers on that network (names, short ids, aliases) and forwards
 * everything else to the resolvers the asking container should use.
 */
import * as dgram from 'node:dgram';
import * as dnsPacket from 'dns-packet';
import { log } from '../../common/log.js';

export interface DnsResolver {
  /** Addresses of `name` on the network served at `serverIp`, or undefined when unknown. */
  lookup(serverIp: string, name: string): string[] | undefined;
  /** Upstream resolvers for a query from `clientIp`. */
  upstreams(clientIp: string): string[];
}

const FORWARD_TIMEOUT_MS = 3000;

export class EmbeddedDns {
  private readonly sockets = new Map<string, dgram.Socket>();

  constructor(private readonly resolver: DnsResolver) {}

  async listen(ip: string): Promise<void> {
    if (this.sockets.has(ip)) return;
    const sock = dgram.createSocket({ type: 'udp4', reuseAddr: true });
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind(53, ip, () => {
        sock.off('error', reject);
        resolve();
      });
    });
    sock.on('error', (err) => log.warn('dns socket error', { ip, error: String(err) }));
    sock.on('message', (msg, rinfo) => {
      this.answer(ip, msg, rinfo.address).then(
        (reply) => {
          if (reply) sock.send(reply, rinfo.port, rinfo.address);
        },
        (err: unknown) => log.debug('dns query failed', { error: String(err) }),
      );
    });
    this.sockets.set(ip, sock);
  }

  close(ip: string): void {
    const s = this.sockets.get(ip);
    if (!s) return;
    this.sockets.delete(ip);
    s.close();
  }

  closeAll(): void {
    for (const ip of [...this.sockets.keys()]) this.close(ip);
  }

  private async answer(serverIp: string, msg: Buffer, clientIp: string): Promise<Buffer | undefined> {
    let q: dnsPacket.Packet;
    try {
      q = dnsPacket.decode(msg);
    } catch {
      return undefined;
    }
    const question = q.questions?.[0];
    if (!question) return undefined;
    const name = question.name.replace(/\.$/, '').toLowerCase();
    const addrs = this.resolver.lookup(serverIp, name);
    if (addrs && (question.type === 'A' || question.type === 'AAAA')) {
      return dnsPacket.encode({
        id: q.id,
        type: 'response',
        flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | dnsPacket.AUTHORITATIVE_ANSWER,
        questions: [question],
        answers:
          question.type === 'AAAA'
            ? []
            : addrs.map((a) => ({
                type: 'A' as const,
                name: question.name,
                ttl: 600,
                class: 'IN' as const,
                data: a,
              })),
      });
    }
    for (const up of this.resolver.upstreams(clientIp)) {
      const reply = await forward(msg, up).catch(() => undefined);
      if (reply) return reply;
    }
    return dnsPacket.encode({
      id: q.id,
      type: 'response',
      flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | 2, // SERVFAIL
      questions: q.questions,
    });
  }
}

function forward(msg: Buffer, server: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket(server.includes(':') ? 'udp6' : 'udp4');
    const timer = setTimeout(() => {
      sock.close();
      reject(new Error('timeout'));
    }, FORWARD_TIMEOUT_MS);
    sock.once('message', (reply) => {
      clearTimeout(timer);
      sock.close();
      resolve(reply);
    });
    sock.once('error', (err) => {
      clearTimeout(timer);
      sock.close();
      reject(err);
    });
    sock.send(msg, 53, server);
  });
}

/**
 * The network room: networks (bridges), container endpoints (namespaces, veths, leases), published
 * ports, embedded DNS and bandwidth. See network.ts for the lifecycles.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, promises as fsp, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { readJsonIfExists, writeJsonAtomic } from '../../common/atomic.js';
import { BerthError, conflict, failedPrecondition, invalidArgument, notFound } from '../../common/errors.js';
import { log } from '../../common/log.js';
import { MNT_DETACH, native } from '../../common/native.js';
import type { EventBus } from '../events/events.js';
import { EmbeddedDns } from './dns.js';
import {
  type DnsSettings,
  parseExtraHosts,
  readHostResolvConf,
  renderHosts,
  renderResolvConf,
} from './etc.js';
import { ipBatch, mustRun, runTool } from './exec.js';
import { Firewall, type FirewallPort } from './firewall.js';
import {
  allocateIp,
  cidrString,
  contains,
  DEFAULT_POOLS,
  hostRoutes,
  intToIp,
  ipToInt,
  isIPv4,
  isMac,
  macForIp,
  overlaps,
  parseCidr,
  pickSubnet,
  type Subnet,
} from './ipam.js';
import type { ContainerNet, Endpoint, NetnsMode, NetworkConfig, NetworkRecord } from './network.js';
import { checkPortBindings, type Held, parsePortKey, PortAllocator, type PortBindings } from './ports.js';
import { formatRate, parseRate, tcLines } from './rate.js';

export interface ContainerLookup {
  /** full id of a container by id, prefix or name, if it exists */
  resolve(ref: string): string | undefined;
  isRunning(id: string): boolean;
  /** the pid of a running container's first process (0 when not running) */
  pid(id: string): number;
}

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function strList(v: unknown, field: string): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string'))
    throw invalidArgument(`json: cannot unmarshal into Go struct field ${field} of type []string`);
  return v as string[];
}

function strMap(v: unknown, field: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (!isObj(v) || !Object.values(v).every((x) => typeof x === 'string'))
    throw invalidArgument(`json: cannot unmarshal into Go struct field ${field} of type map[string]string`);
  return v as Record<string, string>;
}

const NET_NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const BUILTIN = ['bridge', 'host', 'none'];

interface NetState {
  rec: NetworkRecord;
  subnet: Subnet;
  gateway: number;
  /** leased addresses -> container id */
  leases: Map<number, string>;
}

export class NetworkService {
  private readonly nets = new Map<string, NetState>();
  private readonly states = new Map<string, ContainerNet>();
  private readonly held = new Map<string, Held[]>();
  private readonly ports = new PortAllocator();
  private readonly firewall: Firewall;
  private readonly dns: EmbeddedDns;
  private readonly root: string;
  private readonly netnsDir: string;
  /** network id -> lower-cased name -> addresses (user networks) */
  private dnsIndex = new Map<string, Map<string, string[]>>();
  private hostResolv = readHostResolvConf();
  containers: ContainerLookup = { resolve: () => undefined, isRunning: () => false, pid: () => 0 };

  constructor(
    private readonly cfg: NetworkConfig,
    dataRoot: string,
    execRoot: string,
    private readonly events: EventBus,
  ) {
    this.root = path.join(dataRoot, 'network');
    this.netnsDir = path.join(execRoot, 'netns');
    this.firewall = new Firewall(cfg.chainPrefix);
    this.dns = new EmbeddedDns({
      lookup: (serverIp, name) => this.lookupName(serverIp, name),
      upstreams: (clientIp) => this.upstreamsFor(clientIp),
    });
  }

  private netFile(id: string): string {
    return path.join(this.root, 'networks', `${id}.json`);
  }
  private containerFile(id: string): string {
    return path.join(this.root, 'containers', `${id}.json`);
  }

  // ---------------------------------------------------------------- start-up and shutdown

  async init(): Promise<void> {
    await fsp.mkdir(path.join(this.root, 'networks'), { recursive: true, mode: 0o700 });
    await fsp.mkdir(path.join(this.root, 'containers'), { recursive: true, mode: 0o700 });
    await fsp.mkdir(this.netnsDir, { recursive: true, mode: 0o700 });
    try {
      writeFileSync('/proc/sys/net/ipv4/ip_forward', '1');
    } catch (err) {
      log.warn('could not enable IP forwarding', { error: String(err) });
    }
    const builtin =
      (await readJsonIfExists<Record<string, string>>(path.join(this.root, 'builtin.json')).catch(
        () => undefined,
      )) ?? {};
    let changed = false;
    for (const n of BUILTIN)
      if (!builtin[n]) {
        builtin[n] = randomBytes(32).toString('hex');
        changed = true;
      }
    if (changed) await writeJsonAtomic(path.join(this.root, 'builtin.json'), builtin);

    const stored: NetworkRecord[] = [];
    for (const f of await fsp.readdir(path.join(this.root, 'networks'))) {
      if (!f.endsWith('.json')) continue;
      const rec = await readJsonIfExists<NetworkRecord>(path.join(this.root, 'networks', f)).catch(
        () => undefined,
      );
      if (rec?.Id && rec.IPAM?.Config?.[0]) stored.push(rec);
      else await fsp.rm(path.join(this.root, 'networks', f), { force: true });
    }
    const ownBridges = new Set([this.cfg.bridge, ...stored.map((r) => r.bridge)]);
    const taken = [
      ...hostRoutes()
        .filter((r) => !ownBridges.has(r.iface))
        .map((r) => r.subnet),
      ...stored.map((r) => parseCidr(r.IPAM.Config[0].Subnet)),
    ];
    let bip: { subnet: Subnet; gateway: number };
    if (this.cfg.bip) {
      const p = parseCidr(this.cfg.bip, true);
      bip = { subnet: { base: p.base, prefix: p.prefix }, gateway: p.ip === p.base ? p.base + 1 : p.ip };
    } else {
      const s = pickSubnet(
        this.cfg.defaultAddressPools.length ? this.cfg.defaultAddressPools : DEFAULT_POOLS,
        taken,
      );
      if (!s)
        throw failedPrecondition('no address pool is free for the default bridge: set "bip" in daemon.json');
      bip = { subnet: s, gateway: s.base + 1 };
    }
    const mk = (
      name: string,
      driver: NetworkRecord['Driver'],
      bridge: string,
      ipam: NetworkRecord['IPAM']['Config'],
    ): NetworkRecord => {
      const options: Record<string, string> =
        driver === 'bridge'
          ? {
              'com.docker.network.bridge.default_bridge': 'true',
              'com.docker.network.bridge.enable_icc': 'true',
              'com.docker.network.bridge.enable_ip_masquerade': 'true',
              'com.docker.network.bridge.host_binding_ipv4': '0.0.0.0',
              'com.docker.network.bridge.name': bridge,
              'com.docker.network.driver.mtu': '1500',
            }
          : {};
      return {
        Name: name,
        Id: builtin[name],
        Created: new Date().toISOString(),
        Scope: 'local',
        Driver: driver,
        EnableIPv6: false,
        IPAM: { Driver: 'default', Options: null, Config: ipam },
        Internal: false,
        Attachable: false,
        Ingress: false,
        ConfigFrom: { Network: '' },
        ConfigOnly: false,
        Options: options,
        Labels: {},
        bridge,
      };
    };
    const def = mk('bridge', 'bridge', this.cfg.bridge, [
      { Subnet: cidrString(bip.subnet), Gateway: intToIp(bip.gateway) },
    ]);
    this.addNet(def);
    this.addNet(mk('host', 'host', '', []));
    this.addNet(mk('none', 'null', '', []));
    for (const r of stored) this.addNet(r);
    for (const n of this.nets.values()) if (n.rec.bridge) await this.ensureBridge(n);

    for (const f of await fsp.readdir(path.join(this.root, 'containers'))) {
      if (!f.endsWith('.json')) continue;
      const c = await readJsonIfExists<ContainerNet>(path.join(this.root, 'containers', f)).catch(
        () => undefined,
      );
      if (!c?.id) {
        await fsp.rm(path.join(this.root, 'containers', f), { force: true });
        continue;
      }
      this.states.set(c.id, c);
      for (const ep of c.endpoints) {
        const n = this.nets.get(ep.networkId);
        if (n && ep.ip) n.leases.set(ipToInt(ep.ip), c.id);
      }
      for (const m of c.ports ?? []) this.ports.claim(m);
    }
    for (const n of this.nets.values()) await this.startDns(n);
    this.rebuildDnsIndex();
    await this.syncFirewall();
  }

  /** After the containers room loaded its records: forget the state of containers that are gone. */
  async reconcile(known: Set<string>): Promise<void> {
    for (const id of [...this.states.keys()]) if (!known.has(id)) await this.forget(id);
  }

  /** Clean shutdown: our chains and DNS servers go; bridges and running containers' links stay. */
  async close(): Promise<void> {
    this.dns.closeAll();
    for (const hs of this.held.values()) for (const h of hs) h.close();
    this.held.clear();
    await this.firewall
      .remove()
      .catch((err: unknown) => log.warn('firewall cleanup failed', { error: String(err) }));
  }

  private addNet(rec: NetworkRecord): void {
    const c = rec.IPAM.Config[0];
    const subnet = c ? parseCidr(c.Subnet) : { base: 0, prefix: 32 };
    this.nets.set(rec.Id, {
      rec,
      subnet,
      gateway: c ? ipToInt(c.Gateway) : 0,
      leases: new Map(),
    });
  }

  private async ensureBridge(n: NetState): Promise<void> {
    const b = n.rec.bridge;
    const addr = `${intToIp(n.gateway)}/${n.subnet.prefix}`;
    if (!existsSync(`/sys/class/net/${b}`)) {
      await ipBatch([`link add ${b} type bridge`, `addr add ${addr} dev ${b}`, `link set ${b} up`]);
    } else {
      const r = await runTool(
        'ip',
        ['-force', '-batch', '-'],
        `addr add ${addr} dev ${b}\nlink set ${b} up\n`,
      );
      if (r.code !== 0 && !/File exists|already assigned/.test(r.stderr))
        log.warn('bridge set-up', { bridge: b, error: r.stderr.trim() });
    }
    // Published ports on 127.0.0.1 are DNATed to the bridge: loopback sources must be routable there.
    try {
      writeFileSync(`/proc/sys/net/ipv4/conf/${b}/route_localnet`, '1');
    } catch (err) {
      log.warn('route_localnet', { bridge: b, error: String(err) });
    }
  }

  private async startDns(n: NetState): Promise<void> {
    if (n.rec.Driver !== 'bridge' || n.rec.Name === 'bridge') return;
    await this.dns
      .listen(intToIp(n.gateway))
      .catch((err: unknown) =>
        log.warn('embedded DNS could not listen', { network: n.rec.Name, error: String(err) }),
      );
  }

  private syncFirewall(): Promise<void> {
    const networks = [...this.nets.values()]
      .filter((n) => n.rec.bridge)
      .map((n) => ({ bridge: n.rec.bridge, subnet: cidrString(n.subnet), internal: n.rec.Internal }));
    const ports: FirewallPort[] = [];
    for (const c of this.states.values()) {
      const ip = c.endpoints[0]?.ip;
      if (!ip) continue;
      for (const m of c.ports ?? [])
        ports.push({
          proto: m.proto,
          hostIp: m.hostIp === '0.0.0.0' ? '' : m.hostIp,
          hostPort: m.hostPort,
          containerIp: ip,
          containerPort: m.containerPort,
        });
    }
    return this.firewall.sync(networks, ports);
  }

  // ---------------------------------------------------------------- networks

  list(): NetworkRecord[] {
    return [...this.nets.values()].map((n) => n.rec);
  }

  /** By full id, name, or unique id prefix (Docker's order). */
  get(ref: string): NetworkRecord {
    const n = this.tryGet(ref);
    if (!n) throw notFound(`network ${ref} not found`);
    return n.rec;
  }

  private tryGet(ref: string): NetState | undefined {
    const byId = this.nets.get(ref);
    if (byId) return byId;
    for (const n of this.nets.values()) if (n.rec.Name === ref) return n;
    const pre = [...this.nets.values()].filter((n) => n.rec.Id.startsWith(ref));
    if (pre.length > 1)
      throw invalidArgument(`network ${ref} is ambiguous (${pre.length} matches found based on ID prefix)`);
    return pre[0];
  }

  /** Containers attached to a network: id -> endpoint. */
  endpointsOf(netId: string): { c: ContainerNet; ep: Endpoint }[] {
    const out: { c: ContainerNet; ep: Endpoint }[] = [];
    for (const c of this.states.values())
      for (const ep of c.endpoints) if (ep.networkId === netId) out.push({ c, ep });
    if (netId === this.nets.get(this.builtinId('host'))?.rec.Id)
      for (const c of this.states.values()) if (c.mode === 'host') out.push({ c, ep: emptyEndpoint(netId) });
    return out;
  }

  private builtinId(name: string): string {
    for (const n of this.nets.values()) if (n.rec.Name === name) return n.rec.Id;
    return '';
  }

  async create(body: unknown): Promise<{ Id: string; Warning: string }> {
    if (!isObj(body)) throw invalidArgument('invalid JSON: the request body must be an object');
    const name = typeof body.Name === 'string' ? body.Name : '';
    if (!name) throw invalidArgument('network name is required');
    if (!NET_NAME_RE.test(name)) throw invalidArgument(`invalid network name "${name}"`);
    if (BUILTIN.includes(name)) throw forbidden(`${name} is a pre-defined network and cannot be created`);
    if ([...this.nets.values()].some((n) => n.rec.Name === name))
      throw conflict(`network with name ${name} already exists`);
    const driver = typeof body.Driver === 'string' && body.Driver ? body.Driver : 'bridge';
    if (driver !== 'bridge') throw notFound(`plugin "${driver}" not found`);
    if (body.EnableIPv6 === true) throw invalidArgument('IPv6 networks are not supported');
    const ipam = isObj(body.IPAM) ? body.IPAM : {};
    const ipamDriver = typeof ipam.Driver === 'string' && ipam.Driver ? ipam.Driver : 'default';
    if (ipamDriver !== 'default') throw notFound(`plugin "${ipamDriver}" not found`);
    const configs = Array.isArray(ipam.Config) ? (ipam.Config as unknown[]) : [];
    if (configs.length > 1) throw invalidArgument('only one IPv4 subnet per network is supported');
    const options = strMap(body.Options, 'NetworkCreateRequest.Options');
    const labels = strMap(body.Labels, 'NetworkCreateRequest.Labels');
    const taken = this.takenSubnets();
    let subnet: Subnet;
    let gateway: number;
    if (configs.length === 1) {
      const c = isObj(configs[0]) ? configs[0] : {};
      if (typeof c.Subnet !== 'string' || !c.Subnet)
        throw invalidArgument('a subnet is required with a gateway or IP range');
      if (c.Subnet.includes(':')) throw invalidArgument('IPv6 subnets are not supported');
      const p = parseCidr(c.Subnet, true);
      subnet = { base: p.base, prefix: p.prefix };
      if (subnet.prefix > 30) throw invalidArgument(`subnet ${c.Subnet} is too small`);
      const clash = taken.find((t) => overlaps(t.subnet, subnet));
      if (clash) throw forbidden(`invalid pool request: Pool overlaps with other one on this address space`);
      if (typeof c.Gateway === 'string' && c.Gateway) {
        gateway = ipToInt(c.Gateway);
        if (!contains(subnet, gateway))
          throw invalidArgument(`Invalid gateway ${c.Gateway}: it is not in subnet ${cidrString(subnet)}`);
      } else gateway = subnet.base + 1;
    } else {
      const s = pickSubnet(
        this.cfg.defaultAddressPools.length ? this.cfg.defaultAddressPools : DEFAULT_POOLS,
        taken.map((t) => t.subnet),
      );
      if (!s)
        throw forbidden(
          'could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network',
        );
      subnet = s;
      gateway = s.base + 1;
    }
    const id = randomBytes(32).toString('hex');
    const bridge = options['com.docker.network.bridge.name'] || `br-${id.slice(0, 12)}`;
    if (bridge.length > 15 || !/^[a-zA-Z0-9_.-]+$/.test(bridge))
      throw invalidArgument(`invalid bridge name ${bridge}`);
    if ([...this.nets.values()].some((n) => n.rec.bridge === bridge))
      throw conflict(`bridge ${bridge} is already in use by another network`);
    const rec: NetworkRecord = {
      Name: name,
      Id: id,
      Created: new Date().toISOString(),
      Scope: 'local',
      Driver: 'bridge',
      EnableIPv6: false,
      IPAM: {
        Driver: 'default',
        Options: isObj(ipam.Options) ? strMap(ipam.Options, 'IPAM.Options') : {},
        Config: [{ Subnet: cidrString(subnet), Gateway: intToIp(gateway) }],
      },
      Internal: body.Internal === true,
      Attachable: body.Attachable === true,
      Ingress: false,
      ConfigFrom: { Network: '' },
      ConfigOnly: false,
      Options: options,
      Labels: labels,
      bridge,
    };
    this.addNet(rec);
    const n = this.nets.get(id)!;
    try {
      await this.ensureBridge(n);
      await writeJsonAtomic(this.netFile(id), rec);
      await this.syncFirewall();
      await this.startDns(n);
    } catch (err) {
      this.nets.delete(id);
      await fsp.rm(this.netFile(id), { force: true });
      await runTool('ip', ['link', 'del', bridge]);
      throw err;
    }
    this.events.publish('network', 'create', id, { name, type: 'bridge' });
    return { Id: id, Warning: '' };
  }

  private takenSubnets(): { subnet: Subnet }[] {
    const own = new Set([...this.nets.values()].map((n) => n.rec.bridge).filter(Boolean));
    return [
      ...[...this.nets.values()].filter((n) => n.rec.bridge).map((n) => ({ subnet: n.subnet })),
      ...hostRoutes()
        .filter((r) => !own.has(r.iface))
        .map((r) => ({ subnet: r.subnet })),
    ];
  }

  async remove(ref: string): Promise<void> {
    const n = this.tryGet(ref);
    if (!n) throw notFound(`network ${ref} not found`);
    if (BUILTIN.includes(n.rec.Name))
      throw forbidden(`${n.rec.Name} is a pre-defined network and cannot be removed`);
    const eps = this.endpointsOf(n.rec.Id);
    if (eps.length)
      throw forbidden(
        `error while removing network: network ${n.rec.Name} id ${n.rec.Id} has active endpoints`,
      );
    this.dns.close(intToIp(n.gateway));
    this.nets.delete(n.rec.Id);
    await fsp.rm(this.netFile(n.rec.Id), { force: true });
    // The rules naming the bridge and the bridge itself go at once (neither needs the other gone).
    await Promise.all([this.syncFirewall(), runTool('ip', ['link', 'del', n.rec.bridge])]);
    this.events.publish('network', 'destroy', n.rec.Id, { name: n.rec.Name, type: 'bridge' });
  }

  /** Removes user networks without endpoints (matching all label filters); returns their names. */
  async prune(labels: string[] = []): Promise<string[]> {
    const out: string[] = [];
    for (const n of [...this.nets.values()]) {
      if (BUILTIN.includes(n.rec.Name) || this.endpointsOf(n.rec.Id).length) continue;
      if (!labels.every((l) => labelMatches(n.rec.Labels, l))) continue;
      await this.remove(n.rec.Id);
      out.push(n.rec.Name);
    }
    return out;
  }

  // ---------------------------------------------------------------- containers: create and remove

  /** At container create: checks and records what the container asks of the network. */
  async prepare(id: string, name: string, body: unknown): Promise<void> {
    const b = isObj(body) ? body : {};
    const h = isObj(b.HostConfig) ? b.HostConfig : {};
    const mode = (typeof h.NetworkMode === 'string' && h.NetworkMode) || 'default';
    const nc = isObj(b.NetworkingConfig) ? b.NetworkingConfig : {};
    const eps = isObj(nc.EndpointsConfig) ? nc.EndpointsConfig : {};
    const c: ContainerNet = {
      id,
      name,
      hostname: typeof b.Hostname === 'string' && b.Hostname ? b.Hostname : id.slice(0, 12),
      domainname: typeof b.Domainname === 'string' ? b.Domainname : '',
      mode,
      endpoints: [],
      bindings: checkPortBindings(h.PortBindings),
      publishAll: h.PublishAllPorts === true,
      exposed: [],
      dns: strList(h.Dns, 'HostConfig.Dns'),
      dnsSearch: strList(h.DnsSearch, 'HostConfig.DnsSearch'),
      dnsOptions: strList(h.DnsOptions, 'HostConfig.DnsOptions'),
      extraHosts: strList(h.ExtraHosts, 'HostConfig.ExtraHosts'),
      rate: parseRate(h.NetworkRate as string | number | undefined),
    };
    for (const s of c.dns)
      if (!isIPv4(s) && !s.includes(':')) throw invalidArgument(`${s} is not an ip address`);
    parseExtraHosts(c.extraHosts, '0.0.0.0');
    if (isObj(b.ExposedPorts)) for (const k of Object.keys(b.ExposedPorts)) parsePortKey(k);
    const exposed = new Set<string>(isObj(b.ExposedPorts) ? Object.keys(b.ExposedPorts) : []);
    for (const k of Object.keys(c.bindings)) exposed.add(k);
    c.exposed = [...exposed].map((k) => {
      const p = parsePortKey(k);
      return `${p.port}/${p.proto}`;
    });
    const mac = typeof b.MacAddress === 'string' ? b.MacAddress : '';
    if (mode === 'host' || mode === 'none' || mode.startsWith('container:')) {
      if (mode.startsWith('container:')) {
        const target = this.containers.resolve(mode.slice(10));
        if (!target) throw notFound(`No such container: ${mode.slice(10)}`);
        if (target === id) throw invalidArgument('cannot join own network');
      }
      if (Object.keys(c.bindings).length || c.publishAll) {
        if (mode !== 'none' || Object.values(c.bindings).some((l) => l?.length))
          throw invalidArgument('conflicting options: port publishing and the container type network mode');
      }
      if (mode !== 'none' && mac)
        throw invalidArgument('conflicting options: mac-address and the network mode');
    } else {
      const netName = mode === 'default' ? 'bridge' : mode;
      const n = this.tryGet(netName);
      if (!n) throw notFound(`network ${netName} not found`);
      const cfg = (isObj(eps[mode]) ? eps[mode] : isObj(eps[netName]) ? eps[netName] : {}) as Json;
      c.endpoints.push(this.checkEndpoint(n, cfg, mac, id));
      for (const [k, v] of Object.entries(eps)) {
        if (k === mode || k === netName) continue;
        const other = this.tryGet(k);
        if (!other) throw notFound(`network ${k} not found`);
        if (c.endpoints.some((e) => e.networkId === other.rec.Id)) continue;
        c.endpoints.push(this.checkEndpoint(other, isObj(v) ? v : {}, '', id));
      }
    }
    this.states.set(id, c);
    await this.save(c);
  }

  /** A container made before networking existed (or whose state was lost) gets it from its record. */
  async ensurePrepared(id: string, name: string, body: unknown): Promise<void> {
    if (!this.states.has(id)) await this.prepare(id, name, body);
  }

  private checkEndpoint(n: NetState, cfg: Json, mac: string, cid: string): Endpoint {
    if (n.rec.Driver !== 'bridge')
      throw invalidArgument(`container cannot be connected to network ${n.rec.Name} with other networks`);
    const aliases = strList(cfg.Aliases, 'EndpointSettings.Aliases');
    const ipam = isObj(cfg.IPAMConfig) ? cfg.IPAMConfig : {};
    const ip = typeof ipam.IPv4Address === 'string' ? ipam.IPv4Address : '';
    const m = (typeof cfg.MacAddress === 'string' && cfg.MacAddress) || mac;
    if (m && !isMac(m)) throw invalidArgument(`${m} is not a valid mac address`);
    if (ip) {
      if (n.rec.Name === 'bridge')
        throw invalidArgument('user specified IP address is supported on user defined networks only');
      const v = ipToInt(ip);
      if (!contains(n.subnet, v) || v === n.gateway || v === n.subnet.base)
        throw invalidArgument(`no configured subnet or ip-range contain the IP address ${ip}`);
      for (const other of this.states.values())
        if (
          other.id !== cid &&
          other.endpoints.some((e) => e.networkId === n.rec.Id && (e.requestedIp === ip || e.ip === ip))
        )
          throw forbidden(`Address already in use: ${ip} is already assigned on network ${n.rec.Name}`);
    }
    if (aliases.length && n.rec.Name === 'bridge')
      throw invalidArgument('network-scoped aliases are only supported for user-defined networks');
    return {
      networkId: n.rec.Id,
      endpointId: randomBytes(32).toString('hex'),
      aliases,
      requestedIp: ip,
      requestedMac: m,
    };
  }

  private async save(c: ContainerNet): Promise<void> {
    await writeJsonAtomic(this.containerFile(c.id), c);
  }

  async rename(id: string, name: string): Promise<void> {
    const c = this.states.get(id);
    if (!c) return;
    c.name = name;
    await this.save(c);
    this.rebuildDnsIndex();
  }

  /** At container rm. */
  async forget(id: string): Promise<void> {
    await this.tearDown(id);
    this.states.delete(id);
    await fsp.rm(this.containerFile(id), { force: true });
  }

  // ---------------------------------------------------------------- containers: start and exit

  /** At each start: the namespace the container joins, with its links, addresses and ports ready. */
  async setUp(id: string): Promise<NetnsMode> {
    const c = this.states.get(id);
    if (!c) throw notFound(`no network configuration for container ${id}`);
    if (c.mode === 'host') return { kind: 'host' };
    if (c.mode.startsWith('container:')) {
      const target = this.containers.resolve(c.mode.slice(10));
      const t = target ? this.states.get(target) : undefined;
      if (!t || !this.containers.isRunning(t.id))
        throw conflict(`cannot join network of a non running container: ${c.mode.slice(10)}`);
      if (t.mode === 'host') return { kind: 'host' };
      const ns = this.namespaceOf(t);
      if (!ns) throw conflict(`cannot join network of a non running container: ${c.mode.slice(10)}`);
      c.joined = t.id;
      return { kind: 'path', path: ns };
    }
    // Nothing to wire: the runtime makes the namespace (runc brings its `lo` up), which spares a
    // process spawn and a state write on every start of a --network none container.
    if (c.mode === 'none') return { kind: 'private' };
    const ns = path.join(this.netnsDir, id);
    try {
      await this.tearDownNetns(ns);
      const lines = ['link set lo up'];
      const host: string[] = [];
      const hostTc: string[] = [];
      const tc: string[] = [];
      let routed = false;
      c.endpoints.forEach((ep, i) => {
        const n = this.nets.get(ep.networkId);
        if (!n) throw notFound(`network ${ep.networkId} not found`);
        this.lease(c, ep, n);
        ep.iface = `eth${i}`;
        ep.hostVeth = `veth${randomBytes(4).toString('hex')}`;
        lines.push(...this.linkLines(ep, n, !routed));
        if (!n.rec.Internal) routed = true;
        host.push(...hostLinkLines(ep.hostVeth, n.rec.bridge));
        if (c.rate && i === 0) {
          tc.push(...tcLines(ep.iface, c.rate));
          hostTc.push(...tcLines(ep.hostVeth, c.rate));
        }
      });
      const bindings = this.effectiveBindings(c);
      if (Object.keys(bindings).length && c.endpoints.length) {
        const { mappings, held } = await this.ports.allocate(
          bindings,
          `${c.name} (${c.endpoints[0].endpointId})`,
        );
        c.ports = mappings;
        this.held.set(id, held);
      }
      writeFileSync(ns, '');
      c.netns = ns;
      await mustRun('unshare', [`--net=${ns}`, 'ip', '-batch', '-'], lines.join('\n') + '\n');
      await ipBatch(host);
      if (hostTc.length) await mustRun('tc', ['-batch', '-'], hostTc.join('\n') + '\n');
      if (tc.length) await mustRun('nsenter', [`--net=${ns}`, 'tc', '-batch', '-'], tc.join('\n') + '\n');
      if (c.ports?.length) await this.syncFirewall();
      await this.save(c);
    } catch (err) {
      await this.tearDown(id).catch(() => undefined);
      throw err;
    }
    this.rebuildDnsIndex();
    for (const ep of c.endpoints) {
      const n = this.nets.get(ep.networkId);
      if (n)
        this.events.publish('network', 'connect', n.rec.Id, {
          container: id,
          name: n.rec.Name,
          type: 'bridge',
        });
    }
    return { kind: 'path', path: ns };
  }

  /** The namespace a running container's network lives in: ours, the runtime's, or the one it joined. */
  private namespaceOf(c: ContainerNet): string | undefined {
    if (c.netns) return c.netns;
    if (c.joined) {
      const j = this.states.get(c.joined);
      return j && j.id !== c.id ? this.namespaceOf(j) : undefined;
    }
    const pid = c.mode === 'none' ? this.containers.pid(c.id) : 0;
    return pid ? `/proc/${pid}/ns/net` : undefined;
  }

  private lease(c: ContainerNet, ep: Endpoint, n: NetState): void {
    let ip: number | undefined;
    if (ep.requestedIp) {
      ip = ipToInt(ep.requestedIp);
      const holder = n.leases.get(ip);
      if (holder && holder !== c.id)
        throw forbidden(
          `Address already in use: ${ep.requestedIp} is already assigned on network ${n.rec.Name}`,
        );
    } else {
      const used = new Set(n.leases.keys());
      used.add(n.gateway);
      // addresses others asked for stay theirs even while they are stopped
      for (const o of this.states.values())
        for (const e of o.endpoints)
          if (e.networkId === n.rec.Id && e.requestedIp) used.add(ipToInt(e.requestedIp));
      ip = allocateIp(n.subnet, used);
      if (ip === undefined) throw failedPrecondition(`no available IPv4 addresses on network ${n.rec.Name}`);
    }
    n.leases.set(ip, c.id);
    ep.ip = intToIp(ip);
    ep.mac = ep.requestedMac || macForIp(ip);
  }

  private linkLines(ep: Endpoint, n: NetState, defaultRoute: boolean): string[] {
    const lines = [
      `link add ${ep.iface} type veth peer name ${ep.hostVeth} netns /proc/${process.pid}/ns/net`,
      `link set ${ep.iface} address ${ep.mac}`,
      `addr add ${ep.ip}/${n.subnet.prefix} dev ${ep.iface}`,
      `link set ${ep.iface} up`,
    ];
    if (defaultRoute && !n.rec.Internal) lines.push(`route add default via ${intToIp(n.gateway)}`);
    return lines;
  }

  private effectiveBindings(c: ContainerNet): PortBindings {
    const out: PortBindings = {};
    for (const [k, v] of Object.entries(c.bindings)) if (v?.length) out[k] = v;
    if (c.publishAll) for (const k of c.exposed) if (!out[k]) out[k] = [{ HostIp: '', HostPort: '' }];
    return out;
  }

  /** At each exit (idempotent): leases, ports and the namespace (with its veths) go. */
  async tearDown(id: string): Promise<void> {
    const c = this.states.get(id);
    if (!c) return;
    const hadPorts = !!c.ports?.length;
    const hadLease = c.endpoints.some((e) => e.ip) || !!c.netns || !!c.joined;
    for (const h of this.held.get(id) ?? []) h.close();
    this.held.delete(id);
    for (const m of c.ports ?? []) this.ports.release(m);
    c.ports = undefined;
    for (const ep of c.endpoints) {
      const n = this.nets.get(ep.networkId);
      if (n && ep.ip && n.leases.get(ipToInt(ep.ip)) === id) n.leases.delete(ipToInt(ep.ip));
      if (ep.ip && n)
        this.events.publish('network', 'disconnect', n.rec.Id, {
          container: id,
          name: n.rec.Name,
          type: 'bridge',
        });
      ep.ip = undefined;
      ep.mac = undefined;
      ep.iface = undefined;
      ep.hostVeth = undefined;
    }
    if (c.netns) await this.tearDownNetns(c.netns);
    c.netns = undefined;
    c.joined = undefined;
    if (hadPorts) await this.syncFirewall();
    if (hadLease) {
      await this.save(c);
      this.rebuildDnsIndex();
    }
  }

  private async tearDownNetns(ns: string): Promise<void> {
    try {
      native.umount2(ns, MNT_DETACH);
    } catch {
      // not mounted
    }
    await fsp.rm(ns, { force: true });
  }

  // ---------------------------------------------------------------- connect / disconnect

  async connect(ref: string, body: unknown): Promise<void> {
    const b = isObj(body) ? body : {};
    const n = this.tryGet(ref);
    if (!n) throw notFound(`network ${ref} not found`);
    const cref = typeof b.Container === 'string' ? b.Container : '';
    const cid = this.containers.resolve(cref);
    if (!cid) throw notFound(`No such container: ${cref}`);
    const c = this.states.get(cid);
    if (!c) throw notFound(`No such container: ${cref}`);
    if (c.mode === 'host' || c.mode === 'none' || c.mode.startsWith('container:'))
      throw forbidden(`container cannot be disconnected from host network or connected to host network`);
    if (c.endpoints.some((e) => e.networkId === n.rec.Id))
      throw forbidden(`endpoint with name ${c.name} already exists in network ${n.rec.Name}`);
    const ep = this.checkEndpoint(n, isObj(b.EndpointConfig) ? b.EndpointConfig : {}, '', cid);
    c.endpoints.push(ep);
    if (c.netns) {
      try {
        ep.iface = `eth${this.nextIface(c)}`;
        ep.hostVeth = `veth${randomBytes(4).toString('hex')}`;
        this.lease(c, ep, n);
        const routed = c.endpoints.some((e) => e !== ep && e.ip && !this.nets.get(e.networkId)?.rec.Internal);
        await mustRun(
          'nsenter',
          [`--net=${c.netns}`, 'ip', '-batch', '-'],
          this.linkLines(ep, n, !routed).join('\n') + '\n',
        );
        await ipBatch(hostLinkLines(ep.hostVeth, n.rec.bridge));
      } catch (err) {
        if (ep.ip) n.leases.delete(ipToInt(ep.ip));
        c.endpoints.pop();
        throw err;
      }
      this.events.publish('network', 'connect', n.rec.Id, {
        container: cid,
        name: n.rec.Name,
        type: 'bridge',
      });
    }
    await this.save(c);
    this.rebuildDnsIndex();
  }

  private nextIface(c: ContainerNet): number {
    const used = new Set(c.endpoints.map((e) => e.iface).filter(Boolean));
    let i = 0;
    while (used.has(`eth${i}`)) i++;
    return i;
  }

  async disconnect(ref: string, body: unknown): Promise<void> {
    const b = isObj(body) ? body : {};
    const n = this.tryGet(ref);
    if (!n) throw notFound(`network ${ref} not found`);
    const cref = typeof b.Container === 'string' ? b.Container : '';
    const cid = this.containers.resolve(cref);
    const c = cid ? this.states.get(cid) : undefined;
    if (!c || !cid) throw notFound(`No such container: ${cref}`);
    const i = c.endpoints.findIndex((e) => e.networkId === n.rec.Id);
    if (i < 0) throw forbidden(`container ${cid} is not connected to network ${n.rec.Name}`);
    const ep = c.endpoints[i];
    if (ep.hostVeth) await runTool('ip', ['link', 'del', ep.hostVeth]);
    if (ep.ip) {
      n.leases.delete(ipToInt(ep.ip));
      this.events.publish('network', 'disconnect', n.rec.Id, {
        container: cid,
        name: n.rec.Name,
        type: 'bridge',
      });
    }
    c.endpoints.splice(i, 1);
    if (i === 0 && c.ports?.length) {
      for (const h of this.held.get(cid) ?? []) h.close();
      this.held.delete(cid);
      for (const m of c.ports) this.ports.release(m);
      c.ports = undefined;
      await this.syncFirewall();
    }
    if (c.mode === n.rec.Name || (c.mode === 'default' && n.rec.Name === 'bridge'))
      c.mode = c.endpoints[0] ? this.nets.get(c.endpoints[0].networkId)!.rec.Name : 'none';
    await this.save(c);
    this.rebuildDnsIndex();
  }

  // ---------------------------------------------------------------- bandwidth

  /** Throws InvalidArgument for a rate `update` must refuse before it changes anything. */
  checkRate(rate: unknown): void {
    if (rate !== null && typeof rate !== 'string' && typeof rate !== 'number')
      throw invalidArgument(
        'json: cannot unmarshal into Go struct field UpdateConfig.NetworkRate of type string',
      );
    parseRate(rate as string | number | null);
  }

  /** `update --network-rate`: applies at once to a running container. */
  async setRate(id: string, rate: unknown): Promise<void> {
    this.checkRate(rate);
    const c = this.states.get(id);
    if (!c) throw notFound(`No such container: ${id}`);
    const bits = parseRate(rate as string | number | null);
    const ep = c.endpoints[0];
    if (c.netns && ep?.hostVeth && ep.iface) {
      if (bits || c.rate) {
        await runTool('tc', ['-force', '-batch', '-'], tcLines(ep.hostVeth, bits).join('\n') + '\n');
        await runTool(
          'nsenter',
          [`--net=${c.netns}`, 'tc', '-force', '-batch', '-'],
          tcLines(ep.iface, bits).join('\n') + '\n',
        );
      }
    }
    c.rate = bits;
    await this.save(c);
  }

  rateOf(id: string): string {
    const r = this.states.get(id)?.rate ?? 0;
    return r ? formatRate(r) : '';
  }

  // ---------------------------------------------------------------- /etc files

  /** resolv.conf and hosts for a container about to start (after setUp). */
  etcFiles(id: string): { hosts: string; resolvConf: string } {
    const c = this.states.get(id);
    if (!c || c.mode === 'host') {
      let hosts = '';
      try {
        hosts = readFileSync('/etc/hosts', 'utf8');
      } catch {
        hosts = renderHosts([], []);
      }
      let resolv = '';
      try {
        resolv = readFileSync('/etc/resolv.conf', 'utf8');
      } catch {
        resolv = renderResolvConf(this.hostResolv);
      }
      return { hosts, resolvConf: resolv };
    }
    const src = c.joined ? (this.states.get(c.joined) ?? c) : c;
    const gwDefault = this.nets.get(this.builtinId('bridge'));
    const extra = parseExtraHosts(c.extraHosts, gwDefault ? intToIp(gwDefault.gateway) : '0.0.0.0');
    const names = [src.hostname, ...(src.domainname ? [`${src.hostname}.${src.domainname}`] : [])];
    const entries = src.endpoints.filter((e) => e.ip).map((e) => ({ ip: e.ip!, names }));
    const first = src.endpoints[0];
    const n = first ? this.nets.get(first.networkId) : undefined;
    const embedded = n && n.rec.Name !== 'bridge';
    const host = this.hostResolv;
    let dns: DnsSettings;
    if (embedded) {
      dns = {
        servers: [intToIp(n.gateway)],
        search: src.dnsSearch.length ? src.dnsSearch : host.search,
        options: ['ndots:0', ...(src.dnsOptions.length ? src.dnsOptions : host.options)],
      };
    } else {
      dns = {
        servers: src.dns.length ? src.dns : this.cfg.dns.length ? this.cfg.dns : host.servers,
        search: src.dnsSearch.length ? src.dnsSearch : host.search,
        options: src.dnsOptions.length ? src.dnsOptions : host.options,
      };
    }
    return { hosts: renderHosts(entries, extra), resolvConf: renderResolvConf(dns) };
  }

  // ---------------------------------------------------------------- embedded DNS

  private rebuildDnsIndex(): void {
    const idx = new Map<string, Map<string, string[]>>();
    for (const c of this.states.values())
      for (const ep of c.endpoints) {
        if (!ep.ip) continue;
        let m = idx.get(ep.networkId);
        if (!m) idx.set(ep.networkId, (m = new Map()));
        for (const name of new Set([c.name, c.id.slice(0, 12), c.hostname, ...ep.aliases])) {
          const k = name.toLowerCase();
          const list = m.get(k) ?? [];
          if (!list.includes(ep.ip)) list.push(ep.ip);
          m.set(k, list);
        }
      }
    this.dnsIndex = idx;
  }

  private lookupName(serverIp: string, name: string): string[] | undefined {
    const gw = ipToInt(serverIp);
    for (const n of this.nets.values()) {
      if (n.gateway !== gw || !n.rec.bridge) continue;
      const m = this.dnsIndex.get(n.rec.Id);
      return m?.get(name);
    }
    return undefined;
  }

  private upstreamsFor(clientIp: string): string[] {
    for (const c of this.states.values())
      if (c.endpoints.some((e) => e.ip === clientIp)) {
        if (c.dns.length) return c.dns;
        break;
      }
    return this.cfg.dns.length ? this.cfg.dns : this.hostResolv.allServers;
  }

  // ---------------------------------------------------------------- views for the API

  /** NetworkSettings of a container inspect. */
  settings(id: string, sandboxKeyFallback = ''): Record<string, unknown> {
    const c = this.states.get(id);
    const networks: Record<string, unknown> = {};
    const ports: Record<string, { HostIp: string; HostPort: string }[] | null> = {};
    let top = { ip: '', gw: '', prefix: 0, mac: '', epid: '', bridge: '' };
    if (c) {
      for (const k of c.exposed) ports[k] = null;
      for (const m of c.ports ?? []) {
        const k = `${m.containerPort}/${m.proto}`;
        (ports[k] ??= []).push({ HostIp: m.hostIp, HostPort: String(m.hostPort) });
      }
      if (c.mode === 'host' || c.mode === 'none') {
        const n = this.tryGet(c.mode);
        if (n) networks[c.mode] = endpointView(n, undefined, c);
      }
      for (const ep of c.endpoints) {
        const n = this.nets.get(ep.networkId);
        if (!n) continue;
        networks[n.rec.Name] = endpointView(n, ep, c);
        if (n.rec.Name === 'bridge' && ep.ip)
          top = {
            ip: ep.ip,
            gw: intToIp(n.gateway),
            prefix: n.subnet.prefix,
            mac: ep.mac ?? '',
            epid: ep.endpointId,
            bridge: '',
          };
      }
    }
    const ns = c ? this.namespaceOf(c) : undefined;
    return {
      Bridge: top.bridge,
      SandboxID: ns ? id : '',
      HairpinMode: false,
      LinkLocalIPv6Address: '',
      LinkLocalIPv6PrefixLen: 0,
      Ports: ports,
      SandboxKey: ns ?? sandboxKeyFallback,
      SecondaryIPAddresses: null,
      SecondaryIPv6Addresses: null,
      EndpointID: top.epid,
      Gateway: top.gw,
      GlobalIPv6Address: '',
      GlobalIPv6PrefixLen: 0,
      IPAddress: top.ip,
      IPPrefixLen: top.prefix,
      IPv6Gateway: '',
      MacAddress: top.mac,
      Networks: networks,
    };
  }

  /** HostConfig additions of a container inspect. */
  hostConfigView(id: string): Record<string, unknown> {
    const c = this.states.get(id);
    if (!c) return {};
    return {
      PortBindings: c.bindings,
      PublishAllPorts: c.publishAll,
      Dns: c.dns,
      DnsSearch: c.dnsSearch,
      DnsOptions: c.dnsOptions,
      ExtraHosts: c.extraHosts.length ? c.extraHosts : null,
      NetworkRate: c.rate ? formatRate(c.rate) : '',
    };
  }

  /** Ports and Networks of a container list entry. */
  summary(id: string): { Ports: unknown[]; Networks: Record<string, unknown> } {
    const c = this.states.get(id);
    const ports: unknown[] = [];
    const networks: Record<string, unknown> = {};
    if (!c) return { Ports: ports, Networks: networks };
    const published = new Set<string>();
    for (const m of c.ports ?? []) {
      ports.push({ IP: m.hostIp, PrivatePort: m.containerPort, PublicPort: m.hostPort, Type: m.proto });
      published.add(`${m.containerPort}/${m.proto}`);
    }
    for (const k of c.exposed)
      if (!published.has(k)) {
        const p = parsePortKey(k);
        ports.push({ PrivatePort: p.port, Type: p.proto });
      }
    if (c.mode === 'host' || c.mode === 'none') {
      const n = this.tryGet(c.mode);
      if (n) networks[c.mode] = endpointView(n, undefined, c);
    }
    for (const ep of c.endpoints) {
      const n = this.nets.get(ep.networkId);
      if (n) networks[n.rec.Name] = endpointView(n, ep, c);
    }
    return { Ports: ports, Networks: networks };
  }

  /** A network as GET /networks/{id} answers it. */
  view(rec: NetworkRecord, withContainers = true): Record<string, unknown> {
    const { bridge: _bridge, ...pub } = rec;
    void _bridge;
    const containers: Record<string, unknown> = {};
    if (withContainers) {
      const n = this.nets.get(rec.Id);
      for (const { c, ep } of this.endpointsOf(rec.Id)) {
        if (!ep.ip && rec.Driver === 'bridge') continue;
        containers[c.id] = {
          Name: c.name,
          EndpointID: ep.endpointId,
          MacAddress: ep.mac ?? '',
          IPv4Address: ep.ip && n ? `${ep.ip}/${n.subnet.prefix}` : '',
          IPv6Address: '',
        };
      }
    }
    return { ...pub, Containers: containers };
  }
}

/** The host end joins the bridge; hairpin lets a container reach itself through a published port. */
function hostLinkLines(veth: string, bridge: string): string[] {
  return [
    `link set ${veth} master ${bridge}`,
    `link set ${veth} type bridge_slave hairpin on`,
    `link set ${veth} up`,
  ];
}

function emptyEndpoint(netId: string): Endpoint {
  return { networkId: netId, endpointId: '', aliases: [], requestedIp: '', requestedMac: '' };
}

function endpointView(n: NetState, ep: Endpoint | undefined, c: ContainerNet): Record<string, unknown> {
  const user = n.rec.Name !== 'bridge' && n.rec.Driver === 'bridge';
  return {
    IPAMConfig: ep?.requestedIp ? { IPv4Address: ep.requestedIp } : null,
    Links: null,
    Aliases: ep && user ? [...ep.aliases, c.id.slice(0, 12)] : null,
    MacAddress: ep?.mac ?? '',
    DriverOpts: null,
    NetworkID: n.rec.Id,
    EndpointID: ep?.ip ? ep.endpointId : '',
    Gateway: ep?.ip ? intToIp(n.gateway) : '',
    IPAddress: ep?.ip ?? '',
    IPPrefixLen: ep?.ip ? n.subnet.prefix : 0,
    IPv6Gateway: '',
    GlobalIPv6Address: '',
    GlobalIPv6PrefixLen: 0,
    DNSNames: ep?.ip && user ? [c.name, c.id.slice(0, 12), ...ep.aliases] : null,
  };
}

function forbidden(message: string): BerthError {
  return new BerthError('Forbidden', message);
}

function labelMatches(labels: Record<string, string>, f: string): boolean {
  const eq = f.indexOf('=');
  return eq < 0 ? f in labels : labels[f.slice(0, eq)] === f.slice(eq + 1);
}

/**
 * The network room's types.
 *
 * Lifecycle of a network: create (record + bridge + firewall sync + DNS for user networks) ->
 * containers connect/disconnect -> remove (refused while endpoints exist). The default `bridge`
 * network and `host`/`none` always exist.
 *
 * Lifecycle of a container's networking: prepare (at create: the wanted endpoints, ports, DNS and
 * hosts options, checked) -> setUp (at each start: a network namespace bind-mounted under the exec
 * root, one veth per endpoint, leased addresses persisted, published ports held and DNATed) ->
 * tearDown (at each exit: leases released, namespace unmounted, which destroys its veths) ->
 * forget (at rm).
 */
import type { PortBindings, PortMapping } from './ports.js';

export interface NetworkConfig {
  /** default bridge device name ("bridge" in daemon.json) */
  bridge: string;
  /** default bridge address and prefix, e.g. 172.17.0.1/16 ("bip") */
  bip?: string;
  /** pools for new networks ("default-address-pools") */
  defaultAddressPools: { base: string; size: number }[];
  /** prefix of our iptables chains */
  chainPrefix: string;
  /** default DNS servers for containers ("dns") */
  dns: string[];
}

export interface IpamConfig {
  Subnet: string;
  Gateway: string;
  IPRange?: string;
}

/** A network as Docker's /networks answers it, plus the bridge device behind it. */
export interface NetworkRecord {
  Name: string;
  Id: string;
  Created: string;
  Scope: 'local';
  Driver: 'bridge' | 'host' | 'null';
  EnableIPv6: boolean;
  IPAM: { Driver: 'default'; Options: Record<string, string> | null; Config: IpamConfig[] };
  Internal: boolean;
  Attachable: boolean;
  Ingress: boolean;
  ConfigFrom: { Network: string };
  ConfigOnly: boolean;
  Options: Record<string, string>;
  Labels: Record<string, string>;
  /** the bridge device ('' for host and none) */
  bridge: string;
}

/** One container on one network. */
export interface Endpoint {
  networkId: string;
  endpointId: string;
  aliases: string[];
  /** --ip (IPAMConfig.IPv4Address) */
  requestedIp: string;
  /** --mac-address */
  requestedMac: string;
  /** while running: the lease and the link */
  ip?: string;
  mac?: string;
  iface?: string;
  hostVeth?: string;
}

/** What the network room keeps about one container (persisted atomically per container). */
export interface ContainerNet {
  id: string;
  name: string;
  hostname: string;
  domainname: string;
  /** HostConfig.NetworkMode as given: default, bridge, host, none, container:<id>, or a network */
  mode: string;
  endpoints: Endpoint[];
  bindings: PortBindings;
  publishAll: boolean;
  exposed: string[];
  dns: string[];
  dnsSearch: string[];
  dnsOptions: string[];
  extraHosts: string[];
  /** bits per second, 0 = unlimited */
  rate: number;
  /** while running */
  netns?: string;
  /** container:<id> mode: the container whose namespace this one joined */
  joined?: string;
  ports?: PortMapping[];
}

/** host: the host's; private: a new one the runtime makes; path: join that one. */
export type NetnsMode = { kind: 'host' } | { kind: 'private' } | { kind: 'path'; path: string };

/**
 * The resolved compose model (the Compose Specification's canonical long forms, snake_case as in
 * the files). `load.ts` turns files into a Project; `config` prints it back as YAML; the config
 * hash is computed over a service's entry; `containers.ts` turns a service into an Engine API body.
 */

export type DependsCondition = 'service_started' | 'service_healthy' | 'service_completed_successfully';

export interface PortConfig {
  target: number;
  published?: string;
  host_ip?: string;
  protocol: 'tcp' | 'udp' | 'sctp';
  mode?: string;
}

export interface MountConfig {
  type: 'volume' | 'bind' | 'tmpfs';
  /** Volume name as written (project-local) or absolute host path; absent for anonymous volumes. */
  source?: string;
  target: string;
  read_only?: boolean;
  bind?: { propagation?: string; create_host_path?: boolean; selinux?: string };
  volume?: { nocopy?: boolean };
  tmpfs?: { size?: number; mode?: number };
}

export interface ServiceNetwork {
  aliases?: string[];
  ipv4_address?: string;
  ipv6_address?: string;
  priority?: number;
}

export interface HealthcheckConfig {
  test?: string[];
  interval?: string;
  timeout?: string;
  retries?: number;
  start_period?: string;
  start_interval?: string;
  disable?: boolean;
}

export interface ResourceSpec {
  cpus?: string;
  memory?: number;
  pids?: number;
}

export interface DeployConfig {
  replicas?: number;
  resources?: { limits?: ResourceSpec; reservations?: ResourceSpec };
  labels?: Record<string, string>;
}

export interface BuildConfig {
  context: string;
  dockerfile?: string;
  args?: Record<string, string | null>;
  target?: string;
  labels?: Record<string, string>;
  no_cache?: boolean;
  pull?: boolean;
  network?: string;
}

export interface ServiceConfig {
  image?: string;
  build?: BuildConfig;
  command?: string[] | null;
  entrypoint?: string[] | null;
  environment?: Record<string, string | null>;
  env_file?: string[];
  ports?: PortConfig[];
  expose?: string[];
  volumes?: MountConfig[];
  networks?: Record<string, ServiceNetwork | null>;
  network_mode?: string;
  depends_on?: Record<string, { condition: DependsCondition; required: boolean; restart?: boolean }>;
  healthcheck?: HealthcheckConfig;
  restart?: string;
  deploy?: DeployConfig;
  labels?: Record<string, string>;
  container_name?: string;
  hostname?: string;
  domainname?: string;
  user?: string;
  working_dir?: string;
  stop_signal?: string;
  stop_grace_period?: string;
  tmpfs?: string[];
  ulimits?: Record<string, { soft: number; hard: number }>;
  extra_hosts?: string[];
  profiles?: string[];
  init?: boolean;
  privileged?: boolean;
  read_only?: boolean;
  cap_add?: string[];
  cap_drop?: string[];
  tty?: boolean;
  stdin_open?: boolean;
  dns?: string[];
  dns_search?: string[];
  pull_policy?: string;
  scale?: number;
  pid?: string;
  ipc?: string;
  shm_size?: number;
  security_opt?: string[];
  mem_limit?: number;
  mem_reservation?: number;
  cpus?: string;
  cpu_shares?: number;
  pids_limit?: number;
  platform?: string;
  logging?: { driver?: string; options?: Record<string, string> };
  sysctls?: Record<string, string>;
  extends?: { service: string; file?: string };
}

export interface NetworkConfig {
  name?: string;
  driver?: string;
  driver_opts?: Record<string, string>;
  external?: boolean;
  internal?: boolean;
  attachable?: boolean;
  enable_ipv6?: boolean;
  labels?: Record<string, string>;
  ipam?: { driver?: string; config?: { subnet?: string; gateway?: string; ip_range?: string }[] };
}

export interface VolumeConfig {
  name?: string;
  driver?: string;
  driver_opts?: Record<string, string>;
  external?: boolean;
  labels?: Record<string, string>;
}

export interface Project {
  name: string;
  workingDir: string;
  configFiles: string[];
  /** Enabled services only (profiles applied), by name. */
  services: Record<string, ServiceConfig>;
  /** Services left out by profiles (down and ps still recognise their containers). */
  disabled: Record<string, ServiceConfig>;
  networks: Record<string, NetworkConfig>;
  volumes: Record<string, VolumeConfig>;
  /** The environment interpolation used (process env over .env). */
  environment: Record<string, string>;
}

/** The resource names on the engine. */
export function networkName(p: Project, key: string): string {
  return p.networks[key]?.name ?? `${p.name}_${key}`;
}

export function volumeName(p: Project, key: string): string {
  return p.volumes[key]?.name ?? `${p.name}_${key}`;
}

export function replicasOf(s: ServiceConfig): number {
  return s.deploy?.replicas ?? s.scale ?? 1;
}

/** The networks a service joins: its own list, else `default`, none under network_mode. */
export function serviceNetworks(s: ServiceConfig): string[] {
  if (s.network_mode) return [];
  const keys = Object.keys(s.networks ?? {});
  return keys.length ? keys : ['default'];
}

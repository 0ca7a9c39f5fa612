/**
 * Containers: records, their state machine, and what a create request may say.
 *
 * Lifecycle: create (record + writable snapshot) -> start (rootfs mounted, conmon+runc) -> running
 * [<-> paused] -> exited (exit code recorded, rootfs unmounted) -> start again, or remove (snapshot
 * and record deleted). `--rm` containers remove themselves after exiting.
 */
import type { Digest } from '../../common/digest.js';
import type { MountPoint } from '../volumes/volumes.js';

export type Status = 'created' | 'running' | 'paused' | 'restarting' | 'removing' | 'exited' | 'dead';

/** Docker's container Config (the part Berth acts on; unknown fields are kept as given). */
export interface ContainerConfig {
  Hostname: string;
  Domainname: string;
  User: string;
  AttachStdin: boolean;
  AttachStdout: boolean;
  AttachStderr: boolean;
  ExposedPorts?: Record<string, object>;
  Tty: boolean;
  OpenStdin: boolean;
  StdinOnce: boolean;
  Env: string[];
  Cmd: string[] | null;
  Image: string;
  Volumes?: Record<string, object> | null;
  WorkingDir: string;
  Entrypoint: string[] | null;
  Labels: Record<string, string>;
  StopSignal?: string;
  StopTimeout?: number;
  Healthcheck?: HealthConfig;
}

/** Docker's HealthConfig; durations in nanoseconds, 0 = inherit / default. `["NONE"]` disables. */
export interface HealthConfig {
  Test?: string[];
  Interval?: number;
  Timeout?: number;
  StartPeriod?: number;
  StartInterval?: number;
  Retries?: number;
}

export interface HealthLogEntry {
  Start: string;
  End: string;
  ExitCode: number;
  Output: string;
}

export interface Health {
  Status: 'starting' | 'healthy' | 'unhealthy';
  FailingStreak: number;
  Log: HealthLogEntry[];
}

export interface RestartPolicy {
  Name: '' | 'no' | 'always' | 'unless-stopped' | 'on-failure';
  MaximumRetryCount: number;
}

/** Docker's HostConfig (the fields Berth implements). */
export interface HostConfig {
  AutoRemove: boolean;
  NetworkMode: string;
  PidMode: string;
  IpcMode: string;
  UTSMode: string;
  RestartPolicy: RestartPolicy;
  Privileged: boolean;
  ReadonlyRootfs: boolean;
  CapAdd: string[] | null;
  CapDrop: string[] | null;
  SecurityOpt: string[] | null;
  Memory: number;
  MemorySwap: number;
  MemoryReservation: number;
  OomKillDisable: boolean;
  OomScoreAdj?: number;
  NanoCpus: number;
  CpuShares: number;
  CpuPeriod: number;
  CpuQuota: number;
  CpusetCpus: string;
  CpusetMems: string;
  PidsLimit: number | null;
  BlkioWeight: number;
  ShmSize: number;
  Init: boolean | null;
  ConsoleSize: [number, number];
  Tmpfs?: Record<string, string>;
  Ulimits?: { Name: string; Soft: number; Hard: number }[] | null;
  GroupAdd?: string[] | null;
  LogConfig: { Type: string; Config: Record<string, string> };
  Devices?: DeviceMapping[];
  BlkioDeviceReadBps?: ThrottleDevice[];
  BlkioDeviceWriteBps?: ThrottleDevice[];
  [key: string]: unknown;
}

export interface DeviceMapping {
  PathOnHost: string;
  PathInContainer: string;
  CgroupPermissions: string;
}

export interface ThrottleDevice {
  Path: string;
  Rate: number;
}

export interface State {
  Status: Status;
  Running: boolean;
  Paused: boolean;
  Restarting: boolean;
  OOMKilled: boolean;
  Dead: boolean;
  Pid: number;
  ExitCode: number;
  Error: string;
  StartedAt: string;
  FinishedAt: string;
  Health?: Health;
}

export interface ContainerRecord {
  id: string;
  name: string;
  created: string;
  image: string;
  imageId: Digest;
  path: string;
  args: string[];
  config: ContainerConfig;
  hostConfig: HostConfig;
  state: State;
  restartCount: number;
  /** Set when the user stopped it (unless-stopped must not come back at daemon start). */
  stoppedByUser: boolean;
  /** Monotonic start counter: tells one run's exit from the next's. */
  generation: number;
  /** Volumes, binds and tmpfs mounts (the volumes room's MountPoints). */
  mounts?: MountPoint[];
}

export const ZERO_TIME = '0001-01-01T00:00:00Z';

export function newState(): State {
  return {
    Status: 'created',
    Running: false,
    Paused: false,
    Restarting: false,
    OOMKilled: false,
    Dead: false,
    Pid: 0,
    ExitCode: 0,
    Error: '',
    StartedAt: ZERO_TIME,
    FinishedAt: ZERO_TIME,
  };
}

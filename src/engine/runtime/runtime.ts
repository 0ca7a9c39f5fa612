/**
 * Runtime: running OCI bundles with runc under conmon (one small monitor per container).
 *
 * Lifecycle of a container process: create (conmon forks, runc creates the container, conmon
 * reports the pid on the sync pipe) -> start (runc start) -> attach / resize / kill -> exit (conmon
 * writes the exit file) -> delete (runc delete). conmon keeps the container's stdio, its log and its
 * exit code, so containers outlive the daemon; recover() finds them again.
 */
import type { Readable } from 'node:stream';

export interface Mount {
  destination: string;
  type: string;
  source: string;
  options?: string[];
}

export interface SpecInput {
  id: string;
  rootfs: string;
  readonlyRootfs?: boolean;
  args: string[];
  env: string[];
  cwd: string;
  user: { uid: number; gid: number; additionalGids?: number[] };
  hostname: string;
  terminal: boolean;
  namespaces: {
    pid: 'private' | 'host' | { path: string };
    ipc: 'private' | 'host' | { path: string };
    uts: 'private' | 'host';
    network: 'private' | 'host' | { path: string };
  };
  mounts: Mount[];
  resources: Resources;
  ulimits?: { name: string; soft: number; hard: number }[];
  capAdd?: string[];
  capDrop?: string[];
  privileged?: boolean;
  noNewPrivileges?: boolean;
  seccomp?: 'default' | 'unconfined' | { profile: unknown };
  shmSize?: number;
  cgroupsPath: string;
  oomScoreAdj?: number;
  sysctls?: Record<string, string>;
  /** Host devices made available inside (docker --device). */
  devices?: { hostPath: string; path: string; permissions: string }[];
}

export interface Resources {
  memory?: number;
  memorySwap?: number;
  memoryReservation?: number;
  oomKillDisable?: boolean;
  cpuShares?: number;
  cpuPeriod?: number;
  cpuQuota?: number;
  nanoCpus?: number;
  cpusetCpus?: string;
  cpusetMems?: string;
  pidsLimit?: number;
  blkioWeight?: number;
  blkioDeviceReadBps?: { path: string; rate: number }[];
  blkioDeviceWriteBps?: { path: string; rate: number }[];
}

export type OutputStream = 'stdout' | 'stderr';

/** A live connection to a container's (or exec's) stdio through conmon's attach socket. */
export interface AttachConnection {
  onData(cb: (stream: OutputStream, data: Buffer) => void): void;
  onEnd(cb: () => void): void;
  write(data: Buffer): void;
  /** Half-closes stdin: the container sees EOF. */
  endStdin(): void;
  close(): void;
}

export interface CreateOptions {
  terminal: boolean;
  /** Keep the container's stdin open (docker -i). */
  stdin: boolean;
  /** Close stdin when the first attached client detaches (StdinOnce). */
  stdinOnce: boolean;
  logPath: string;
  consoleSize?: { rows: number; cols: number };
}

export interface ExecHandle {
  pid: number;
  exitCode: Promise<number>;
  attach?: AttachConnection;
  bundle: string;
}

export type { Readable };

import { createRequire } from 'node:module';

/** The project's own N-API addon (native/berth_native.c): syscalls Node lacks. */
export interface Native {
  mknod(path: string, mode: number, major: number, minor: number): void;
  lsetxattr(path: string, name: string, value: Buffer): void;
  lgetxattr(path: string, name: string): Buffer | null;
  llistxattr(path: string): string[];
  mount(source: string, target: string, fstype: string, flags: number, data: string): void;
  umount2(target: string, flags: number): void;
  /** Absent from an addon built before it was added (the launcher then runs without re-exec). */
  execve?(path: string, argv: string[], env: string[]): never;
  /** glibc's malloc_trim(0); absent from an older addon. */
  mallocTrim?(): boolean;
  /** A sealed, close-on-exec memfd copy of a file (its fd); absent from an older addon. */
  sealedCopy?(path: string): number;
  /** pipe2(O_CLOEXEC): [read end, write end]; absent from an older addon. */
  pipe?(): [number, number];
  /**
   * posix_spawn in a new session with default signal handling; stdio[i] becomes the child's fd i
   * (-1: /dev/null). The pid; absent from an older addon.
   */
  spawnDetached?(path: string, argv: string[], env: string[], cwd: string, stdio: number[]): number;
  /** waitpid(WNOHANG): the exit code (128+signal), -1 while running; absent from an older addon. */
  reap?(pid: number): number;
}

export const MS_RDONLY = 1;
export const MS_NOSUID = 2;
export const MS_NODEV = 4;
export const MS_NOEXEC = 8;
export const MS_REMOUNT = 32;
export const MS_BIND = 4096;
export const MS_REC = 16384;
export const MS_PRIVATE = 1 << 18;
export const MNT_DETACH = 2;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;
export const S_IFIFO = 0o010000;

const require = createRequire(import.meta.url);
// dist/src/common/native.js -> <root>/build/Release
export const native: Native = require('../../../build/Release/berth_native.node') as Native;

/**
 * The default seccomp profile: Debian's containers-common ships the maintained default profile
 * (the same policy shape as Docker's) at /usr/share/containers/seccomp.json. It is in the Docker
 * profile format; runc wants the OCI shape, filtered for this architecture and capability set.
 */
import { readFileSync } from 'node:fs';
import { log } from '../../common/log.js';

export const DEFAULT_PROFILE_PATH = '/usr/share/containers/seccomp.json';

interface DockerRule {
  names?: string[];
  name?: string;
  action: string;
  args?: unknown[];
  errnoRet?: number;
  includes?: { arches?: string[]; caps?: string[]; minKernel?: string };
  excludes?: { arches?: string[]; caps?: string[] };
}

interface DockerProfile {
  defaultAction: string;
  defaultErrnoRet?: number;
  archMap?: { architecture: string; subArchitectures?: string[] }[];
  syscalls?: DockerRule[];
}

export interface OciSeccomp {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures: string[];
  syscalls: { names: string[]; action: string; args?: unknown[]; errnoRet?: number }[];
}

const GO_ARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: 'x86' };
const SCMP_ARCH: Record<string, string> = {
  amd64: 'SCMP_ARCH_X86_64',
  arm64: 'SCMP_ARCH_AARCH64',
  arm: 'SCMP_ARCH_ARM',
  x86: 'SCMP_ARCH_X86',
};

let cached: DockerProfile | null | undefined;

function loadDefault(): DockerProfile | null {
  if (cached !== undefined) return cached;
  try {
    cached = JSON.parse(readFileSync(DEFAULT_PROFILE_PATH, 'utf8')) as DockerProfile;
  } catch (err) {
    log.warn('no default seccomp profile: containers run without seccomp', {
      path: DEFAULT_PROFILE_PATH,
      error: String(err),
    });
    cached = null;
  }
  return cached;
}

/** Converts a Docker-format profile for this architecture and the container's capabilities. */
export function toOciSeccomp(profile: unknown, caps: string[]): OciSeccomp {
  const p = profile as DockerProfile;
  if (typeof p !== 'object' || p === null || typeof p.defaultAction !== 'string')
    throw new Error('invalid seccomp profile: defaultAction is required');
  const arch = GO_ARCH[process.arch] ?? process.arch;
  const scmp = SCMP_ARCH[arch];
  const entry = p.archMap?.find((a) => a.architecture === scmp);
  const architectures = entry ? [entry.architecture, ...(entry.subArchitectures ?? [])] : scmp ? [scmp] : [];
  const capSet = new Set(caps);
  const syscalls: OciSeccomp['syscalls'] = [];
  for (const r of p.syscalls ?? []) {
    const inc = r.includes ?? {};
    const exc = r.excludes ?? {};
    if (inc.arches?.length && !inc.arches.includes(arch)) continue;
    if (inc.caps?.length && !inc.caps.every((c) => capSet.has(c))) continue;
    if (exc.arches?.length && exc.arches.includes(arch)) continue;
    if (exc.caps?.length && exc.caps.some((c) => capSet.has(c))) continue;
    const names = r.names ?? (r.name ? [r.name] : []);
    if (!names.length) continue;
    syscalls.push({
      names,
      action: r.action,
      ...(r.args?.length ? { args: r.args } : {}),
      ...(r.errnoRet !== undefined ? { errnoRet: r.errnoRet } : {}),
    });
  }
  return {
    defaultAction: p.defaultAction,
    ...(p.defaultErrnoRet !== undefined ? { defaultErrnoRet: p.defaultErrnoRet } : {}),
    architectures,
    syscalls,
  };
}

export function defaultSeccomp(caps: string[]): OciSeccomp | undefined {
  const p = loadDefault();
  return p ? toOciSeccomp(p, caps) : undefined;
}

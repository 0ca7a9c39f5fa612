/**
 * Loading a project: find the files, read `.env`/--env-file, parse YAML, interpolate, check and
 * normalize each file, merge them, resolve `extends`, apply profiles, fold env_file into
 * environment, then check the project as a whole. Any problem is a ComposeError, before anything
 * touches the engine.
 */
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { readEnvFile } from './envfile.js';
import { ComposeError } from './errors.js';
import { interpolateTree } from './interpolate.js';
import { mergeResources, mergeService } from './merge.js';
import type { Project, ServiceConfig } from './model.js';
import { replicasOf, serviceNetworks } from './model.js';
import { normalizeFile, type RawFile } from './normalize.js';

export interface LoadOptions {
  files?: string[];
  projectName?: string;
  projectDirectory?: string;
  profiles?: string[];
  envFiles?: string[];
  /** Services named on the command line: enabled even when their profiles are not. */
  targets?: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  warn?: (msg: string) => void;
}

const DEFAULT_FILES = ['compose.yaml', 'compose.yml', 'docker-compose.yml', 'docker-compose.yaml'];
const OVERRIDE_FILES = [
  'compose.override.yaml',
  'compose.override.yml',
  'docker-compose.override.yml',
  'docker-compose.override.yaml',
];

/** The default files: the first compose file found in cwd or a parent directory, plus its override. */
export function findComposeFiles(cwd: string): string[] {
  let dir = path.resolve(cwd);
  for (;;) {
    const found = DEFAULT_FILES.map((f) => path.join(dir, f)).find((f) => existsSync(f));
    if (found) {
      const override = OVERRIDE_FILES.map((f) => path.join(dir, f)).find((f) => existsSync(f));
      return override ? [found, override] : [found];
    }
    const parent = path.dirname(dir);
    if (parent === dir)
      throw new ComposeError(
        `no configuration file provided: not found (looked for ${DEFAULT_FILES.join(', ')} in ${cwd} and its parents)`,
      );
    dir = parent;
  }
}

/** Docker Compose's project-name rule: lowercase letters, digits, dashes and underscores, starting alphanumeric. */
export function normalizeProjectName(name: string): string {
  return name
    .toLowerCase()
    .replace(/[^a-z0-9_-]/g, '')
    .replace(/^[^a-z0-9]+/, '');
}

function readYaml(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ComposeError(`cannot read ${file}: ${(err as Error).message}`);
  }
  try {
    return parseYaml(text, { merge: true, maxAliasCount: 10000 });
  } catch (err) {
    if (err instanceof YAMLParseError) throw new ComposeError(`${file}: yaml: ${err.message}`);
    throw err;
  }
}

function withFile<T>(file: string, f: () => T): T {
  try {
    return f();
  } catch (err) {
    if (err instanceof ComposeError && !err.message.startsWith(file))
      throw new ComposeError(`validating ${file}: ${err.message}`);
    throw err;
  }
}

function loadFile(
  file: string,
  baseDir: string,
  env: Record<string, string>,
  warn: (m: string) => void,
): RawFile {
  return withFile(file, () => normalizeFile(interpolateTree(readYaml(file), env), baseDir, warn));
}

export function loadProject(opts: LoadOptions = {}): Project {
  const cwd = opts.cwd ?? process.cwd();
  const procEnv = opts.env ?? process.env;
  const warn = opts.warn ?? ((m: string) => process.stderr.write(`WARN[0000] ${m}\n`));
  const files = (
    opts.files?.length
      ? opts.files
      : procEnv.COMPOSE_FILE
        ? procEnv.COMPOSE_FILE.split(procEnv.COMPOSE_PATH_SEPARATOR || ':')
        : findComposeFiles(cwd)
  ).map((f) => path.resolve(cwd, f));
  const projectDir = path.resolve(cwd, opts.projectDirectory ?? path.dirname(files[0]));

  // The environment for interpolation: the shell's over .env (or --env-file, in order).
  const dotEnv: Record<string, string> = {};
  const envFiles = opts.envFiles?.length
    ? opts.envFiles.map((f) => path.resolve(cwd, f))
    : [path.join(projectDir, '.env')];
  for (const f of envFiles) {
    const required = !!opts.envFiles?.length;
    if (!required && !existsSync(f)) continue;
    Object.assign(
      dotEnv,
      readEnvFile(f, (k) => procEnv[k] ?? dotEnv[k], required),
    );
  }
  const env: Record<string, string> = { ...dotEnv };
  for (const [k, v] of Object.entries(procEnv)) if (v !== undefined) env[k] = v;

  let merged: RawFile = { services: {}, networks: {}, volumes: {} };
  for (const f of files) {
    if (!existsSync(f)) throw new ComposeError(`open ${f}: no such file or directory`);
    const one = loadFile(f, projectDir, env, warn);
    const services = { ...merged.services };
    for (const [name, s] of Object.entries(one.services))
      services[name] = services[name] ? mergeService(services[name], s) : s;
    merged = {
      name: one.name ?? merged.name,
      services,
      networks: mergeResources(merged.networks, one.networks),
      volumes: mergeResources(merged.volumes, one.volumes),
    };
  }

  const extendsCache = new Map<string, RawFile>();
  const resolved: Record<string, ServiceConfig> = {};
  for (const name of Object.keys(merged.services))
    resolved[name] = resolveExtends(name, merged.services, files[0], [], extendsCache, env, warn);

  const rawName =
    opts.projectName || procEnv.COMPOSE_PROJECT_NAME || merged.name || path.basename(projectDir);
  const name = normalizeProjectName(rawName);
  if (!name)
    throw new ComposeError(`project name ${JSON.stringify(rawName)} is empty once normalized: use -p`);
  if (opts.projectName && name !== opts.projectName)
    throw new ComposeError(
      `invalid project name ${JSON.stringify(opts.projectName)}: it must contain only lowercase letters, digits, dashes and underscores, and start with a letter or digit`,
    );

  for (const [sname, s] of Object.entries(resolved))
    resolved[sname] = finishEnvironment(s, env, `services.${sname}`);

  const { enabled, disabled } = applyProfiles(
    resolved,
    opts.profiles ?? profilesFromEnv(procEnv),
    opts.targets ?? [],
  );

  const project: Project = {
    name,
    workingDir: projectDir,
    configFiles: files,
    services: enabled,
    disabled,
    networks: merged.networks,
    volumes: merged.volumes,
    environment: env,
  };
  validateProject(project);
  if (Object.values(enabled).some((s) => serviceNetworks(s).includes('default')) && !project.networks.default)
    project.networks.default = {};
  for (const [k, n] of Object.entries(project.networks)) n.name ??= n.external ? k : `${name}_${k}`;
  for (const [k, v] of Object.entries(project.volumes)) v.name ??= v.external ? k : `${name}_${k}`;
  return project;
}

function profilesFromEnv(env: NodeJS.ProcessEnv): string[] {
  return (env.COMPOSE_PROFILES ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

function resolveExtends(
  name: string,
  services: Record<string, ServiceConfig>,
  file: string,
  chain: string[],
  cache: Map<string, RawFile>,
  env: Record<string, string>,
  warn: (m: string) => void,
): ServiceConfig {
  const s = services[name];
  if (!s)
    throw new ComposeError(`cannot extend service ${JSON.stringify(name)} in ${file}: service not found`);
  if (!s.extends) return s;
  const key = `${file}#${name}`;
  if (chain.includes(key))
    throw new ComposeError(
      `services.${name}.extends: circular reference: ${[...chain, key].map((k) => k.split('#')[1]).join(' -> ')}`,
    );
  const ext = s.extends;
  let baseServices = services;
  let baseFile = file;
  if (ext.file) {
    baseFile = ext.file;
    let f = cache.get(baseFile);
    if (!f) {
      if (!existsSync(baseFile))
        throw new ComposeError(`services.${name}.extends.file: ${baseFile} not found`);
      // Relative paths in an extended file are relative to that file.
      f = loadFile(baseFile, path.dirname(baseFile), env, warn);
      cache.set(baseFile, f);
    }
    baseServices = f.services;
  }
  if (!baseServices[ext.service])
    throw new ComposeError(
      `services.${name}.extends: service ${JSON.stringify(ext.service)} not found in ${baseFile}`,
    );
  const base = resolveExtends(ext.service, baseServices, baseFile, [...chain, key], cache, env, warn);
  const child: ServiceConfig = { ...s };
  delete child.extends;
  const out = mergeService(base, child);
  delete out.extends;
  return out;
}

/** env_file entries first, then `environment`; bare names take the value from the environment. */
function finishEnvironment(s: ServiceConfig, env: Record<string, string>, where: string): ServiceConfig {
  if (!s.env_file && !s.environment) return s;
  const out: Record<string, string | null> = {};
  for (const f of s.env_file ?? []) {
    try {
      Object.assign(
        out,
        readEnvFile(f, (k) => env[k]),
      );
    } catch (err) {
      throw new ComposeError(`${where}.env_file: ${(err as Error).message}`);
    }
  }
  for (const [k, v] of Object.entries(s.environment ?? {})) {
    if (v !== null) out[k] = v;
    else if (env[k] !== undefined) out[k] = env[k];
    else out[k] = null;
  }
  return { ...s, environment: out };
}

function applyProfiles(
  services: Record<string, ServiceConfig>,
  profiles: string[],
  targets: string[],
): { enabled: Record<string, ServiceConfig>; disabled: Record<string, ServiceConfig> } {
  const all = profiles.includes('*');
  const on = new Set(
    Object.entries(services)
      .filter(([, s]) => !s.profiles?.length || all || s.profiles.some((p) => profiles.includes(p)))
      .map(([n]) => n),
  );
  // A service named on the command line is enabled, and so is what it depends on.
  const queue = targets.filter((t) => services[t]);
  while (queue.length) {
    const t = queue.pop()!;
    if (on.has(t) && !targets.includes(t)) continue;
    on.add(t);
    for (const d of Object.keys(services[t].depends_on ?? {})) if (services[d] && !on.has(d)) queue.push(d);
  }
  const enabled: Record<string, ServiceConfig> = {};
  const disabled: Record<string, ServiceConfig> = {};
  for (const [n, s] of Object.entries(services)) (on.has(n) ? enabled : disabled)[n] = s;
  return { enabled, disabled };
}

function validateProject(p: Project): void {
  const all = { ...p.services, ...p.disabled };
  for (const [name, s] of Object.entries(p.services)) {
    const at = `services.${name}`;
    if (!s.image && !s.build)
      throw new ComposeError(
        `${at}: service ${JSON.stringify(name)} has neither an image nor a build context specified`,
      );
    for (const [dep, d] of Object.entries(s.depends_on ?? {})) {
      if (dep === name)
        throw new ComposeError(`${at}.depends_on: service ${JSON.stringify(name)} depends on itself`);
      if (!all[dep]) {
        if (d.required)
          throw new ComposeError(
            `${at}.depends_on: service ${JSON.stringify(name)} depends on undefined service ${JSON.stringify(dep)}`,
          );
        continue;
      }
      if (!p.services[dep] && d.required)
        throw new ComposeError(
          `${at}.depends_on: service ${JSON.stringify(name)} depends on service ${JSON.stringify(dep)}, which is disabled by its profiles`,
        );
    }
    if (s.network_mode) {
      if (s.networks && Object.keys(s.networks).length)
        throw new ComposeError(`${at}: "network_mode" and "networks" cannot be combined`);
      const m = /^(service|container):(.+)$/.exec(s.network_mode);
      if (m?.[1] === 'service' && !p.services[m[2]])
        throw new ComposeError(
          `${at}.network_mode: service ${JSON.stringify(m[2])} is not defined or not enabled`,
        );
      if (
        !m &&
        !['none', 'host', 'bridge', 'default'].includes(s.network_mode) &&
        !s.network_mode.startsWith('container:')
      )
        throw new ComposeError(`${at}.network_mode: invalid network mode ${JSON.stringify(s.network_mode)}`);
    }
    for (const n of Object.keys(s.networks ?? {}))
      if (n !== 'default' && !p.networks[n])
        throw new ComposeError(
          `${at}.networks: service ${JSON.stringify(name)} refers to undefined network ${JSON.stringify(n)}`,
        );
    (s.volumes ?? []).forEach((m, i) => {
      if (m.type === 'volume' && m.source && !p.volumes[m.source])
        throw new ComposeError(
          `${at}.volumes[${i}]: service ${JSON.stringify(name)} refers to undefined volume ${JSON.stringify(m.source)}`,
        );
    });
    if (s.container_name && replicasOf(s) > 1)
      throw new ComposeError(
        `${at}: container_name ${JSON.stringify(s.container_name)} cannot be used with more than one replica`,
      );
  }
  checkCycles(p.services);
  checkPortClashes(p.services);
}

function checkCycles(services: Record<string, ServiceConfig>): void {
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (n: string, stack: string[]): void => {
    if (state.get(n) === 'done') return;
    if (state.get(n) === 'visiting') {
      const cycle = [...stack.slice(stack.indexOf(n)), n];
      throw new ComposeError(`dependency cycle detected: ${cycle.join(' -> ')}`);
    }
    state.set(n, 'visiting');
    const deps = Object.keys(services[n]?.depends_on ?? {}).filter((d) => services[d]);
    const ns = services[n]?.network_mode?.match(/^service:(.+)$/)?.[1];
    for (const d of ns ? [...deps, ns] : deps) visit(d, [...stack, n]);
    state.set(n, 'done');
  };
  for (const n of Object.keys(services).sort()) visit(n, []);
}

function checkPortClashes(services: Record<string, ServiceConfig>): void {
  const seen: { ip: string; port: number; proto: string; who: string }[] = [];
  for (const [name, s] of Object.entries(services)) {
    for (const p of s.ports ?? []) {
      if (!p.published || p.published.includes('-')) continue;
      const port = Number(p.published);
      if (port === 0) continue;
      const ip = p.host_ip ?? '';
      const any = (x: string) => x === '' || x === '0.0.0.0' || x === '::';
      if (replicasOf(s) > 1)
        throw new ComposeError(
          `services.${name}.ports: ${replicasOf(s)} replicas cannot all publish host port ${port}/${p.protocol}`,
        );
      const clash = seen.find(
        (o) => o.port === port && o.proto === p.protocol && (any(o.ip) || any(ip) || o.ip === ip),
      );
      if (clash)
        throw new ComposeError(
          clash.who === name
            ? `services.${name}.ports: host port ${port}/${p.protocol} is published twice`
            : `services.${name}.ports: host port ${port}/${p.protocol} is already published by service ${JSON.stringify(clash.who)}`,
        );
      seen.push({ ip, port, proto: p.protocol, who: name });
    }
  }
}

/** Services in dependency order (dependencies first); `subset` with their dependencies unless noDeps. */
export function dependencyOrder(p: Project, subset?: string[], noDeps = false): string[] {
  const want = new Set<string>();
  const add = (n: string) => {
    if (want.has(n) || !p.services[n]) return;
    want.add(n);
    if (!noDeps) for (const d of Object.keys(p.services[n].depends_on ?? {})) add(d);
  };
  for (const n of subset?.length ? subset : Object.keys(p.services)) add(n);
  const out: string[] = [];
  const visit = (n: string) => {
    if (out.includes(n)) return;
    for (const d of Object.keys(p.services[n].depends_on ?? {})) if (want.has(d)) visit(d);
    out.push(n);
  };
  for (const n of Object.keys(p.services).sort()) if (want.has(n)) visit(n);
  return out;
}

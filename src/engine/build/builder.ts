/**
 * The classic builder: runs a parsed Dockerfile step by step (see build.ts for the lifecycle).
 */
import { parseGoDuration } from '../../common/units.js';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, lstatSync, promises as fsp, readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { readJsonIfExists, removeTempFiles, writeJsonAtomic } from '../../common/atomic.js';
import { type Digest, shortId } from '../../common/digest.js';
import { BerthError, invalidArgument, notFound } from '../../common/errors.js';
import { log } from '../../common/log.js';
import { extractLayer } from '../../common/safetar.js';
import { decompressStream } from '../../common/decompress.js';
import { familiarString, parseReference, withDefaultTag } from '../../common/reference.js';
import { resolveInRoot } from '../../common/rootpath.js';
import type { ContainerService } from '../containers/service.js';
import { mountPlaceholders } from '../volumes/mounts.js';
import type { ContentStore } from '../content/content.js';
import type { ImageRecord } from '../images/images.js';
import type { ContainerConfig, ImageConfig } from '../images/manifest.js';
import type { ImageStore } from '../images/store.js';
import { diffTar } from '../snapshots/diff.js';
import type { Snapshotter } from '../snapshots/snapshots.js';
import type { BuildMessage, BuildOptions, PruneResult, PullFn } from './build.js';
import { type BuildContext, type ContextSource, receiveContext } from './context.js';
import {
  archiveKind,
  checksumInto,
  copyNode,
  type CopyOwner,
  mkdirOwned,
  resolveSources,
  type SourceFile,
} from './copy.js';
import { type Dockerfile, type Instruction, parseDockerfile, parseError, parseNameValues, splitWords } from './dockerfile.js';
import { type Env, envMap, ShellLex } from './shell.js';

export interface BuilderDeps {
  images: ImageStore;
  content: ContentStore;
  snapshots: Snapshotter;
  containers: ContainerService;
}

/** A RUN that exited non-zero: Docker reports its code in errorDetail. */
export class RunFailedError extends BerthError {
  constructor(
    message: string,
    readonly code: number,
  ) {
    super('Internal', message);
  }
}

const PROXY_ARGS = new Set([
  'HTTP_PROXY',
  'http_proxy',
  'HTTPS_PROXY',
  'https_proxy',
  'FTP_PROXY',
  'ftp_proxy',
  'NO_PROXY',
  'no_proxy',
  'ALL_PROXY',
  'all_proxy',
]);
const DEFAULT_SHELL = ['/bin/sh', '-c'];
const LAYER_MEDIA_TYPE = 'application/vnd.docker.image.rootfs.diff.tar';

interface Stage {
  index: number;
  name?: string;
  from: Instruction;
  base: string;
  body: Instruction[];
}

/** The state of a stage between steps. */
interface State {
  imageId: Digest;
  config: ImageConfig;
  layers: ImageRecord['layers'];
  chainId: Digest | null;
  args: Map<string, string | undefined>;
  /** CMD given in this stage (ENTRYPOINT then keeps it). */
  cmdSet: boolean;
}

function sha(...parts: unknown[]): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex');
}

/** A HEALTHCHECK flag's Go duration -> nanoseconds. */
function parseDuration(s: string, flag: string): number {
  const n = parseGoDuration(s);
  if (n === undefined) throw invalidArgument(`invalid duration for --${flag}: ${s}`);
  return n;
}

export class Builder {
  private readonly root: string;
  readonly tmp: string;
  private readonly cacheFile: string;
  private cache: Record<string, Digest> = {};
  private cacheWrite: Promise<void> = Promise.resolve();

  constructor(
    private readonly d: BuilderDeps,
    dataRoot: string,
  ) {
    this.root = path.join(dataRoot, 'build');
    this.tmp = path.join(this.root, 'tmp');
    this.cacheFile = path.join(this.root, 'cache.json');
  }

  /** Removes what a crash left (mounted steps, contexts) and loads the cache index. */
  async init(): Promise<void> {
    await fsp.mkdir(this.tmp, { recursive: true, mode: 0o700 });
    await removeTempFiles(this.root);
    for (const name of await fsp.readdir(this.tmp)) {
      const p = path.join(this.tmp, name);
      if (name.startsWith('build-')) {
        await this.d.snapshots.unmount(path.join(p, 'root')).catch(() => undefined);
        await this.d.snapshots.removeActive(name).catch(() => undefined);
      }
      await fsp.rm(p, { recursive: true, force: true });
    }
    this.cache = (await readJsonIfExists<Record<string, Digest>>(this.cacheFile).catch(() => undefined)) ?? {};
  }

  private saveCache(): Promise<void> {
    this.cacheWrite = this.cacheWrite.then(() => writeJsonAtomic(this.cacheFile, this.cache, 0o600));
    return this.cacheWrite;
  }

  /**
   * Receives the context and parses the Dockerfile. Errors here come before any output (Docker
   * answers them with a plain HTTP error).
   */
  async prepare(body: Readable, opts: BuildOptions): Promise<BuildRun> {
    for (const t of opts.tags) {
      try {
        if (parseReference(t).digest) throw new Error('digest');
      } catch {
        throw invalidArgument(`invalid reference format: ${t}`);
      }
    }
    const dir = path.join(this.tmp, `ctx-${randomBytes(8).toString('hex')}`);
    let ctx: BuildContext | undefined;
    try {
      ctx = await receiveContext(body, dir);
      const name = ctx.dockerfileOnly ? 'Dockerfile' : opts.dockerfile || 'Dockerfile';
      const file = await ctx.readFile(name).catch(() => undefined);
      if (!file) throw invalidArgument(`Cannot locate specified Dockerfile: ${name}`);
      const df = parseDockerfile(file.toString('utf8'));
      return new BuildRun(this, this.d, df, ctx, opts);
    } catch (err) {
      await (ctx?.remove() ?? fsp.rm(dir, { recursive: true, force: true }));
      if (err instanceof BerthError) throw err;
      throw invalidArgument(`failed to read the build context: ${(err as Error).message}`);
    }
  }

  cacheLookup(key: string): Digest | undefined {
    const id = this.cache[key];
    if (id && this.d.images.tryResolve(id)) return id;
    return undefined;
  }

  async cacheStore(key: string, id: Digest): Promise<void> {
    this.cache[key] = id;
    await this.saveCache();
  }

  /** A private directory under the builder's tmp (removed at start-up if a crash leaves it). */
  tmpDir(prefix: string): string {
    return path.join(this.tmp, `${prefix}-${randomBytes(8).toString('hex')}`);
  }

  /** Forgets the cache and deletes the intermediate images only the cache kept. */
  async prune(): Promise<PruneResult> {
    const ids = new Set(Object.values(this.cache));
    this.cache = {};
    await this.saveCache();
    const deleted: string[] = [];
    let reclaimed = 0;
    // Children before parents: repeat while something was removed.
    for (let again = true; again; ) {
      again = false;
      for (const id of ids) {
        const img = this.d.images.tryResolve(id);
        if (!img) {
          ids.delete(id);
          continue;
        }
        if (img.repoTags.length || img.repoDigests.length) continue;
        const usage = this.d.containers.imageUsage(id);
        if (usage.running.length || usage.stopped.length) continue;
        const hasChild = this.d.images.list({ all: true }).some((i) => i.record.parent === id);
        if (hasChild) continue;
        try {
          await this.d.images.remove(id, { noPrune: true });
          deleted.push(id);
          reclaimed += img.record.layers.at(-1)?.unpackedSize ?? 0;
          ids.delete(id);
          again = true;
        } catch (err) {
          log.debug('build cache prune skipped an image', { id, error: String(err) });
        }
      }
    }
    return { CachesDeleted: deleted, SpaceReclaimed: reclaimed };
  }
}

/** One build: its context, its Dockerfile and the stages it needs. */
export class BuildRun {
  private readonly lex: ShellLex;
  private readonly stages: Stage[] = [];
  private readonly globalArgs: Instruction[] = [];
  private readonly results = new Map<number, State>();
  private readonly consumed = new Set<string>();
  private readonly needed: Stage[];
  private readonly total: number;
  private step = 0;
  private out: (m: BuildMessage) => void = () => undefined;
  private pull: PullFn = () => Promise.reject(notFound('pulling is not available'));
  private readonly epoch?: Date;
  private readonly globals = new Map<string, string | undefined>();
  private readonly mounts: string[] = [];

  constructor(
    private readonly builder: Builder,
    private readonly d: BuilderDeps,
    private readonly df: Dockerfile,
    private readonly context: BuildContext,
    private readonly opts: BuildOptions,
  ) {
    this.lex = new ShellLex(df.escape);
    const sde = opts.buildArgs.SOURCE_DATE_EPOCH;
    if (sde !== undefined && sde !== null) {
      if (!/^\d+$/.test(sde)) throw invalidArgument(`invalid SOURCE_DATE_EPOCH: ${sde}`);
      this.epoch = new Date(Number(sde) * 1000);
      this.consumed.add('SOURCE_DATE_EPOCH');
    }
    let cur: Stage | undefined;
    for (const ins of df.instructions) {
      this.validate(ins);
      if (ins.keyword === 'from') {
        cur = this.newStage(ins);
        this.stages.push(cur);
      } else if (!cur) {
        if (ins.keyword !== 'arg')
          throw parseError(ins.line, `${ins.keyword.toUpperCase()} before the first FROM: only ARG may come first`);
        this.globalArgs.push(ins);
      } else cur.body.push(ins);
    }
    if (!cur) throw invalidArgument('no build stage in the Dockerfile: it needs a FROM');
    for (const a of this.globalArgs) this.declareArgs(a, this.globals, envMap());
    for (const s of this.stages) s.base = this.lex.processWord(s.base, this.globalEnv());
    let target = this.stages[this.stages.length - 1];
    if (opts.target) {
      const t = this.stages.find((s) => s.name === opts.target!.toLowerCase());
      if (!t) throw invalidArgument(`failed to reach build target ${opts.target} in Dockerfile`);
      target = t;
    }
    const labels = Object.entries(opts.labels);
    if (labels.length) {
      const text = `LABEL ${labels.map(([k, v]) => `${JSON.stringify(k)}=${JSON.stringify(v)}`).join(' ')}`;
      const ins = parseDockerfile(text).instructions[0];
      target.body.push({ ...ins, line: 0 });
    }
    this.needed = this.plan(target);
    this.total = this.globalArgs.length + this.needed.reduce((n, s) => n + 1 + s.body.length, 0);
  }

  /** Checks made before any output: arguments present, flags known (errors name the line). */
  private validate(ins: Instruction): void {
    const allowed: Record<string, string[]> = {
      run: ['network', 'mount', 'security'],
      copy: ['from', 'chown', 'chmod', 'link'],
      add: ['chown', 'chmod', 'link', 'checksum', 'keep-git-dir'],
      healthcheck: ['interval', 'timeout', 'start-period', 'start-interval', 'retries'],
      from: ['platform'],
    };
    for (const f of ins.flags.keys())
      if (!(allowed[ins.keyword] ?? []).includes(f)) throw parseError(ins.line, `Unknown flag: ${f}`);
    const kw = ins.keyword.toUpperCase();
    if (ins.rest.trim() === '' && ins.heredocs.length === 0 && !['cmd', 'entrypoint'].includes(ins.keyword))
      throw parseError(ins.line, `${kw} requires at least one argument`);
    if ((ins.keyword === 'copy' || ins.keyword === 'add') && !ins.json && splitWords(ins.rest, this.df.escape).length < 2)
      throw parseError(ins.line, `${kw} requires at least two arguments, but only one was provided. Destination could not be determined.`);
    if (ins.keyword === 'shell' && !ins.json) throw parseError(ins.line, 'SHELL requires the arguments to be in JSON form');
  }

  private newStage(ins: Instruction): Stage {
    for (const f of ins.flags.keys())
      if (f !== 'platform') throw parseError(ins.line, `Unknown flag: ${f}`);
    const words = splitWords(ins.rest, this.df.escape);
    if (words.length !== 1 && !(words.length === 3 && words[1].toLowerCase() === 'as'))
      throw parseError(ins.line, 'FROM requires either one or three arguments');
    const name = words.length === 3 ? words[2].toLowerCase() : undefined;
    if (name !== undefined) {
      if (!/^[a-z][a-z0-9-_.]*$/.test(name)) throw parseError(ins.line, `invalid name for build stage: "${words[2]}", name can't start with a number or contain symbols`);
      if (this.stages.some((s) => s.name === name)) throw parseError(ins.line, `duplicate name ${name}`);
    }
    return { index: this.stages.length, name, from: ins, base: words[0], body: [] };
  }

  private globalEnv(): Env {
    const env: Env = new Map();
    for (const [k, v] of this.globals) if (v !== undefined) env.set(k, v);
    return env;
  }

  /** The stage a name or index refers to, if it is an earlier stage. */
  private stageRef(ref: string, before: number): Stage | undefined {
    if (/^\d+$/.test(ref)) {
      const i = Number(ref);
      return i < before ? this.stages[i] : undefined;
    }
    return this.stages.find((s) => s.index < before && s.name === ref.toLowerCase());
  }

  /** The stages `target` needs, in Dockerfile order. */
  private plan(target: Stage): Stage[] {
    const need = new Set<number>();
    const visit = (s: Stage): void => {
      if (need.has(s.index)) return;
      need.add(s.index);
      const base = this.stageRef(s.base, s.index);
      if (base) visit(base);
      for (const ins of s.body) {
        const from = ins.flags.get('from')?.[0];
        if ((ins.keyword === 'copy' || ins.keyword === 'add') && from) {
          if (/^\d+$/.test(from) && Number(from) >= s.index)
            throw invalidArgument(`invalid from flag value ${from}: refers to current or future build stage`);
          const dep = this.stageRef(from, s.index);
          if (dep) visit(dep);
        }
      }
    };
    visit(target);
    return this.stages.filter((s) => need.has(s.index));
  }

  /** ARG NAME[=default] ...: the value is the build arg's if given, else the default. */
  private declareArgs(ins: Instruction, into: Map<string, string | undefined>, env: Env): string[] {
    const words = splitWords(ins.rest, this.df.escape);
    if (words.length === 0) throw parseError(ins.line, 'ARG requires at least one argument');
    const names: string[] = [];
    for (const w of words) {
      const eq = w.indexOf('=');
      const name = eq < 0 ? w : w.slice(0, eq);
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw parseError(ins.line, `invalid ARG name: ${name}`);
      let value = eq < 0 ? undefined : this.lex.processWord(w.slice(eq + 1), env);
      const given = this.opts.buildArgs[name];
      if (given !== undefined && given !== null) value = given;
      else if (value === undefined && into !== this.globals && this.globals.has(name)) value = this.globals.get(name);
      if (Object.hasOwn(this.opts.buildArgs, name)) this.consumed.add(name);
      into.set(name, value);
      names.push(eq < 0 ? name : `${name}=${w.slice(eq + 1)}`);
    }
    return names;
  }

  private send(m: BuildMessage): void {
    this.out(m);
  }
  private say(s: string): void {
    this.send({ stream: s });
  }
  private announce(ins: Instruction): void {
    this.step++;
    this.say(`Step ${this.step}/${this.total} : ${ins.original}`);
    this.say('\n');
  }

  /** Runs the build; messages go to `out`. Always removes the context and any mount. */
  async run(out: (m: BuildMessage) => void, pull: PullFn): Promise<Digest> {
    this.out = out;
    this.pull = pull;
    try {
      for (const a of this.globalArgs) this.announce(a);
      let last: State | undefined;
      for (const stage of this.needed) {
        last = await this.runStage(stage);
        this.results.set(stage.index, last);
      }
      const unused = Object.keys(this.opts.buildArgs).filter((k) => !this.consumed.has(k) && !PROXY_ARGS.has(k));
      if (unused.length) this.say(`[Warning] One or more build-args [${unused.join(' ')}] were not consumed\n`);
      const id = last!.imageId;
      this.send({ aux: { ID: id } });
      this.say(`Successfully built ${shortId(id)}\n`);
      for (const t of this.opts.tags) {
        await this.d.images.setTag(t, id);
        this.say(`Successfully tagged ${familiarString(withDefaultTag(parseReference(t)))}\n`);
      }
      return id;
    } finally {
      for (const m of this.mounts.splice(0)) await this.unmountKey(m).catch(() => undefined);
      await this.context.remove();
    }
  }

  private async runStage(stage: Stage): Promise<State> {
    this.announce(stage.from);
    let st = await this.fromStep(stage);
    const triggers = st.config.config?.OnBuild ?? [];
    if (triggers.length) {
      this.say(`# Executing ${triggers.length} build trigger${triggers.length > 1 ? 's' : ''}\n`);
      const cleared = { ...st, config: { ...st.config, config: { ...st.config.config, OnBuild: null } } };
      st = cleared;
      for (const t of triggers) {
        const ins = parseDockerfile(t).instructions[0];
        st = await this.dispatch(stage, st, ins);
      }
    }
    for (const ins of stage.body) {
      this.announce(ins);
      st = await this.dispatch(stage, st, ins);
    }
    return st;
  }

  private async fromStep(stage: Stage): Promise<State> {
    const args = new Map<string, string | undefined>();
    const prev = this.stageRef(stage.base, stage.index);
    if (prev) {
      const s = this.results.get(prev.index)!;
      this.say(` ---> ${shortId(s.imageId)}\n`);
      return { ...s, args, cmdSet: false };
    }
    if (stage.base === 'scratch') {
      const config: ImageConfig = {
        architecture: 'amd64',
        os: 'linux',
        config: {},
        rootfs: { type: 'layers', diff_ids: [] },
        history: [],
      };
      const id = await this.d.images.add({ config: Buffer.from(JSON.stringify(config)), layers: [] });
      this.say(' ---> ' + 'scratch\n');
      return { imageId: id, config, layers: [], chainId: null, args, cmdSet: false };
    }
    const platform = stage.from.flags.get('platform')?.[0] ?? this.opts.platform;
    const id = await this.image(stage.base, platform, this.opts.pull);
    const img = this.d.images.resolve(id);
    this.say(` ---> ${shortId(id)}\n`);
    return {
      imageId: id,
      config: img.config,
      layers: img.record.layers,
      chainId: img.record.chainId,
      args,
      cmdSet: false,
    };
  }

  /** A local image, pulled when missing (or always with --pull). */
  private async image(ref: string, platform: string | undefined, forcePull: boolean): Promise<Digest> {
    let parsed;
    try {
      parsed = parseReference(ref);
    } catch {
      throw invalidArgument(`invalid reference format: ${ref}`);
    }
    const local = this.d.images.tryResolve(ref);
    if (local && !(forcePull && !parsed.digest)) return local.record.id;
    try {
      return await this.pull(ref, platform, (m) => this.send(m as BuildMessage));
    } catch (err) {
      if (local) return local.record.id;
      throw err;
    }
  }

  private env(st: State): Env {
    const env: Env = new Map();
    for (const [k, v] of st.args) if (v !== undefined) env.set(k, v);
    for (const [k, v] of envMap(st.config.config?.Env ?? [])) env.set(k, v);
    return env;
  }

  private word(st: State, s: string): string {
    return this.lex.processWord(s, this.env(st));
  }

  private created(): string {
    return (this.epoch ?? new Date()).toISOString().replace('.000Z', 'Z');
  }

  /** Registers the step's image (config change and optional new layer) and files it in the cache. */
  private async commit(
    st: State,
    config: ContainerConfig,
    createdBy: string,
    cacheKey: string,
    layer?: { digest: Digest; size: number },
    extra: Partial<ImageConfig> = {},
  ): Promise<State> {
    const created = this.created();
    const diffIds = [...st.config.rootfs.diff_ids, ...(layer ? [layer.digest] : [])];
    const cfg: ImageConfig = {
      ...st.config,
      ...extra,
      created,
      config,
      rootfs: { type: 'layers', diff_ids: diffIds },
      history: [
        ...(st.config.history ?? []),
        { created, created_by: createdBy, ...(layer ? {} : { empty_layer: true }) },
      ],
    };
    delete cfg.container;
    delete cfg.container_config;
    const layers = layer
      ? [...st.layers, { mediaType: LAYER_MEDIA_TYPE, digest: layer.digest, size: layer.size, diffId: layer.digest }]
      : st.layers;
    const id = await this.d.images.add({
      config: Buffer.from(JSON.stringify(cfg)),
      layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size, diffId: l.diffId })),
      parent: st.imageId,
    });
    await this.builder.cacheStore(cacheKey, id);
    this.say(` ---> ${shortId(id)}\n`);
    const img = this.d.images.resolve(id);
    return { ...st, imageId: id, config: img.config, layers: img.record.layers, chainId: img.record.chainId };
  }

  /** The cached image for `key`, if any (and not --no-cache): the state moves to it. */
  private cached(st: State, key: string): State | undefined {
    if (this.opts.noCache) return undefined;
    const id = this.builder.cacheLookup(key);
    if (!id) return undefined;
    const img = this.d.images.resolve(id);
    this.say(' ---> Using cache\n');
    this.say(` ---> ${shortId(id)}\n`);
    return { ...st, imageId: id, config: img.config, layers: img.record.layers, chainId: img.record.chainId };
  }

  /** A config-only step: cached by parent + description. */
  private async meta(
    st: State,
    text: string,
    change: (c: ContainerConfig) => ContainerConfig,
    extra: Partial<ImageConfig> = {},
  ): Promise<State> {
    const createdBy = `/bin/sh -c #(nop) ${text}`;
    const key = sha(st.imageId, createdBy, extra);
    const hit = this.cached(st, key);
    if (hit) return hit;
    return this.commit(st, change({ ...(st.config.config ?? {}) }), createdBy, key, undefined, extra);
  }

  private checkFlags(ins: Instruction, allowed: string[]): void {
    for (const f of ins.flags.keys())
      if (!allowed.includes(f)) throw invalidArgument(`dockerfile parse error line ${ins.line}: Unknown flag: ${f}`);
  }

  private shellOf(st: State): string[] {
    const s = st.config.config?.Shell;
    return s && s.length ? s : DEFAULT_SHELL;
  }

  private async dispatch(stage: Stage, st: State, ins: Instruction): Promise<State> {
    const kw = ins.keyword.toUpperCase();
    const need = (): void => {
      if (ins.rest.trim() === '' && ins.heredocs.length === 0)
        throw parseError(ins.line, `${kw} requires at least one argument`);
    };
    switch (ins.keyword) {
      case 'run':
        this.checkFlags(ins, ['network', 'mount', 'security']);
        need();
        return this.runStep(st, ins);
      case 'copy':
      case 'add':
        this.checkFlags(ins, ins.keyword === 'copy' ? ['from', 'chown', 'chmod', 'link'] : ['chown', 'chmod', 'link', 'checksum', 'keep-git-dir']);
        need();
        return this.copyStep(stage, st, ins);
      case 'env': {
        this.checkFlags(ins, []);
        const env = this.env(st);
        const pairs = parseNameValues(ins, this.df.escape).map(([k, v]) => [
          this.lex.processWord(k, env),
          this.lex.processWord(v, env),
        ]);
        const list = [...(st.config.config?.Env ?? [])];
        for (const [k, v] of pairs) {
          const i = list.findIndex((e) => e === k || e.startsWith(`${k}=`));
          if (i >= 0) list[i] = `${k}=${v}`;
          else list.push(`${k}=${v}`);
        }
        return this.meta(st, ` ENV ${pairs.map(([k, v]) => `${k}=${v}`).join(' ')}`, (c) => ({ ...c, Env: list }));
      }
      case 'label': {
        this.checkFlags(ins, []);
        const env = this.env(st);
        const pairs = parseNameValues(ins, this.df.escape).map(([k, v]) => [
          this.lex.processWord(k, env),
          this.lex.processWord(v, env),
        ]);
        return this.meta(st, ` LABEL ${pairs.map(([k, v]) => `${k}=${v}`).join(' ')}`, (c) => ({
          ...c,
          Labels: { ...(c.Labels ?? {}), ...Object.fromEntries(pairs) },
        }));
      }
      case 'maintainer':
        need();
        return this.meta(st, ` MAINTAINER ${ins.rest}`, (c) => c, { author: ins.rest });
      case 'expose': {
        need();
        const ports: string[] = [];
        for (const p of this.lex.processWords(ins.rest, this.env(st))) {
          const m = /^(\d+)(?:-(\d+))?(?:\/(tcp|udp|sctp))?$/i.exec(p);
          if (!m) throw invalidArgument(`invalid containerPort: ${p}`);
          const lo = Number(m[1]);
          const hi = m[2] ? Number(m[2]) : lo;
          if (lo > 65535 || hi > 65535 || hi < lo) throw invalidArgument(`invalid containerPort: ${p}`);
          for (let n = lo; n <= hi; n++) ports.push(`${n}/${(m[3] ?? 'tcp').toLowerCase()}`);
        }
        return this.meta(st, ` EXPOSE ${ports.join(' ')}`, (c) => ({
          ...c,
          ExposedPorts: { ...(c.ExposedPorts ?? {}), ...Object.fromEntries(ports.map((p) => [p, {}])) },
        }));
      }
      case 'cmd':
      case 'entrypoint': {
        const cmd = ins.json ?? (ins.rest.trim() ? [...this.shellOf(st), ins.rest] : []);
        const text = ` ${kw} ${JSON.stringify(cmd)}`;
        if (ins.keyword === 'cmd') {
          const next = await this.meta(st, text, (c) => ({ ...c, Cmd: cmd }));
          return { ...next, cmdSet: true };
        }
        const keepCmd = st.cmdSet;
        const next = await this.meta(st, text, (c) => ({
          ...c,
          Entrypoint: cmd,
          ...(keepCmd ? {} : { Cmd: null }),
        }));
        return { ...next, cmdSet: st.cmdSet };
      }
      case 'volume': {
        need();
        const vols = ins.json ? ins.json.map((v) => this.word(st, v)) : this.lex.processWords(ins.rest, this.env(st));
        if (vols.some((v) => v.trim() === '')) throw invalidArgument('VOLUME specified can not be an empty string');
        return this.meta(st, ` VOLUME [${vols.join(' ')}]`, (c) => ({
          ...c,
          Volumes: { ...(c.Volumes ?? {}), ...Object.fromEntries(vols.map((v) => [v, {}])) },
        }));
      }
      case 'user': {
        need();
        const user = this.word(st, ins.rest.trim());
        return this.meta(st, ` USER ${user}`, (c) => ({ ...c, User: user }));
      }
      case 'workdir':
        need();
        return this.workdirStep(st, ins);
      case 'arg': {
        const names = this.declareArgs(ins, st.args, this.env(st));
        return this.meta(st, ` ARG ${names.join(' ')}`, (c) => c);
      }
      case 'onbuild': {
        need();
        const m = /^(\S+)([\s\S]*)$/.exec(ins.rest.trim())!;
        const trig = m[1].toUpperCase();
        if (trig === 'ONBUILD') throw invalidArgument("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed");
        if (trig === 'FROM' || trig === 'MAINTAINER')
          throw invalidArgument(`${trig} isn't allowed as an ONBUILD trigger`);
        parseDockerfile(ins.rest.trim());
        const text = `${trig}${m[2]}`;
        return this.meta(st, ` ONBUILD ${text}`, (c) => ({ ...c, OnBuild: [...(c.OnBuild ?? []), text] }));
      }
      case 'stopsignal': {
        need();
        const sig = this.word(st, ins.rest.trim());
        if (!/^(SIG)?[A-Z0-9+-]+$/i.test(sig)) throw invalidArgument(`Invalid signal: ${sig}`);
        return this.meta(st, ` STOPSIGNAL ${sig}`, (c) => ({ ...c, StopSignal: sig }));
      }
      case 'healthcheck':
        return this.healthcheck(st, ins);
      case 'shell':
        if (!ins.json || ins.json.length === 0) throw invalidArgument('SHELL requires the arguments to be in JSON form');
        return this.meta(st, ` SHELL ${JSON.stringify(ins.json)}`, (c) => ({ ...c, Shell: ins.json }));
      case 'from':
        throw parseError(ins.line, 'FROM is not allowed here');
    }
  }

  private healthcheck(st: State, ins: Instruction): Promise<State> {
    this.checkFlags(ins, ['interval', 'timeout', 'start-period', 'start-interval', 'retries']);
    const rest = ins.rest.trim();
    if (/^none$/i.test(rest)) {
      if (ins.flags.size) throw invalidArgument('HEALTHCHECK NONE takes no flags');
      return this.meta(st, ' HEALTHCHECK NONE', (c) => ({ ...c, Healthcheck: { Test: ['NONE'] } }));
    }
    const m = /^cmd\s+([\s\S]+)$/i.exec(rest);
    if (!m) throw invalidArgument('HEALTHCHECK requires a CMD or NONE');
    let test: string[];
    try {
      const v: unknown = JSON.parse(m[1]);
      test = Array.isArray(v) && v.every((x) => typeof x === 'string') ? ['CMD', ...(v as string[])] : ['CMD-SHELL', m[1]];
    } catch {
      test = ['CMD-SHELL', m[1]];
    }
    const hc: NonNullable<ContainerConfig['Healthcheck']> = { Test: test };
    const dur = (f: string, k: 'Interval' | 'Timeout' | 'StartPeriod' | 'StartInterval') => {
      const v = ins.flags.get(f)?.[0];
      if (v !== undefined) hc[k] = parseDuration(v, f);
    };
    dur('interval', 'Interval');
    dur('timeout', 'Timeout');
    dur('start-period', 'StartPeriod');
    dur('start-interval', 'StartInterval');
    const r = ins.flags.get('retries')?.[0];
    if (r !== undefined) {
      if (!/^\d+$/.test(r)) throw invalidArgument(`invalid --retries: ${r}`);
      hc.Retries = Number(r);
    }
    return this.meta(st, ` HEALTHCHECK &{${JSON.stringify(test)}}`, (c) => ({ ...c, Healthcheck: hc }));
  }

  // --- steps with a file system ---

  /** Prepares a writable snapshot over `chain`, mounted at a private directory. */
  private async mountKey(chain: Digest | null): Promise<{ key: string; root: string }> {
    const key = `build-${randomBytes(8).toString('hex')}`;
    const root = path.join(this.builder.tmp, key, 'root');
    await fsp.mkdir(root, { recursive: true, mode: 0o700 });
    this.mounts.push(key);
    await this.d.snapshots.prepare(key, chain);
    await this.d.snapshots.mount(key, root);
    return { key, root };
  }

  private async unmountKey(key: string): Promise<void> {
    const dir = path.join(this.builder.tmp, key);
    await this.d.snapshots.unmount(path.join(dir, 'root'));
    await this.d.snapshots.removeActive(key);
    await fsp.rm(dir, { recursive: true, force: true });
    const i = this.mounts.indexOf(key);
    if (i >= 0) this.mounts.splice(i, 1);
  }

  /** Turns the upper directory of a prepared key into a layer on top of `chain`. */
  private async layerFrom(
    key: string,
    chain: Digest | null,
    mountPoints?: Set<string>,
  ): Promise<{ digest: Digest; size: number }> {
    const spec = await this.d.snapshots.prepare(key, chain);
    const blob = await this.d.content.ingest(
      diffTar(spec.upperDir, spec.lowerDirs, mountPoints, { clampMtime: this.epoch }),
    );
    await this.d.snapshots.apply(chain, this.d.content.createReadStream(blob.digest), {
      expectedDiffId: blob.digest,
    });
    return { digest: blob.digest, size: blob.size };
  }

  /** Runs `fn` in a mounted snapshot over the state and commits what it changed as the step's layer. */
  private async withLayer(
    st: State,
    fn: (root: string) => Promise<void>,
  ): Promise<{ digest: Digest; size: number }> {
    const { key, root } = await this.mountKey(st.chainId);
    try {
      await fn(root);
      await this.d.snapshots.unmount(root);
      return await this.layerFrom(key, st.chainId);
    } finally {
      await this.unmountKey(key);
    }
  }

  private async workdirStep(st: State, ins: Instruction): Promise<State> {
    let wd = this.word(st, ins.rest.trim());
    if (!wd.startsWith('/')) wd = path.posix.join(st.config.config?.WorkingDir || '/', wd);
    wd = path.posix.normalize(wd);
    const createdBy = `/bin/sh -c #(nop) WORKDIR ${wd}`;
    const key = sha(st.imageId, createdBy);
    const hit = this.cached(st, key);
    if (hit) return hit;
    const cfg = { ...(st.config.config ?? {}), WorkingDir: wd };
    if (this.existsInImage(st, wd)) return this.commit(st, cfg, createdBy, key);
    const layer = await this.withLayer(st, async (root) => {
      await mkdirOwned(resolveInRoot(root, wd), { uid: 0, gid: 0 });
    });
    return this.commit(st, cfg, createdBy, key, layer);
  }

  /** Whether `p` exists in the image (top layer first; a whiteout hides what is below). */
  private existsInImage(st: State, p: string): boolean {
    if (!st.chainId) return p === '/';
    const rel = p.replace(/^\/+/, '');
    if (rel === '') return true;
    for (const dir of this.d.snapshots.lowerDirs(st.chainId)) {
      const kind = nodeKind(path.join(dir, rel));
      if (kind === 'whiteout') return false;
      if (kind === 'present') return true;
    }
    return false;
  }

  private async runStep(st: State, ins: Instruction): Promise<State> {
    let script = ins.rest;
    if (ins.heredocs.length) {
      const only = /^\d*<<-?["']?[A-Za-z0-9_.-]+["']?$/.test(ins.rest.trim());
      script = only
        ? ins.heredocs[0].content
        : `${ins.rest}\n${ins.heredocs.map((h) => `${h.content}${h.name}`).join('\n')}`;
    }
    const cmd = ins.json ?? [...this.shellOf(st), script];
    const configEnv = envMap(st.config.config?.Env ?? []);
    const argEnv: string[] = [];
    for (const [k, v] of [...st.args].sort(([a], [b]) => a.localeCompare(b)))
      if (v !== undefined && !configEnv.has(k)) argEnv.push(`${k}=${v}`);
    for (const k of PROXY_ARGS) {
      const v = this.opts.buildArgs[k];
      if (v !== undefined && v !== null && !st.args.has(k)) argEnv.push(`${k}=${v}`);
    }
    const visibleArgs = argEnv.filter((e) => !PROXY_ARGS.has(e.slice(0, e.indexOf('='))));
    const createdBy = (visibleArgs.length ? `|${visibleArgs.length} ${visibleArgs.join(' ')} ` : '') + cmd.join(' ');
    const key = sha(st.imageId, 'run', cmd, visibleArgs);
    const hit = this.cached(st, key);
    if (hit) return hit;
    const network = ins.flags.get('network')?.[0] ?? this.opts.networkMode;
    const { Id } = await this.d.containers.create({
      Image: st.imageId,
      Cmd: cmd,
      Entrypoint: [],
      Env: argEnv,
      User: st.config.config?.User ?? '',
      WorkingDir: st.config.config?.WorkingDir ?? '',
      AttachStdout: true,
      AttachStderr: true,
      Labels: {},
      HostConfig: network && network !== 'default' ? { NetworkMode: network } : {},
    });
    let removed = false;
    const remove = async () => {
      if (removed) return;
      removed = true;
      await this.d.containers.remove(Id, { force: true, volumes: true }).catch((err: unknown) =>
        log.warn('could not remove a build container', { id: Id, error: String(err) }),
      );
    };
    try {
      this.say(` ---> Running in ${shortId(Id)}\n`);
      const attached = this.d.containers.attach(
        Id,
        { onOutput: (_s, data) => this.say(data.toString('utf8')), onEnd: () => undefined },
        { stdin: false },
      );
      const exited = this.d.containers.waitFor(Id, 'next-exit');
      let code: number;
      try {
        await this.d.containers.start(Id);
        code = await exited;
      } finally {
        attached.detach();
      }
      if (code !== 0)
        throw new RunFailedError(`The command '${cmd.join(' ')}' returned a non-zero code: ${code}`, code);
      const layer = await this.layerFrom(Id, st.chainId, mountPlaceholders(this.d.containers.get(Id).mounts));
      await remove();
      this.say(`Removing intermediate container ${shortId(Id)}\n`);
      return await this.commit(st, { ...(st.config.config ?? {}) }, createdBy, key, layer);
    } finally {
      await remove();
    }
  }

  private owner(root: string, spec: string | undefined, env: Env): CopyOwner {
    if (!spec) return { uid: 0, gid: 0 };
    const s = this.lex.processWord(spec, env);
    const [u, g] = s.split(':', 2);
    const table = (file: string): string[][] => {
      try {
        return readTable(path.join(root, 'etc', file));
      } catch {
        return [];
      }
    };
    const lookup = (name: string, file: string): number => {
      if (/^\d+$/.test(name)) return Number(name);
      const row = table(file).find((r) => r[0] === name);
      if (!row) throw invalidArgument(`unable to convert uid/gid chown string to host mapping: can't find uid for user ${name}: no such user: ${name}`);
      return Number(row[2]);
    };
    const uid = lookup(u, 'passwd');
    const gid = g !== undefined && g !== '' ? lookup(g, 'group') : uid;
    return { uid, gid };
  }

  private async copyStep(stage: Stage, st: State, ins: Instruction): Promise<State> {
    const kw = ins.keyword.toUpperCase();
    const env = this.env(st);
    let args: string[];
    if (ins.json) args = ins.json.map((a) => this.lex.processWord(a, env));
    else {
      // Heredoc markers stay literal; other words are processed.
      args = splitWords(ins.rest, this.df.escape).map((w) =>
        /^\d*<<-?["']?[A-Za-z0-9_.-]+["']?$/.test(w) ? w : this.lex.processWord(w, env),
      );
    }
    if (args.length < 2) throw parseError(ins.line, `${kw} requires at least two arguments, but only one was provided. Destination could not be determined.`);
    let dest = args[args.length - 1];
    const srcArgs = args.slice(0, -1);
    const wd = st.config.config?.WorkingDir || '/';
    const destDirSyntax = dest.endsWith('/') || dest === '.' || dest.endsWith('/.');
    if (!dest.startsWith('/')) dest = path.posix.join(wd, dest);
    dest = path.posix.normalize(dest);
    if (dest.length > 1) dest = dest.replace(/\/+$/, '');
    const from = ins.flags.get('from')?.[0];
    const chmodFlag = ins.flags.get('chmod')?.[0];
    let mode: number | undefined;
    if (chmodFlag !== undefined) {
      if (!/^[0-7]{3,4}$/.test(chmodFlag)) throw invalidArgument(`invalid chmod parameter: ${chmodFlag}`);
      mode = parseInt(chmodFlag, 8);
    }
    // The root the sources come from: the context, an earlier stage, or an image.
    let srcRoot: string | undefined;
    let what = 'build context';
    let fromId = '';
    let srcKey: string | undefined;
    const heredocDir = this.builder.tmpDir('heredoc');
    const heredocs: SourceFile[] = [];
    const urls: string[] = [];
    try {
      if (from) {
        const dep = this.stageRef(from, stage.index);
        let chain: Digest | null;
        if (dep) {
          const r = this.results.get(dep.index);
          if (!r) throw invalidArgument(`invalid from flag value ${from}: stage was not built`);
          fromId = r.imageId;
          chain = r.chainId;
        } else {
          if (/^\d+$/.test(from)) throw invalidArgument(`invalid from flag value ${from}: refers to current or future build stage`);
          try {
            fromId = await this.image(from, this.opts.platform, false);
          } catch (err) {
            throw invalidArgument(`invalid from flag value ${from}: ${(err as Error).message}`);
          }
          chain = this.d.images.resolve(fromId).record.chainId;
        }
        const m = await this.mountKey(chain);
        srcKey = m.key;
        srcRoot = m.root;
        what = `stage or image ${from}`;
      }
      const downloaded = new Set<string>();
      const patterns: string[] = [];
      for (const a of srcArgs) {
        const hd = /^\d*<<-?["']?([A-Za-z0-9_.-]+)["']?$/.exec(a);
        if (hd) {
          const doc = ins.heredocs.find((h) => h.name === hd[1]);
          if (!doc) throw parseError(ins.line, `unknown heredoc ${hd[1]}`);
          await fsp.mkdir(heredocDir, { recursive: true, mode: 0o700 });
          const file = path.join(heredocDir, hd[1]);
          await fsp.writeFile(file, doc.expand ? this.expandVars(doc.content, env) : doc.content, { mode: 0o644 });
          await fsp.utimes(file, 0, 0);
          heredocs.push({ rel: hd[1], host: file, st: await fsp.lstat(file) });
        } else if (ins.keyword === 'add' && /^https?:\/\//.test(a)) urls.push(a);
        else if (ins.keyword === 'copy' && /^[a-z][a-z0-9+.-]*:\/\//i.test(a))
          throw invalidArgument(`source can't be a URL for COPY`);
        else patterns.push(a);
      }
      // Sources from the context are found and checksummed in its index: its files are unpacked
      // only when the step is not cached.
      let fromContext: ContextSource[] = [];
      let fromDisk: SourceFile[] = [];
      if (patterns.length && srcRoot) fromDisk = await resolveSources(srcRoot, patterns, what);
      else if (patterns.length) fromContext = this.context.sources(patterns);
      const fetched: SourceFile[] = [];
      for (const u of urls) {
        const f = await this.download(u, heredocDir);
        downloaded.add(f.host);
        fetched.push(f);
      }
      const count = heredocs.length + fromDisk.length + fromContext.length + fetched.length;
      const many = count > 1 || srcArgs.some((a) => /[*?[]/.test(a));
      if (count > 1 && !destDirSyntax)
        throw invalidArgument(`When using ${kw} with more than one source file, the destination must be a directory and end with a /`);
      const h = createHash('sha256');
      await checksumInto(h, [...heredocs, ...fromDisk]);
      for (const s of fromContext) this.context.checksum(h, s);
      await checksumInto(h, fetched);
      const sum = h.digest('hex');
      const firstIsDir = heredocs.length
        ? false
        : fromContext.length
          ? this.context.isDirectory(fromContext[0])
          : [...fromDisk, ...fetched][0].st.isDirectory();
      const kind = count > 1 ? 'multi' : firstIsDir ? 'dir' : 'file';
      const createdBy = `/bin/sh -c #(nop) ${kw} ${kind}:${sum} in ${dest}${destDirSyntax ? '/' : ''} `;
      const key = sha(st.imageId, createdBy, fromId, ins.flags.get('chown')?.[0] ?? '', chmodFlag ?? '');
      const hit = this.cached(st, key);
      if (hit) return hit;
      if (fromContext.length) fromDisk = await resolveSources(await this.context.root(), patterns, what);
      const sources = [...heredocs, ...fromDisk, ...fetched];
      const layer = await this.withLayer(st, async (root) => {
        const owner = { ...this.owner(root, ins.flags.get('chown')?.[0], env), mode };
        const destHost = resolveInRoot(root, dest);
        for (const s of sources) {
          if (s.st.isDirectory()) {
            await mkdirOwned(destHost, owner);
            for (const n of (await fsp.readdir(s.host)).sort()) {
              const p = path.join(s.host, n);
              await copyNode(p, await fsp.lstat(p), path.join(destHost, n), owner);
            }
            continue;
          }
          if (ins.keyword === 'add' && !downloaded.has(s.host) && s.st.isFile()) {
            const kindOf = await archiveKind(s.host);
            if (kindOf) {
              await mkdirOwned(destHost, owner);
              await this.extractInto(s.host, destHost);
              continue;
            }
          }
          let existsDir = false;
          try {
            existsDir = (await fsp.stat(destHost)).isDirectory();
          } catch {
            existsDir = false;
          }
          const target = destDirSyntax || many || existsDir ? path.join(destHost, path.posix.basename(s.rel)) : destHost;
          await mkdirOwned(path.dirname(target), owner);
          await copyNode(s.host, await fsp.stat(s.host), target, owner);
        }
      });
      return await this.commit(st, { ...(st.config.config ?? {}) }, createdBy, key, layer);
    } finally {
      if (srcKey) await this.unmountKey(srcKey).catch(() => undefined);
      if (heredocs.length || urls.length) await fsp.rm(heredocDir, { recursive: true, force: true });
    }
  }

  /** `$VAR` / `${VAR}` in a heredoc body (quotes kept, unlike a word). */
  private expandVars(text: string, env: Env): string {
    return text.replace(/\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))/g, (_m, a: string, b: string) =>
      env.get(a ?? b) ?? '',
    );
  }

  /** ADD of a local tar: its entries are unpacked into `dest` (merged with what is there). */
  private async extractInto(file: string, dest: string): Promise<void> {
    const staging = this.builder.tmpDir('add');
    await fsp.mkdir(staging, { recursive: true, mode: 0o700 });
    try {
      const { stream } = await decompressStream(createReadStream(file));
      await extractLayer(stream, staging);
      for (const n of (await fsp.readdir(staging)).sort()) {
        const p = path.join(staging, n);
        await copyNode(p, await fsp.lstat(p), path.join(dest, n), undefined);
      }
    } finally {
      await fsp.rm(staging, { recursive: true, force: true });
    }
  }

  /** ADD <url>: downloaded to a file named after the URL's last path segment, mode 0600. */
  private async download(url: string, dir: string): Promise<SourceFile> {
    await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
    const res = await fetch(url).catch((err: unknown) => {
      throw invalidArgument(`failed to GET ${url}: ${(err as Error).message}`);
    });
    if (!res.ok) throw invalidArgument(`failed to GET ${url} with status ${res.status} ${res.statusText}`);
    const name = path.posix.basename(new URL(url).pathname) || 'download';
    const file = path.join(dir, name);
    await fsp.writeFile(file, Buffer.from(await res.arrayBuffer()), { mode: 0o600 });
    const lm = res.headers.get('last-modified');
    if (lm && !Number.isNaN(Date.parse(lm))) await fsp.utimes(file, new Date(lm), new Date(lm));
    return { rel: name, host: file, st: await fsp.lstat(file) };
  }
}

function nodeKind(p: string): 'whiteout' | 'present' | undefined {
  try {
    const s = lstatSync(p);
    if (s.isCharacterDevice() && s.rdev === 0) return 'whiteout';
    return 'present';
  } catch {
    return undefined;
  }
}

function readTable(file: string): string[][] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => l.split(':'));
}

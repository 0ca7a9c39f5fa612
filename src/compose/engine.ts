/**
 * Reconciling a project with an engine, through the Engine API client only: networks and volumes
 * first, images built or pulled, then each service in dependency order, its containers created,
 * recreated (config hash or image changed) or left alone, dependencies' conditions awaited.
 */
import { ApiError, type Client, type ContainerInspect } from '../client/client.js';
import * as api from '../client/objects.js';
import { packContext } from './buildcontext.js';
import { ComposeError } from './errors.js';
import * as L from './labels.js';
import { dependencyOrder } from './load.js';
import type { Project, ServiceConfig } from './model.js';
import { replicasOf } from './model.js';
import { type ProjectContainer, projectContainers } from './observe.js';
import type { Progress } from './progress.js';
import { configHash, containerName, createBody, endpointConfig, imageOf, orderedNetworks } from './spec.js';

export function isNotFound(err: unknown): boolean {
  return err instanceof ApiError && err.status === 404;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface UpOptions {
  services?: string[];
  build?: boolean;
  noBuild?: boolean;
  forceRecreate?: boolean;
  noRecreate?: boolean;
  noDeps?: boolean;
  noStart?: boolean;
  scale?: Record<string, number>;
  removeOrphans?: boolean;
  wait?: boolean;
  waitTimeoutSec?: number;
  pull?: 'always' | 'missing' | 'never';
}

export class ComposeEngine {
  constructor(
    readonly client: Client,
    readonly project: Project,
    readonly progress: Progress,
  ) {}

  // --- networks and volumes ---

  async ensureNetworks(keys: string[]): Promise<void> {
    const p = this.project;
    for (const key of keys) {
      const n = p.networks[key];
      const name = n.name!;
      let existing: api.NetworkInspect | undefined;
      try {
        existing = await api.inspectNetwork(this.client, name);
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
      if (n.external) {
        if (!existing) throw new ComposeError(`network ${name} declared as external, but could not be found`);
        continue;
      }
      if (existing) {
        const owner = existing.Labels?.[L.PROJECT];
        if (owner && owner !== p.name)
          this.progress.warn(`a network with name ${name} exists but was created for project "${owner}"`);
        continue;
      }
      const body: Record<string, unknown> = {
        Name: name,
        CheckDuplicate: true,
        Driver: n.driver ?? 'bridge',
        Options: n.driver_opts ?? {},
        Internal: !!n.internal,
        Attachable: n.attachable ?? true,
        EnableIPv6: !!n.enable_ipv6,
        Labels: {
          ...(n.labels ?? {}),
          [L.PROJECT]: p.name,
          [L.NETWORK]: key,
          [L.VERSION]: L.COMPOSE_VERSION,
        },
      };
      if (n.ipam)
        body.IPAM = {
          Driver: n.ipam.driver ?? 'default',
          Config: (n.ipam.config ?? []).map((c) => ({
            Subnet: c.subnet,
            Gateway: c.gateway,
            IPRange: c.ip_range,
          })),
        };
      await api.createNetwork(this.client, body);
      this.progress.event('Network', name, 'Created');
    }
  }

  async ensureVolumes(keys: string[]): Promise<void> {
    const p = this.project;
    for (const key of keys) {
      const v = p.volumes[key];
      const name = v.name!;
      let existing: api.VolumeInspect | undefined;
      try {
        existing = await api.inspectVolume(this.client, name);
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
      if (v.external) {
        if (!existing) throw new ComposeError(`external volume "${name}" not found`);
        continue;
      }
      if (existing) continue;
      await api.createVolume(this.client, {
        Name: name,
        Driver: v.driver ?? 'local',
        DriverOpts: v.driver_opts ?? {},
        Labels: { ...(v.labels ?? {}), [L.PROJECT]: p.name, [L.VOLUME]: key, [L.VERSION]: L.COMPOSE_VERSION },
      });
      this.progress.event('Volume', name, 'Created');
    }
  }

  /** The networks and volumes the given services use. */
  resourcesOf(services: string[]): { networks: string[]; volumes: string[] } {
    const networks = new Set<string>();
    const volumes = new Set<string>();
    for (const n of services) {
      const s = this.project.services[n];
      for (const k of orderedNetworks(s)) networks.add(k);
      for (const m of s.volumes ?? []) if (m.type === 'volume' && m.source) volumes.add(m.source);
    }
    // Declared volumes are created even when unused, as Docker Compose does.
    for (const k of Object.keys(this.project.volumes)) volumes.add(k);
    return { networks: [...networks], volumes: [...volumes] };
  }

  // --- images ---

  async imageExists(ref: string): Promise<boolean> {
    try {
      await this.client.inspectImage(ref);
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  async buildService(name: string, opts: { noCache?: boolean; pull?: boolean } = {}): Promise<void> {
    const s = this.project.services[name];
    if (!s.build) return;
    const tag = imageOf(this.project, name, s);
    this.progress.event('Service', name, 'Building');
    const context = await packContext(s.build.context, s.build.dockerfile);
    const args: Record<string, string> = {};
    for (const [k, v] of Object.entries(s.build.args ?? {})) {
      const val = v ?? this.project.environment[k];
      if (val !== undefined) args[k] = val;
    }
    let failure: string | undefined;
    await api.buildImage(
      this.client,
      context,
      {
        tags: [tag],
        dockerfile: s.build.dockerfile,
        buildargs: args,
        target: s.build.target,
        labels: s.build.labels,
        nocache: opts.noCache ?? s.build.no_cache,
        pull: opts.pull ?? s.build.pull,
        networkmode: s.build.network,
      },
      (m) => {
        if (typeof m.error === 'string') failure = m.error;
        else if (typeof m.stream === 'string') process.stderr.write(m.stream);
      },
    );
    if (failure) throw new ComposeError(`failed to build service ${JSON.stringify(name)}: ${failure}`);
    this.progress.event('Service', name, 'Built');
  }

  async pullImage(ref: string, quiet = false): Promise<void> {
    if (!quiet) this.progress.event('Image', ref, 'Pulling');
    let failure: string | undefined;
    const at = ref.lastIndexOf('@');
    const colon = ref.lastIndexOf(':');
    const hasTag = at < 0 && colon > ref.lastIndexOf('/');
    await this.client.pullImage(hasTag || at >= 0 ? ref : `${ref}:latest`, {}, (m) => {
      if (typeof m.error === 'string') failure = m.error;
    });
    if (failure) throw new ComposeError(`pull ${ref}: ${failure}`);
    if (!quiet) this.progress.event('Image', ref, 'Pulled');
  }

  /** Builds what must be built and pulls what is missing, before any container is touched. */
  async prepareImages(services: string[], o: UpOptions): Promise<void> {
    for (const name of services) {
      const s = this.project.services[name];
      const ref = imageOf(this.project, name, s);
      const policy = o.pull ?? s.pull_policy ?? 'missing';
      if (s.build && !o.noBuild && (o.build || policy === 'build' || !(await this.imageExists(ref)))) {
        await this.buildService(name);
        continue;
      }
      if (policy === 'always' && s.image) await this.pullImage(ref);
      else if (!(await this.imageExists(ref))) {
        if (policy === 'never' || !s.image)
          throw new ComposeError(`image ${ref} for service ${name} is not present and may not be pulled`);
        await this.pullImage(ref);
      }
    }
  }

  // --- containers ---

  async inspect(id: string): Promise<ContainerInspect> {
    return this.client.inspectContainer(id);
  }

  /** Creates one container of a service (not started) and joins its other networks. */
  async createContainer(
    name: string,
    number: number,
    extra: Partial<Parameters<typeof createBody>[3]> & { name?: string } = {},
  ): Promise<string> {
    const p = this.project;
    const s = p.services[name];
    const cname = extra.name ?? containerName(p, name, s, number);
    let networkMode: string | undefined;
    const m = /^service:(.+)$/.exec(s.network_mode ?? '');
    if (m) {
      const target = (await projectContainers(this.client, p.name, { services: [m[1]] }))[0];
      if (!target)
        throw new ComposeError(`service ${name} uses the network stack of ${m[1]}, which has no container`);
      networkMode = `container:${target.id}`;
    }
    const body = createBody(p, name, s, { number, hash: configHash(s), networkMode, ...extra });
    const { Id } = await this.client.createContainer(body, cname);
    for (const key of orderedNetworks(s).slice(1)) {
      await api.connectNetwork(this.client, p.networks[key].name!, Id, endpointConfig(name, s, key));
    }
    return Id;
  }

  async stopAndRemove(c: ProjectContainer, timeout: number | undefined, volumes = false): Promise<void> {
    if (c.state === 'running' || c.state === 'restarting' || c.state === 'paused') {
      this.progress.event('Container', c.name, 'Stopping');
      await this.client.stopContainer(c.id, timeout ?? this.stopTimeout(c.service));
      this.progress.event('Container', c.name, 'Stopped');
    }
    this.progress.event('Container', c.name, 'Removing');
    try {
      await this.client.removeContainer(c.id, { force: true, volumes });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    this.progress.event('Container', c.name, 'Removed');
  }

  stopTimeout(service: string): number | undefined {
    const s = this.project.services[service] ?? this.project.disabled[service];
    const g = s?.stop_grace_period;
    if (!g) return undefined;
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(g);
    if (!m) return undefined;
    const mult = { ms: 0.001, s: 1, m: 60, h: 3600 }[m[2] ?? 's'] ?? 1;
    return Math.ceil(Number(m[1]) * mult);
  }

  async startContainer(id: string, name: string): Promise<void> {
    this.progress.event('Container', name, 'Starting');
    await this.client.startContainer(id);
    this.progress.event('Container', name, 'Started');
  }

  /** Waits for a dependency's condition (healthy, exited 0, or simply running). */
  async waitCondition(dep: string, condition: string, timeoutMs = 300_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const containers = await projectContainers(this.client, this.project.name, { services: [dep] });
    for (const c of containers) {
      for (;;) {
        const info = await this.inspect(c.id);
        const st = info.State as ContainerInspect['State'] & { Health?: { Status: string } };
        if (condition === 'service_healthy') {
          if (!st.Health) throw new ComposeError(`container ${c.name} has no healthcheck configured`);
          if (st.Health.Status === 'healthy') break;
          if (st.Health.Status === 'unhealthy')
            throw new ComposeError(`dependency failed to start: container ${c.name} is unhealthy`);
          if (!st.Running)
            throw new ComposeError(`dependency failed to start: container ${c.name} exited (${st.ExitCode})`);
        } else if (condition === 'service_completed_successfully') {
          if (!st.Running && st.Status !== 'created') {
            if (st.ExitCode !== 0)
              throw new ComposeError(
                `service ${JSON.stringify(dep)} didn't complete successfully: exit ${st.ExitCode}`,
              );
            break;
          }
        } else break;
        if (Date.now() > deadline) throw new ComposeError(`timed out waiting for ${c.name} (${condition})`);
        await sleep(200);
      }
      if (condition !== 'service_started')
        this.progress.event('Container', c.name, condition === 'service_healthy' ? 'Healthy' : 'Exited');
    }
  }

  async imageIdOf(ref: string): Promise<string | undefined> {
    try {
      return (await this.client.inspectImage(ref)).Id;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** `up`: brings the chosen services (and their dependencies) to their declared state. */
  async up(o: UpOptions): Promise<string[]> {
    const p = this.project;
    for (const s of o.services ?? []) if (!p.services[s]) throw new ComposeError(`no such service: ${s}`);
    const order = dependencyOrder(p, o.services, o.noDeps);
    const res = this.resourcesOf(order);
    await this.prepareImages(order, o);
    await this.ensureNetworks(res.networks);
    await this.ensureVolumes(res.volumes);
    const existing = await projectContainers(this.client, p.name);
    const orphans = existing.filter((c) => !p.services[c.service] && !p.disabled[c.service]);
    if (orphans.length) {
      if (o.removeOrphans) for (const c of orphans) await this.stopAndRemove(c, undefined);
      else
        this.progress.warn(
          `Found orphan containers (${orphans.map((c) => c.name).join(', ')}) for this project. If you removed or renamed this service in your compose file, you can run this command with the --remove-orphans flag to clean it up.`,
        );
    }
    // Services converge concurrently; each waits for its dependencies first.
    const done = new Map<string, Promise<string[]>>();
    for (const name of order) {
      const s = p.services[name];
      const deps = Object.entries(s.depends_on ?? {});
      done.set(
        name,
        (async () => {
          for (const [dep] of deps) await done.get(dep)?.catch(() => undefined);
          for (const [dep, d] of deps)
            if (p.services[dep] && !o.noStart && (order.includes(dep) || d.condition !== 'service_started'))
              await this.waitCondition(dep, d.condition);
          return this.convergeService(
            name,
            s,
            existing.filter((c) => c.service === name),
            o,
          );
        })(),
      );
    }
    const results = await Promise.allSettled(done.values());
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    const started = results.flatMap((r) => (r.status === 'fulfilled' ? r.value : []));
    if (o.wait) await this.waitRunning(order, (o.waitTimeoutSec ?? 300) * 1000);
    return started;
  }

  private async convergeService(
    name: string,
    s: ServiceConfig,
    current: ProjectContainer[],
    o: UpOptions,
  ): Promise<string[]> {
    const want = o.scale?.[name] ?? replicasOf(s);
    const hash = configHash(s);
    const imageId = await this.imageIdOf(imageOf(this.project, name, s));
    const keep: ProjectContainer[] = [];
    const sorted = [...current].sort((a, b) => a.number - b.number);
    for (const c of sorted) {
      if (keep.length >= want) {
        await this.stopAndRemove(c, undefined);
        continue;
      }
      const stale = c.hash !== hash || (imageId !== undefined && c.imageId !== imageId && c.imageId !== '');
      if ((o.forceRecreate || stale) && !o.noRecreate) {
        this.progress.event('Container', c.name, 'Recreate');
        await this.stopAndRemove(c, undefined);
        const id = await this.createContainer(name, c.number);
        const renamed = containerName(this.project, name, s, c.number);
        keep.push({ ...c, id, name: renamed, state: 'created' });
        this.progress.event('Container', renamed, 'Recreated');
      } else keep.push(c);
    }
    const used = new Set(keep.map((c) => c.number));
    const numbers: number[] = [];
    for (let next = 1; keep.length + numbers.length < want; next++) if (!used.has(next)) numbers.push(next);
    const created = await Promise.all(
      numbers.map(async (n) => {
        const cname = containerName(this.project, name, s, n);
        this.progress.event('Container', cname, 'Creating');
        const id = await this.createContainer(name, n);
        this.progress.event('Container', cname, 'Created');
        return { id, name: cname, number: n, state: 'created' } as ProjectContainer;
      }),
    );
    keep.push(...created);
    if (o.noStart) return keep.map((c) => c.id);
    await Promise.all(
      keep.map(async (c) => {
        if (c.state === 'running') this.progress.event('Container', c.name, 'Running');
        else if (c.state === 'paused') await this.client.unpauseContainer(c.id);
        else await this.startContainer(c.id, c.name);
      }),
    );
    return keep.map((c) => c.id);
  }

  /** --wait: every container running (and healthy when it has a healthcheck). */
  async waitRunning(services: string[], timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (const c of await projectContainers(this.client, this.project.name, { services })) {
      for (;;) {
        const st = (await this.inspect(c.id)).State as ContainerInspect['State'] & {
          Health?: { Status: string };
        };
        const healthy = !st.Health || st.Health.Status === 'healthy';
        if (st.Running && healthy) break;
        if (!st.Running && st.Status !== 'created' && st.Status !== 'restarting') {
          const dependedOn = services.some((n) => {
            const d = this.project.services[n].depends_on?.[c.service];
            return d?.condition === 'service_completed_successfully';
          });
          if (dependedOn && st.ExitCode === 0) break;
          throw new ComposeError(`container ${c.name} exited (${st.ExitCode})`);
        }
        if (st.Health?.Status === 'unhealthy') throw new ComposeError(`container ${c.name} is unhealthy`);
        if (Date.now() > deadline) throw new ComposeError(`timed out waiting for ${c.name}`);
        await sleep(200);
      }
      this.progress.event('Container', c.name, 'Healthy');
    }
  }

  /** Services whose containers should stop first: dependents before their dependencies. */
  reverseOrder(names: string[]): string[] {
    const known = dependencyOrder(this.project).filter((n) => names.includes(n));
    const rest = names.filter((n) => !known.includes(n));
    return [...known.reverse(), ...rest];
  }

  /** Runs fn on every container, a service only once all services depending on it are done. */
  async inReverseDependencyOrder(
    list: ProjectContainer[],
    fn: (c: ProjectContainer) => Promise<void>,
  ): Promise<void> {
    // Only enabled services: their graph is known to be acyclic.
    const all = this.project.services;
    const services = [...new Set(list.map((c) => c.service))];
    const done = new Map<string, Promise<void>>();
    const run = (svc: string): Promise<void> => {
      let pr = done.get(svc);
      if (pr) return pr;
      const dependents = services.filter((x) => x !== svc && all[x]?.depends_on?.[svc]);
      pr = Promise.resolve().then(async () => {
        await Promise.allSettled(dependents.map(run));
        await Promise.all(list.filter((c) => c.service === svc).map(fn));
      });
      done.set(svc, pr);
      return pr;
    };
    const results = await Promise.allSettled(services.map(run));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  async down(o: {
    volumes?: boolean;
    removeOrphans?: boolean;
    rmi?: 'all' | 'local';
    timeout?: number;
  }): Promise<void> {
    const p = this.project;
    const all = await projectContainers(this.client, p.name, { oneoff: true });
    const known = (c: ProjectContainer) => !!(p.services[c.service] || p.disabled[c.service]);
    const orphans = all.filter((c) => !known(c) && !c.oneoff);
    const targets = all.filter((c) => known(c) || (o.removeOrphans && !c.oneoff) || c.oneoff);
    if (orphans.length && !o.removeOrphans)
      this.progress.warn(
        `Found orphan containers (${orphans.map((c) => c.name).join(', ')}) for this project.`,
      );
    // As Docker Compose: dependents stop before their dependencies, unrelated services at once.
    await this.inReverseDependencyOrder(targets, (c) => this.stopAndRemove(c, o.timeout, !!o.volumes));
    for (const [key, n] of Object.entries(p.networks)) {
      if (n.external) continue;
      try {
        const info = await api.inspectNetwork(this.client, n.name!);
        if (info.Labels?.[L.PROJECT] && info.Labels[L.PROJECT] !== p.name) continue;
        this.progress.event('Network', n.name!, 'Removing');
        await api.removeNetwork(this.client, info.Id || n.name!);
        this.progress.event('Network', n.name!, 'Removed');
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
      void key;
    }
    if (o.volumes)
      for (const v of Object.values(p.volumes)) {
        if (v.external) continue;
        try {
          await api.removeVolume(this.client, v.name!);
          this.progress.event('Volume', v.name!, 'Removed');
        } catch (err) {
          if (!isNotFound(err)) throw err;
        }
      }
    if (o.rmi) {
      const refs = new Set<string>();
      for (const [name, s] of Object.entries({ ...p.services, ...p.disabled }))
        if (o.rmi === 'all' || !s.image) refs.add(imageOf(p, name, s));
      for (const ref of refs) {
        try {
          await this.client.removeImage(ref);
          this.progress.event('Image', ref, 'Removed');
        } catch (err) {
          if (!isNotFound(err)) this.progress.warn(`image ${ref}: ${(err as Error).message}`);
        }
      }
    }
  }
}

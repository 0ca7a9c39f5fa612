/**
 * `berth compose …` (and the `berth-compose` binary): Docker Compose's commands and flags over
 * the model (load.ts) and the reconciler (engine.ts), talking to the daemon only through the client.
 */
import { randomBytes } from 'node:crypto';
import { Command, Option } from 'commander';
import type { Client } from '../client/client.js';
import { type CliContext, connect } from '../cli/context.js';
import { ExitError } from '../cli/errors.js';
import { humanDuration } from '../common/units.js';
import { copyRaw, demux } from '../cli/stdio.js';
import { formatTable } from '../cli/table.js';
import { ComposeEngine, isNotFound, type UpOptions } from './engine.js';
import { ComposeError } from './errors.js';
import * as L from './labels.js';
import { dependencyOrder, loadProject } from './load.js';
import type { Project } from './model.js';
import { listProjects, type ProjectContainer, projectContainers } from './observe.js';
import { stderrProgress } from './progress.js';
import { renderConfig } from './render.js';
import { prefixFor, streamLogs } from './logmux.js';
import { configHash } from './spec.js';

interface GlobalOpts {
  file: string[];
  projectName?: string;
  projectDirectory?: string;
  profile: string[];
  envFile: string[];
  host?: string;
  ansi?: string;
}

const collect = (v: string, prev: string[]) => [...prev, v];

function globals(cmd: Command): GlobalOpts {
  let c: Command | null = cmd;
  while (c && c.name() !== 'compose') c = c.parent;
  return (c ?? cmd).opts() as GlobalOpts;
}

function load(cmd: Command, targets: string[] = []): Project {
  const g = globals(cmd);
  return loadProject({
    files: g.file,
    projectName: g.projectName,
    projectDirectory: g.projectDirectory,
    profiles: g.profile.length ? g.profile : undefined,
    envFiles: g.envFile,
    targets,
  });
}

async function client(ctx: CliContext, cmd: Command): Promise<Client> {
  const g = globals(cmd);
  if (g.host) ctx.hostFlag = g.host;
  return connect(ctx);
}

function checkServices(p: Project, names: string[]): void {
  for (const n of names)
    if (!p.services[n] && !p.disabled[n]) throw new ComposeError(`no such service: ${n}`);
}

function colourWanted(cmd: Command, noColor?: boolean): boolean {
  const ansi = globals(cmd).ansi ?? 'auto';
  if (noColor || ansi === 'never') return false;
  return ansi === 'always' || !!process.stdout.isTTY;
}

function parseScale(values: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of values) {
    const m = /^([^=]+)=(\d+)$/.exec(v);
    if (!m) throw new ComposeError(`invalid --scale ${JSON.stringify(v)}: use SERVICE=NUM`);
    out[m[1]] = Number(m[2]);
  }
  return out;
}

/** Follows the logs of the given containers with prefixes until all have ended. */
async function followLogs(
  c: Client,
  containers: ProjectContainer[],
  o: {
    follow: boolean;
    tail?: string;
    timestamps?: boolean;
    colour: boolean;
    prefix: boolean;
    since?: string;
    onExit?: (pc: ProjectContainer, code: number) => void;
  },
  handles: { closed: boolean; close?: () => void }[] = [],
): Promise<void> {
  const width = Math.max(0, ...containers.map((x) => x.name.length));
  const services = [...new Set(containers.map((x) => x.service))].sort();
  await Promise.all(
    containers.map(async (pc) => {
      const info = await c.inspectContainer(pc.id);
      const prefix = prefixFor(pc.name, services.indexOf(pc.service), {
        width,
        colour: o.colour,
        prefix: o.prefix,
      });
      const h = { closed: false } as { closed: boolean; close?: () => void };
      handles.push(h);
      await streamLogs(
        c,
        pc.id,
        prefix,
        { follow: o.follow, tail: o.tail, timestamps: o.timestamps, tty: info.Config.Tty, since: o.since },
        h,
      );
      if (o.onExit) {
        try {
          const after = await c.inspectContainer(pc.id);
          if (!after.State.Running) o.onExit(pc, after.State.ExitCode);
        } catch (err) {
          if (!isNotFound(err)) throw err;
        }
      }
    }),
  );
}

function psRow(c: ProjectContainer): Record<string, string> {
  const s = c.summary;
  const ports = (s.Ports ?? [])
    .map((p) =>
      p.PublicPort
        ? `${p.IP ?? '0.0.0.0'}:${p.PublicPort}->${p.PrivatePort}/${p.Type}`
        : `${p.PrivatePort}/${p.Type}`,
    )
    .join(', ');
  return {
    Name: c.name,
    Image: s.Image,
    Command: JSON.stringify(s.Command ?? ''),
    Service: c.service,
    Created: `${humanDuration(Date.now() - s.Created * 1000)} ago`,
    Status: s.Status,
    State: s.State,
    Ports: ports,
    ID: s.Id,
    Project: c.labels[L.PROJECT] ?? '',
  };
}

export function composeCommand(program: Command, ctx: CliContext): Command {
  const compose = program
    .command('compose')
    .description('Define and run multi-container applications')
    .option('-f, --file <file>', 'compose configuration files', collect, [])
    .option('-p, --project-name <name>', 'project name')
    .option('--project-directory <dir>', "alternate working directory (default: the first file's directory)")
    .option('--profile <profile>', 'profile to enable', collect, [])
    .option('--env-file <file>', 'alternate environment file', collect, [])
    .option('-H, --host <host>', 'daemon socket to connect to')
    .addOption(
      new Option('--ansi <when>', 'control when to print ANSI control characters').choices([
        'never',
        'always',
        'auto',
      ]),
    )
    .enablePositionalOptions();

  compose
    .command('config')
    .description('Parse, resolve and render the compose file in canonical format')
    .option('--services', 'print the service names, one per line')
    .option('--volumes', 'print the volume names, one per line')
    .option('--profiles', 'print the profile names, one per line')
    .option('-q, --quiet', 'only validate the configuration')
    .option('--hash <services>', 'print the config hash of the services ("*" for all)')
    .addOption(new Option('--format <format>', 'output format').choices(['yaml', 'json']).default('yaml'))
    .action(
      (
        o: {
          services?: boolean;
          volumes?: boolean;
          profiles?: boolean;
          quiet?: boolean;
          hash?: string;
          format: 'yaml' | 'json';
        },
        cmd: Command,
      ) => {
        const p = load(cmd);
        if (o.quiet) return;
        if (o.services)
          process.stdout.write(
            Object.keys(p.services)
              .map((s) => s + '\n')
              .join(''),
          );
        else if (o.volumes)
          process.stdout.write(
            Object.keys(p.volumes)
              .map((s) => s + '\n')
              .join(''),
          );
        else if (o.profiles) {
          const all = new Set(
            Object.values({ ...p.services, ...p.disabled }).flatMap((s) => s.profiles ?? []),
          );
          process.stdout.write(
            [...all]
              .sort()
              .map((s) => s + '\n')
              .join(''),
          );
        } else if (o.hash) {
          const names = o.hash === '*' ? Object.keys(p.services) : o.hash.split(',');
          checkServices(p, names);
          for (const n of names) process.stdout.write(`${n} ${configHash(p.services[n])}\n`);
        } else process.stdout.write(renderConfig(p, o.format));
      },
    );

  compose
    .command('up')
    .description('Create and start containers')
    .argument('[services...]')
    .option('-d, --detach', 'run containers in the background')
    .option('--build', 'build images before starting containers')
    .option('--no-build', "don't build an image, even if it's missing")
    .option('--force-recreate', 'recreate containers even if their configuration has not changed')
    .option('--no-recreate', "if containers already exist, don't recreate them")
    .option('--no-deps', "don't start linked services")
    .option('--no-start', "don't start the services after creating them")
    .option('--scale <service=num>', 'scale SERVICE to NUM instances', collect, [])
    .option('--wait', 'wait for services to be running|healthy (implies --detach)')
    .option('--wait-timeout <seconds>', 'maximum duration to wait for the project to be running|healthy')
    .option('--remove-orphans', 'remove containers for services not defined in the compose file')
    .option('--abort-on-container-exit', 'stop all containers if any container was stopped')
    .option('--no-color', 'produce monochrome output')
    .option('--no-log-prefix', "don't print a prefix in logs")
    .option('-t, --timeout <seconds>', 'shutdown timeout in seconds')
    .addOption(
      new Option('--pull <policy>', 'pull image before running').choices(['always', 'missing', 'never']),
    )
    .action(async (services: string[], o: Record<string, unknown>, cmd: Command) => {
      const p = load(cmd, services);
      const c = await client(ctx, cmd);
      const engine = new ComposeEngine(c, p, stderrProgress());
      const up: UpOptions = {
        services,
        build: !!o.build,
        noBuild: o.build === false,
        forceRecreate: !!o.forceRecreate,
        noRecreate: o.recreate === false,
        noDeps: o.deps === false,
        noStart: o.start === false,
        scale: parseScale(o.scale as string[]),
        removeOrphans: !!o.removeOrphans,
        wait: !!o.wait,
        waitTimeoutSec: o.waitTimeout ? Number(o.waitTimeout) : undefined,
        pull: o.pull as UpOptions['pull'],
      };
      for (const s of Object.keys(up.scale ?? {})) checkServices(p, [s]);
      // Attached output starts with what the containers print from now on (started below).
      const since = (Date.now() / 1000).toFixed(3);
      await engine.up(up);
      if (o.detach || o.wait || o.start === false) return;
      await attached(c, engine, p, services, o, cmd, since);
    });

  compose
    .command('down')
    .description('Stop and remove containers, networks')
    .option('-v, --volumes', 'remove named volumes declared in the volumes section and anonymous volumes')
    .addOption(new Option('--rmi <type>', 'remove images used by services').choices(['local', 'all']))
    .option('--remove-orphans', 'remove containers for services not defined in the compose file')
    .option('-t, --timeout <seconds>', 'shutdown timeout in seconds')
    .action(
      async (
        o: { volumes?: boolean; rmi?: 'local' | 'all'; removeOrphans?: boolean; timeout?: string },
        cmd: Command,
      ) => {
        const p = load(cmd);
        const c = await client(ctx, cmd);
        await new ComposeEngine(c, p, stderrProgress()).down({
          volumes: o.volumes,
          rmi: o.rmi,
          removeOrphans: o.removeOrphans,
          timeout: o.timeout === undefined ? undefined : Number(o.timeout),
        });
      },
    );

  compose
    .command('ps')
    .description('List containers')
    .argument('[services...]')
    .option('-a, --all', 'show all stopped containers')
    .option('-q, --quiet', 'only display IDs')
    .option('--services', 'display services')
    .option('--format <format>', 'format the output: table or json', 'table')
    .option('--status <status>', 'filter services by status', collect, [])
    .action(
      async (
        services: string[],
        o: { all?: boolean; quiet?: boolean; services?: boolean; format: string; status: string[] },
        cmd: Command,
      ) => {
        const p = load(cmd);
        checkServices(p, services);
        const c = await client(ctx, cmd);
        let list = await projectContainers(c, p.name, { services, all: !!o.all || o.status.length > 0 });
        if (o.status.length) list = list.filter((x) => o.status.includes(x.state));
        if (o.quiet) return void process.stdout.write(list.map((x) => x.id + '\n').join(''));
        if (o.services)
          return void process.stdout.write(
            [...new Set(list.map((x) => x.service))].map((s) => s + '\n').join(''),
          );
        const rows = list.map(psRow);
        if (o.format === 'json')
          return void process.stdout.write(rows.map((r) => JSON.stringify(r) + '\n').join(''));
        const cols = ['Name', 'Image', 'Command', 'Service', 'Created', 'Status', 'Ports'];
        process.stdout.write(
          formatTable([cols.map((x) => x.toUpperCase()), ...rows.map((r) => cols.map((k) => r[k]))]),
        );
      },
    );

  compose
    .command('logs')
    .description('View output from containers')
    .argument('[services...]')
    .option('-f, --follow', 'follow log output')
    .option('-n, --tail <n>', 'number of lines to show from the end of the logs for each container', 'all')
    .option('-t, --timestamps', 'show timestamps')
    .option('--since <since>', 'show logs since a timestamp or relative time')
    .option('--no-color', 'produce monochrome output')
    .option('--no-log-prefix', "don't print a prefix in logs")
    .action(
      async (
        services: string[],
        o: {
          follow?: boolean;
          tail: string;
          timestamps?: boolean;
          since?: string;
          color: boolean;
          logPrefix: boolean;
        },
        cmd: Command,
      ) => {
        const p = load(cmd);
        checkServices(p, services);
        const c = await client(ctx, cmd);
        const list = await projectContainers(c, p.name, { services });
        await followLogs(c, list, {
          follow: !!o.follow,
          tail: o.tail,
          timestamps: o.timestamps,
          since: o.since,
          colour: colourWanted(cmd, !o.color),
          prefix: o.logPrefix,
        });
      },
    );

  compose
    .command('build')
    .description('Build or rebuild services')
    .argument('[services...]')
    .option('--no-cache', 'do not use cache when building the image')
    .option('--pull', 'always attempt to pull a newer version of the image')
    .option('-q, --quiet', "don't print anything to stdout")
    .action(async (services: string[], o: { cache: boolean; pull?: boolean }, cmd: Command) => {
      const p = load(cmd, services);
      checkServices(p, services);
      const c = await client(ctx, cmd);
      const engine = new ComposeEngine(c, p, stderrProgress());
      for (const n of services.length ? services : Object.keys(p.services))
        if (p.services[n]?.build) await engine.buildService(n, { noCache: !o.cache, pull: o.pull });
    });

  compose
    .command('pull')
    .description('Pull service images')
    .argument('[services...]')
    .option('-q, --quiet', 'pull without printing progress information')
    .option('--ignore-pull-failures', 'pull what it can and ignore images with pull failures')
    .option('--ignore-buildable', 'ignore images that can be built')
    .action(
      async (
        services: string[],
        o: { quiet?: boolean; ignorePullFailures?: boolean; ignoreBuildable?: boolean },
        cmd: Command,
      ) => {
        const p = load(cmd, services);
        checkServices(p, services);
        const c = await client(ctx, cmd);
        const engine = new ComposeEngine(c, p, stderrProgress(o.quiet));
        for (const n of services.length ? services : Object.keys(p.services)) {
          const s = p.services[n];
          if (!s.image || (s.build && o.ignoreBuildable)) continue;
          try {
            await engine.pullImage(s.image, o.quiet);
          } catch (err) {
            // A service that can be built may lack a pullable image.
            if (o.ignorePullFailures || s.build) engine.progress.warn((err as Error).message);
            else throw err;
          }
        }
      },
    );

  compose
    .command('push')
    .description('Push service images')
    .argument('[services...]')
    .option('--ignore-push-failures', 'push what it can and ignore images with push failures')
    .action(async (services: string[], o: { ignorePushFailures?: boolean }, cmd: Command) => {
      const p = load(cmd, services);
      checkServices(p, services);
      const c = await client(ctx, cmd);
      const { pushImage } = await import('../client/objects.js');
      for (const n of services.length ? services : Object.keys(p.services)) {
        const s = p.services[n];
        if (!s.image) continue;
        const [repo, tag] = splitTag(s.image);
        process.stderr.write(` Image ${s.image}  Pushing\n`);
        let failure: string | undefined;
        try {
          await pushImage(c, repo, tag, (m) => {
            if (typeof m.error === 'string') failure = m.error;
          });
        } catch (err) {
          // Refused before any transfer (no such image, bad name): a failure like any other.
          if (!o.ignorePushFailures) throw err;
          failure = (err as Error).message;
        }
        if (failure) {
          if (o.ignorePushFailures) process.stderr.write(`WARN[0000] push ${s.image}: ${failure}\n`);
          else throw new ComposeError(`push ${s.image}: ${failure}`);
        } else process.stderr.write(` Image ${s.image}  Pushed\n`);
      }
    });

  for (const [verb, desc] of [
    ['start', 'Start services'],
    ['stop', 'Stop services'],
    ['restart', 'Restart service containers'],
  ] as const) {
    compose
      .command(verb)
      .description(desc)
      .argument('[services...]')
      .option('-t, --timeout <seconds>', 'shutdown timeout in seconds')
      .action(async (services: string[], o: { timeout?: string }, cmd: Command) => {
        const p = load(cmd);
        checkServices(p, services);
        const c = await client(ctx, cmd);
        const engine = new ComposeEngine(c, p, stderrProgress());
        const t = o.timeout === undefined ? undefined : Number(o.timeout);
        const list = await projectContainers(c, p.name, { services });
        const known = [...new Set(list.map((x) => x.service))];
        const order =
          verb === 'stop' ? engine.reverseOrder(known) : dependencyOrder(p).filter((n) => known.includes(n));
        for (const n of known) if (!order.includes(n)) order.push(n);
        if (verb === 'start' && list.length === 0)
          throw new ComposeError('service(s) have no container to start: run `compose up`');
        for (const svc of order)
          for (const pc of list.filter((x) => x.service === svc)) {
            if (verb === 'start') {
              if (pc.state !== 'running') await engine.startContainer(pc.id, pc.name);
            } else if (verb === 'stop') {
              if (pc.state !== 'running') continue;
              engine.progress.event('Container', pc.name, 'Stopping');
              await c.stopContainer(pc.id, t ?? engine.stopTimeout(pc.service));
              engine.progress.event('Container', pc.name, 'Stopped');
            } else {
              engine.progress.event('Container', pc.name, 'Restarting');
              await c.restartContainer(pc.id, t ?? engine.stopTimeout(pc.service));
              engine.progress.event('Container', pc.name, 'Started');
            }
          }
      });
  }

  compose
    .command('rm')
    .description('Removes stopped service containers')
    .argument('[services...]')
    .option('-f, --force', "don't ask to confirm removal")
    .option('-s, --stop', 'stop the containers, if required, before removing')
    .option('-v, --volumes', 'remove any anonymous volumes attached to containers')
    .action(
      async (services: string[], o: { force?: boolean; stop?: boolean; volumes?: boolean }, cmd: Command) => {
        const p = load(cmd);
        checkServices(p, services);
        const c = await client(ctx, cmd);
        const engine = new ComposeEngine(c, p, stderrProgress());
        let list = await projectContainers(c, p.name, { services });
        if (o.stop) {
          for (const pc of list.filter((x) => x.state === 'running')) {
            await c.stopContainer(pc.id, engine.stopTimeout(pc.service));
            engine.progress.event('Container', pc.name, 'Stopped');
          }
          list = await projectContainers(c, p.name, { services });
        }
        const stopped = list.filter(
          (x) => x.state !== 'running' && x.state !== 'restarting' && x.state !== 'paused',
        );
        if (stopped.length === 0) return void process.stderr.write('No stopped containers\n');
        if (!o.force) process.stderr.write(`Going to remove ${stopped.map((x) => x.name).join(', ')}\n`);
        for (const pc of stopped) {
          await c.removeContainer(pc.id, { volumes: o.volumes });
          engine.progress.event('Container', pc.name, 'Removed');
        }
      },
    );

  compose
    .command('exec')
    .description('Execute a command in a running container')
    .argument('<service>')
    .argument('<command...>')
    .option('-d, --detach', 'detached mode: run command in the background')
    .option('-T, --no-TTY', 'disable pseudo-TTY allocation')
    .option('-e, --env <KEY=VAL>', 'set environment variables', collect, [])
    .option('-u, --user <user>', 'run the command as this user')
    .option('-w, --workdir <dir>', 'path to workdir directory for this command')
    .option('--privileged', 'give extended privileges to the process')
    .option('--index <n>', 'index of the container if service has multiple replicas', '1')
    .passThroughOptions()
    .action(
      async (
        service: string,
        command: string[],
        o: {
          detach?: boolean;
          TTY: boolean;
          env: string[];
          user?: string;
          workdir?: string;
          privileged?: boolean;
          index: string;
        },
        cmd: Command,
      ) => {
        const p = load(cmd);
        checkServices(p, [service]);
        const c = await client(ctx, cmd);
        const list = (await projectContainers(c, p.name, { services: [service], all: false })).filter(
          (x) => x.number === Number(o.index),
        );
        if (!list.length) throw new ComposeError(`service "${service}" is not running`);
        const tty = o.TTY && !!process.stdin.isTTY && !o.detach;
        const code = await execIn(c, list[0].id, command, {
          tty,
          interactive: !o.detach && !!process.stdin.isTTY,
          detach: !!o.detach,
          env: o.env,
          user: o.user,
          workdir: o.workdir,
          privileged: !!o.privileged,
        });
        if (code) throw new ExitError(code);
      },
    );

  compose
    .command('run')
    .description('Run a one-off command on a service')
    .argument('<service>')
    .argument('[command...]')
    .option('-d, --detach', 'run container in background and print container ID')
    .option('--rm', 'automatically remove the container when it exits')
    .option('--name <name>', 'assign a name to the container')
    .option('-e, --env <KEY=VAL>', 'set environment variables', collect, [])
    .option('-l, --label <KEY=VAL>', 'add or override a label', collect, [])
    .option('--entrypoint <cmd>', 'override the entrypoint of the image')
    .option('-u, --user <user>', 'run as specified username or uid')
    .option('-w, --workdir <dir>', 'working directory inside the container')
    .option('-T, --no-TTY', 'disable pseudo-TTY allocation')
    .option('-i, --interactive', 'keep STDIN open even if not attached')
    .option('--no-deps', "don't start linked services")
    .option('--service-ports', "run command with the service's ports enabled and mapped to the host")
    .option('--build', 'build image before starting container')
    .passThroughOptions()
    .action(async (service: string, command: string[], o: Record<string, unknown>, cmd: Command) => {
      const p = load(cmd, [service]);
      checkServices(p, [service]);
      const c = await client(ctx, cmd);
      const engine = new ComposeEngine(c, p, stderrProgress());
      const s = p.services[service];
      const deps = o.deps === false ? [] : dependencyOrder(p, [service]).filter((n) => n !== service);
      if (deps.length) await engine.up({ services: deps, build: !!o.build });
      await engine.prepareImages([service], { build: !!o.build });
      const res = engine.resourcesOf([service]);
      await engine.ensureNetworks(res.networks);
      await engine.ensureVolumes(res.volumes);
      for (const [dep, d] of Object.entries(s.depends_on ?? {}))
        if (deps.includes(dep)) await engine.waitCondition(dep, d.condition);
      const tty = (o.TTY as boolean) && !!process.stdin.isTTY && !o.detach;
      const interactive = !o.detach && (!!o.interactive || !!process.stdin.isTTY);
      const labels: Record<string, string> = {};
      for (const l of o.label as string[]) {
        const eq = l.indexOf('=');
        labels[eq < 0 ? l : l.slice(0, eq)] = eq < 0 ? '' : l.slice(eq + 1);
      }
      const slug = randomBytes(6).toString('hex');
      const name = (o.name as string | undefined) ?? `${p.name}-${service}-run-${slug}`;
      const id = await engine.createContainer(service, 1, {
        oneoff: true,
        name,
        override: {
          command: command.length ? command : undefined,
          entrypoint: o.entrypoint ? [o.entrypoint as string] : undefined,
          env: o.env as string[],
          tty,
          interactive,
          autoRemove: !!o.rm,
          user: o.user as string | undefined,
          workdir: o.workdir as string | undefined,
          noPorts: !o.servicePorts,
          labels: { ...labels, [L.SLUG]: slug },
        },
      });
      if (o.detach) {
        await c.startContainer(id);
        process.stdout.write(name + '\n');
        return;
      }
      const code = await runAttached(c, id, { tty, interactive, rm: !!o.rm });
      if (code) throw new ExitError(code);
    });

  compose
    .command('ls')
    .description('List running compose projects')
    .option('-a, --all', 'show all stopped compose projects')
    .option('-q, --quiet', 'only display project names')
    .option('--format <format>', 'format the output: table or json', 'table')
    .action(async (o: { all?: boolean; quiet?: boolean; format: string }, cmd: Command) => {
      const c = await client(ctx, cmd);
      const projects = await listProjects(c, !!o.all);
      if (o.quiet) return void process.stdout.write(projects.map((x) => x.name + '\n').join(''));
      if (o.format === 'json')
        return void process.stdout.write(
          JSON.stringify(
            projects.map((x) => ({ Name: x.name, Status: x.status, ConfigFiles: x.configFiles })),
          ) + '\n',
        );
      process.stdout.write(
        formatTable([
          ['NAME', 'STATUS', 'CONFIG FILES'],
          ...projects.map((x) => [x.name, x.status, x.configFiles]),
        ]),
      );
    });

  compose
    .command('top')
    .description('Display the running processes')
    .argument('[services...]')
    .action(async (services: string[], _o: unknown, cmd: Command) => {
      const p = load(cmd);
      checkServices(p, services);
      const c = await client(ctx, cmd);
      const list = await projectContainers(c, p.name, { services, all: false });
      for (const pc of list) {
        const top = await c.topContainer(pc.id);
        process.stdout.write(`${pc.name}\n`);
        process.stdout.write(formatTable([top.Titles, ...top.Processes]) + '\n');
      }
    });

  compose
    .command('images')
    .description('List images used by the created containers')
    .argument('[services...]')
    .option('-q, --quiet', 'only display IDs')
    .option('--format <format>', 'format the output: table or json', 'table')
    .action(async (services: string[], o: { quiet?: boolean; format: string }, cmd: Command) => {
      const p = load(cmd);
      checkServices(p, services);
      const c = await client(ctx, cmd);
      const list = await projectContainers(c, p.name, { services });
      const rows: Record<string, string | number>[] = [];
      for (const pc of list) {
        let repo = pc.image;
        let tag = '';
        let size = 0;
        let id = pc.imageId;
        try {
          const img = await c.inspectImage(pc.imageId || pc.image);
          id = img.Id;
          size = img.Size;
          const ref =
            img.RepoTags?.find((t) => t === pc.image || t === `${pc.image}:latest`) ?? img.RepoTags?.[0];
          if (ref) {
            const [r, t] = splitTag(ref);
            repo = r;
            tag = t ?? 'latest';
          }
        } catch (err) {
          if (!isNotFound(err)) throw err;
        }
        rows.push({ Container: pc.name, Repository: repo, Tag: tag ?? 'latest', ID: id, Size: size });
      }
      if (o.quiet)
        return void process.stdout.write(
          [...new Set(rows.map((r) => String(r.ID)))].map((x) => x + '\n').join(''),
        );
      if (o.format === 'json') return void process.stdout.write(JSON.stringify(rows) + '\n');
      const { humanSize } = await import('../common/units.js');
      process.stdout.write(
        formatTable([
          ['CONTAINER', 'REPOSITORY', 'TAG', 'IMAGE ID', 'SIZE'],
          ...rows.map((r) => [
            String(r.Container),
            String(r.Repository),
            String(r.Tag || 'latest'),
            String(r.ID)
              .replace(/^sha256:/, '')
              .slice(0, 12),
            humanSize(Number(r.Size)),
          ]),
        ]),
      );
    });

  return compose;
}

function splitTag(ref: string): [string, string | undefined] {
  const at = ref.indexOf('@');
  if (at >= 0) return [ref.slice(0, at), undefined];
  const colon = ref.lastIndexOf(':');
  if (colon > ref.lastIndexOf('/')) return [ref.slice(0, colon), ref.slice(colon + 1)];
  return [ref, undefined];
}

/** Attached `up`: every container's output with its prefix; Ctrl-C stops the project. */
async function attached(
  c: Client,
  engine: ComposeEngine,
  p: Project,
  services: string[],
  o: Record<string, unknown>,
  cmd: Command,
  since: string,
): Promise<void> {
  const names = dependencyOrder(p, services, o.deps === false);
  const list = await projectContainers(c, p.name, { services: names });
  const handles: { closed: boolean; close?: () => void }[] = [];
  let stopping: Promise<void> | undefined;
  const timeout = o.timeout === undefined ? undefined : Number(o.timeout);
  const stopAll = () => {
    stopping ??= (async () => {
      for (const svc of engine.reverseOrder(names))
        await Promise.all(
          list
            .filter((x) => x.service === svc)
            .map(async (x) => {
              engine.progress.event('Container', x.name, 'Stopping');
              await c.stopContainer(x.id, timeout ?? engine.stopTimeout(x.service)).catch(() => undefined);
              engine.progress.event('Container', x.name, 'Stopped');
            }),
        );
    })();
    return stopping;
  };
  let interrupts = 0;
  const onSigint = () => {
    interrupts++;
    if (interrupts === 1) {
      process.stderr.write('Gracefully stopping... (press Ctrl+C again to force)\n');
      void stopAll();
    } else {
      for (const x of list) void c.killContainer(x.id).catch(() => undefined);
      for (const h of handles) h.close?.();
    }
  };
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigint);
  process.stderr.write('Attaching to ' + list.map((x) => x.name).join(', ') + '\n');
  try {
    await followLogs(
      c,
      list,
      {
        follow: true,
        tail: 'all',
        colour: colourWanted(cmd, o.color === false),
        prefix: o.logPrefix !== false,
        since,
        onExit: (pc, code) => {
          process.stdout.write(`${pc.name} exited with code ${code}\n`);
          if (o.abortOnContainerExit && !stopping) {
            process.stderr.write('Aborting on container exit...\n');
            void stopAll();
          }
        },
      },
      handles,
    );
    if (stopping) await stopping;
  } finally {
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigint);
  }
  if (interrupts) throw new ExitError(130);
}

async function execIn(
  c: Client,
  container: string,
  command: string[],
  o: {
    tty: boolean;
    interactive: boolean;
    detach: boolean;
    env: string[];
    user?: string;
    workdir?: string;
    privileged: boolean;
  },
): Promise<number> {
  const { Id } = await c.createExec(container, {
    AttachStdin: o.interactive,
    AttachStdout: !o.detach,
    AttachStderr: !o.detach,
    Tty: o.tty,
    Cmd: command,
    Env: o.env,
    User: o.user ?? '',
    WorkingDir: o.workdir ?? '',
    Privileged: o.privileged,
  });
  if (o.detach) {
    await c.startExecDetached(Id, o.tty);
    return 0;
  }
  const sock = await c.hijack(`/exec/${Id}/start`, undefined, { Detach: false, Tty: o.tty });
  const done = o.tty ? copyRaw(sock, process.stdout) : demux(sock, process.stdout, process.stderr);
  pipeStdin(sock, o.interactive, o.tty);
  await done.finally(() => restoreStdin(o.tty && o.interactive));
  return (await c.inspectExec(Id)).ExitCode ?? 0;
}

function pipeStdin(sock: import('node:net').Socket, interactive: boolean, tty: boolean): void {
  if (!interactive) {
    sock.end();
    return;
  }
  if (tty && process.stdin.isTTY) process.stdin.setRawMode(true);
  process.stdin.on('data', (d: Buffer) => sock.write(d));
  process.stdin.on('end', () => {
    if (!tty) sock.end();
  });
}

function restoreStdin(raw: boolean): void {
  if (raw && process.stdin.isTTY) process.stdin.setRawMode(false);
  process.stdin.pause();
}

async function runAttached(
  c: Client,
  id: string,
  o: { tty: boolean; interactive: boolean; rm: boolean },
): Promise<number> {
  const sock = await c.hijack(`/containers/${id}/attach`, {
    stream: 1,
    stdin: o.interactive ? 1 : 0,
    stdout: 1,
    stderr: 1,
  });
  const done = o.tty ? copyRaw(sock, process.stdout) : demux(sock, process.stdout, process.stderr);
  pipeStdin(sock, o.interactive, o.tty);
  const wait = await c.waitContainer(id, o.rm ? 'removed' : 'next-exit');
  await c.startContainer(id);
  await done.finally(() => restoreStdin(o.tty && o.interactive));
  const r = await wait.result;
  if (r.Error) throw new ComposeError(r.Error.Message);
  return r.StatusCode;
}

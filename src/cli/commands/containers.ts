import type { Command } from 'commander';
import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { ApiError, type Client, type ContainerSummary } from '../../client/client.js';
import { type CliContext, connect } from '../context.js';
import { describeError, ExitError } from '../errors.js';
import { type Column, printInspect, printRows } from '../output.js';
import { updateBody, type UpdateFlags, createBody, type RunFlags } from '../runflags.js';
import { copyRaw, demux, terminalSize } from '../stdio.js';
import { binarySize } from '../../common/units.js';
import { formatTable, humanSize, truncateId } from '../table.js';
import { goTime, parseFilterFlags, pullWithProgress, since, splitRepoTag } from './images.js';
import { formatPorts } from './network.js';
import { relativeTime } from './system.js';

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

/** The cgroup limits `run`/`create` and `update` share. */
function addLimitFlags(cmd: Command): Command {
  return cmd
    .option('-m, --memory <bytes>', 'memory limit')
    .option('--memory-swap <bytes>', 'swap limit equal to memory plus swap: -1 to enable unlimited swap')
    .option('--memory-reservation <bytes>', 'memory soft limit')
    .option('--cpus <n>', 'number of CPUs')
    .option('-c, --cpu-shares <n>', 'CPU shares (relative weight)')
    .option('--cpu-period <n>', 'limit CPU CFS period')
    .option('--cpu-quota <n>', 'limit CPU CFS quota')
    .option('--cpuset-cpus <cpus>', 'CPUs in which to allow execution (0-3, 0,1)')
    .option('--cpuset-mems <mems>', 'MEMs in which to allow execution')
    .option('--pids-limit <n>', 'tune container pids limit (-1 for unlimited)')
    .option('--blkio-weight <n>', 'block IO (relative weight), between 10 and 1000');
}

function addRunFlags(cmd: Command): Command {
  return addLimitFlags(cmd)
    .option('-d, --detach', 'run container in background and print container ID')
    .option('--rm', 'automatically remove the container when it exits')
    .option('--oom-score-adj <n>', "tune the host's OOM preferences (-1000 to 1000)")
    .option('-i, --interactive', 'keep STDIN open even if not attached')
    .option('-t, --tty', 'allocate a pseudo-TTY')
    .option('--name <name>', 'assign a name to the container')
    .option('-e, --env <env>', 'set environment variables', collect, [])
    .option('--env-file <file>', 'read in a file of environment variables', collect, [])
    .option('-w, --workdir <dir>', 'working directory inside the container')
    .option('-u, --user <user>', 'username or UID (format: <name|uid>[:<group|gid>])')
    .option('--entrypoint <cmd>', 'overwrite the default ENTRYPOINT of the image')
    .option('-h, --hostname <name>', 'container host name')
    .option('-l, --label <label>', 'set meta data on a container', collect, [])
    .option('--init', 'run an init inside the container that forwards signals and reaps processes')
    .option('--stop-signal <signal>', 'signal to stop the container')
    .option('--stop-timeout <seconds>', 'timeout (in seconds) to stop a container')
    .option('--oom-kill-disable', 'disable OOM killer')
    .option('--shm-size <bytes>', 'size of /dev/shm')
    .option('--ulimit <ulimit>', 'ulimit options', collect, [])
    .option('--cap-add <cap>', 'add Linux capabilities', collect, [])
    .option('--cap-drop <cap>', 'drop Linux capabilities', collect, [])
    .option('--privileged', 'give extended privileges to this container')
    .option('--read-only', "mount the container's root filesystem as read only")
    .option('--tmpfs <mount>', 'mount a tmpfs directory', collect, [])
    .option('--security-opt <opt>', 'security options', collect, [])
    .option('--group-add <group>', 'add additional groups to join', collect, [])
    .option(
      '--network <mode>',
      'connect a container to a network (bridge, host, none, container:<id>, or a name)',
    )
    .option('--pid <mode>', 'PID namespace to use')
    .option('--ipc <mode>', 'IPC mode to use')
    .option('--uts <mode>', 'UTS namespace to use')
    .option('--restart <policy>', 'restart policy to apply when a container exits', undefined)
    .option('-p, --publish <port>', "publish a container's port(s) to the host", collect, [])
    .option('--expose <port>', 'expose a port or a range of ports', collect, [])
    .option('-P, --publish-all', 'publish all exposed ports to random ports')
    .option('--dns <ip>', 'set custom DNS servers', collect, [])
    .option('--dns-search <domain>', 'set custom DNS search domains', collect, [])
    .option('--dns-option <option>', 'set DNS options', collect, [])
    .option('--add-host <host:ip>', 'add a custom host-to-IP mapping (host:ip)', collect, [])
    .option('--ip <address>', 'IPv4 address (e.g., 172.30.100.104)')
    .option('--mac-address <mac>', 'container MAC address (e.g., 92:d0:c6:0a:29:33)')
    .option('--network-alias <alias>', 'add network-scoped alias for the container', collect, [])
    .option('--network-rate <rate>', 'limit network bandwidth in and out (e.g. 10mbit)')
    .option('--platform <platform>', 'set platform if server is multi-platform capable')
    .option('--pull <when>', 'pull image before running ("always", "missing", "never")', 'missing')
    .option('--detach-keys <keys>', 'override the key sequence for detaching a container')
    .option('-v, --volume <volume>', 'bind mount a volume', collect, [])
    .option('--mount <mount>', 'attach a filesystem mount to the container', collect, [])
    .option('--volumes-from <container>', 'mount volumes from the specified container(s)', collect, [])
    .option('--device <device>', 'add a host device to the container', collect, [])
    .option('--device-read-bps <rate>', 'limit read rate (bytes per second) from a device', collect, [])
    .option('--device-write-bps <rate>', 'limit write rate (bytes per second) to a device', collect, [])
    .option('--health-cmd <cmd>', 'command to run to check health')
    .option('--health-interval <duration>', 'time between running the check (ms|s|m|h)')
    .option('--health-timeout <duration>', 'maximum time to allow one check to run (ms|s|m|h)')
    .option('--health-retries <n>', 'consecutive failures needed to report unhealthy')
    .option('--health-start-period <duration>', 'start period for the container to initialize')
    .option('--health-start-interval <duration>', 'time between running the check during the start period')
    .option('--no-healthcheck', 'disable any container-specified HEALTHCHECK')
    .option('--log-driver <driver>', 'logging driver for the container')
    .option('--log-opt <opt>', 'log driver options', collect, [])
    .passThroughOptions();
}

/** Creates a container, pulling the image first when it is missing (`--pull missing`) or always. */
async function createContainer(client: Client, image: string, cmd: string[], f: RunFlags): Promise<string> {
  const body = createBody(image, cmd, f);
  const policy = f.pull ?? 'missing';
  if (!['missing', 'always', 'never'].includes(policy))
    throw new ExitError(
      125,
      `invalid pull option: '${policy}': must be one of "always", "missing" or "never"`,
    );
  const create = async () => {
    const r = await client.createContainer(body, f.name, f.platform);
    for (const w of r.Warnings ?? []) process.stderr.write(`WARNING: ${w}\n`);
    return r.Id;
  };
  try {
    if (policy === 'always')
      await pullWithProgress(client, image, { platform: f.platform, out: process.stderr });
    return await create();
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 404 && /No such image/.test(err.message)))
      throw runError(err);
    // Docker names the tag it looked for: 'hello-world:latest'
    const shown = image.includes('@') || splitRepoTag(image).tag ? image : `${image}:latest`;
    process.stderr.write(`Unable to find image '${shown}' locally\n`);
    if (policy === 'never') throw runError(err);
    try {
      await pullWithProgress(client, image, { platform: f.platform, out: process.stderr });
      return await create();
    } catch (e) {
      throw runError(e);
    }
  }
}

function runError(err: unknown): ExitError {
  if (err instanceof ExitError) return err;
  return new ExitError(125, `berth: ${describeError(err)}\n\nRun 'berth run --help' for more information`);
}

/** docker's mapping of a failed start's message to an exit code. */
function startExitCode(msg: string): number {
  if (/executable file not found|no such file or directory|not found/.test(msg)) return 127;
  if (/permission denied|is a directory|cannot execute/.test(msg)) return 126;
  return 125;
}

/** Attaches to a container's stdio (before it starts, so nothing is lost) and streams until it ends. */
async function attachAndStream(
  client: Client,
  id: string,
  opts: { tty: boolean; stdin: boolean; detachKeys?: string },
): Promise<{ done: Promise<void>; afterStart: () => void }> {
  const sock = await client.hijack(`/containers/${id}/attach`, {
    stream: 1,
    stdin: opts.stdin ? 1 : 0,
    stdout: 1,
    stderr: 1,
    detachKeys: opts.detachKeys,
  });
  const done = opts.tty ? copyRaw(sock, process.stdout) : demux(sock, process.stdout, process.stderr);
  let restoreTty = () => {};
  if (opts.stdin) {
    if (opts.tty && process.stdin.isTTY) {
      process.stdin.setRawMode(true);
      restoreTty = () => process.stdin.setRawMode(false);
    }
    process.stdin.on('data', (d: Buffer) => sock.write(d));
    process.stdin.on('end', () => {
      if (!opts.tty) sock.end();
    });
  } else sock.end();
  const afterStart = () => {
    if (!opts.tty) return;
    const resize = () => {
      const size = terminalSize();
      if (size) client.resizeContainer(id, size.rows, size.cols).catch(() => undefined);
    };
    resize();
    process.stdout.on('resize', resize);
  };
  return {
    done: done.finally(() => {
      restoreTty();
      // process.stdin is made on first use: only a command that reads it touches it
      if (opts.stdin) process.stdin.pause();
    }),
    afterStart,
  };
}

async function runCommand(ctx: CliContext, image: string, cmd: string[], f: RunFlags): Promise<number> {
  const client = await connect(ctx);
  const id = await createContainer(client, image, cmd, f);
  if (f.detach) {
    try {
      await client.startContainer(id);
    } catch (err) {
      throw new ExitError(startExitCode(describeError(err)), `berth: ${describeError(err)}`);
    }
    process.stdout.write(id + '\n');
    return 0;
  }
  // Attached and waited for (both before the start, so no output or exit is missed), at once.
  const [stream, wait] = await Promise.all([
    attachAndStream(client, id, { tty: !!f.tty, stdin: !!f.interactive, detachKeys: f.detachKeys }),
    client.waitContainer(id, f.rm ? 'removed' : 'next-exit'),
  ]);
  try {
    await client.startContainer(id);
  } catch (err) {
    const msg = describeError(err);
    throw new ExitError(startExitCode(msg), `berth: ${msg}`);
  }
  stream.afterStart();
  await stream.done;
  // The attach stream also ends when the user detaches (ctrl-p ctrl-q): then no exit code comes.
  const r = await Promise.race([
    wait.result,
    stream.done.then(() => new Promise<null>((res) => setTimeout(() => res(null), 2000).unref())),
  ]);
  if (r === null) return 0; // detached with the detach keys: the container keeps running
  if (r.Error) throw new ExitError(125, `berth: ${r.Error.Message}`);
  return r.StatusCode;
}

function psColumns(noTrunc: boolean): Column<ContainerSummary>[] {
  const cmd = (s: string) => {
    const c = noTrunc || s.length <= 20 ? s : s.slice(0, 19) + '…';
    return `"${c}"`;
  };
  return [
    { header: 'CONTAINER ID', field: 'ID', value: (c) => (noTrunc ? c.Id : truncateId(c.Id)) },
    { header: 'IMAGE', field: 'Image', value: (c) => c.Image },
    { header: 'COMMAND', field: 'Command', value: (c) => cmd(c.Command) },
    { header: 'CREATED', field: 'RunningFor', value: (c) => since(c.Created) },
    { header: 'STATUS', field: 'Status', value: (c) => c.Status },
    { header: 'PORTS', field: 'Ports', value: (c) => formatPorts(c.Ports ?? []) },
    { header: 'NAMES', field: 'Names', value: (c) => c.Names.map((n) => n.replace(/^\//, '')).join(',') },
  ];
}

/** `run`, under `parent` (the program or `container`). */
export function runCommandOf(parent: Command, ctx: CliContext): void {
  addRunFlags(parent.command('run').description('Create and run a new container from an image'))
    .argument('<image>')
    .argument('[command...]')
    .action(async (image: string, cmd: string[], f: RunFlags) => {
      const code = await runCommand(ctx, image, cmd, f);
      if (code !== 0) throw new ExitError(code);
    });
}

export function containerCommands(program: Command, ctx: CliContext): void {
  const container = program.command('container').description('Manage containers');

  for (const parent of [program, container]) {
    runCommandOf(parent, ctx);

    addRunFlags(parent.command('create').description('Create a new container'))
      .argument('<image>')
      .argument('[command...]')
      .action(async (image: string, cmd: string[], f: RunFlags) => {
        const client = await connect(ctx);
        process.stdout.write((await createContainer(client, image, cmd, f)) + '\n');
      });

    parent
      .command('start')
      .description('Start one or more stopped containers')
      .argument('<container...>')
      .option('-a, --attach', 'attach STDOUT/STDERR and forward signals')
      .option('-i, --interactive', "attach container's STDIN")
      .action(async (ids: string[], o: { attach?: boolean; interactive?: boolean }) => {
        const client = await connect(ctx);
        if (o.attach || o.interactive) {
          const info = await client.inspectContainer(ids[0]);
          const stream = await attachAndStream(client, info.Id, {
            tty: info.Config.Tty,
            stdin: !!o.interactive,
          });
          const wait = await client.waitContainer(info.Id, 'next-exit');
          await client.startContainer(info.Id);
          stream.afterStart();
          await stream.done;
          const r = await wait.result;
          if (r.StatusCode) throw new ExitError(r.StatusCode);
          return;
        }
        await eachContainer(ids, async (id) => {
          await client.startContainer(id);
          process.stdout.write(id + '\n');
        });
      });

    parent
      .command('attach')
      .description('Attach local standard input, output, and error streams to a running container')
      .argument('<container>')
      .option('--no-stdin', 'do not attach STDIN')
      .option('--detach-keys <keys>', 'override the key sequence for detaching a container')
      .action(async (ref: string, o: { stdin: boolean; detachKeys?: string }) => {
        const client = await connect(ctx);
        const info = await client.inspectContainer(ref);
        if (!info.State.Running)
          throw new ExitError(1, 'You cannot attach to a stopped container, start it first');
        const stream = await attachAndStream(client, info.Id, {
          tty: info.Config.Tty,
          stdin: o.stdin && info.Config.OpenStdin,
          detachKeys: o.detachKeys,
        });
        stream.afterStart();
        await stream.done;
        const after = await client.inspectContainer(info.Id).catch(() => undefined);
        if (after && !after.State.Running && after.State.ExitCode) throw new ExitError(after.State.ExitCode);
      });

    parent
      .command('logs')
      .description('Fetch the logs of a container')
      .argument('<container>')
      .option('-f, --follow', 'follow log output')
      .option('--tail <n>', 'number of lines to show from the end of the logs', 'all')
      .option('--since <time>', 'show logs since timestamp or relative (e.g. 42m)')
      .option('--until <time>', 'show logs before a timestamp or relative')
      .option('-t, --timestamps', 'show timestamps')
      .action(
        async (
          ref: string,
          o: { follow?: boolean; tail: string; since?: string; until?: string; timestamps?: boolean },
        ) => {
          const client = await connect(ctx);
          const info = await client.inspectContainer(ref);
          const res = await client.logs(info.Id, {
            stdout: 1,
            stderr: 1,
            follow: o.follow ? 1 : undefined,
            tail: o.tail,
            since: o.since ? relativeTime(o.since) : undefined,
            until: o.until ? relativeTime(o.until) : undefined,
            timestamps: o.timestamps ? 1 : undefined,
          });
          if (info.Config.Tty) await copyRaw(res.stream, process.stdout);
          else await demux(res.stream, process.stdout, process.stderr);
        },
      );

    parent
      .command('stop')
      .description('Stop one or more running containers')
      .argument('<container...>')
      .option('-t, --time <seconds>', 'seconds to wait before killing the container')
      .action(async (ids: string[], o: { time?: string }) => {
        const client = await connect(ctx);
        await eachContainer(ids, async (id) => {
          await client.stopContainer(id, o.time === undefined ? undefined : Number(o.time));
          process.stdout.write(id + '\n');
        });
      });

    parent
      .command('restart')
      .description('Restart one or more containers')
      .argument('<container...>')
      .option('-t, --time <seconds>', 'seconds to wait before killing the container')
      .action(async (ids: string[], o: { time?: string }) => {
        const client = await connect(ctx);
        await eachContainer(ids, async (id) => {
          await client.restartContainer(id, o.time === undefined ? undefined : Number(o.time));
          process.stdout.write(id + '\n');
        });
      });

    parent
      .command('kill')
      .description('Kill one or more running containers')
      .argument('<container...>')
      .option('-s, --signal <signal>', 'signal to send to the container')
      .action(async (ids: string[], o: { signal?: string }) => {
        const client = await connect(ctx);
        await eachContainer(ids, async (id) => {
          await client.killContainer(id, o.signal);
          process.stdout.write(id + '\n');
        });
      });

    for (const [name, verb] of [
      ['pause', 'pauseContainer'],
      ['unpause', 'unpauseContainer'],
    ] as const) {
      parent
        .command(name)
        .description(`${name === 'pause' ? 'Pause' : 'Unpause'} all processes within one or more containers`)
        .argument('<container...>')
        .action(async (ids: string[]) => {
          const client = await connect(ctx);
          await eachContainer(ids, async (id) => {
            await client[verb](id);
            process.stdout.write(id + '\n');
          });
        });
    }

    addLimitFlags(
      parent
        .command('update')
        .description('Update configuration of one or more containers')
        .argument('<container...>'),
    )
      .option('--restart <policy>', 'restart policy to apply when a container exits')
      .action(async (ids: string[], f: UpdateFlags) => {
        const body = updateBody(f);
        const client = await connect(ctx);
        await eachContainer(ids, async (id) => {
          await client.updateContainer(id, body);
          process.stdout.write(id + '\n');
        });
      });

    parent
      .command('exec')
      .description('Execute a command in a running container')
      .argument('<container>')
      .argument('<command...>')
      .option('-d, --detach', 'detached mode: run command in the background')
      .option('-i, --interactive', 'keep STDIN open even if not attached')
      .option('-t, --tty', 'allocate a pseudo-TTY')
      .option('-e, --env <env>', 'set environment variables', collect, [])
      .option('-u, --user <user>', 'username or UID (format: <name|uid>[:<group|gid>])')
      .option('-w, --workdir <dir>', 'working directory inside the container')
      .option('--privileged', 'give extended privileges to the command')
      .option('--detach-keys <keys>', 'override the key sequence for detaching')
      .passThroughOptions()
      .action(
        async (
          ref: string,
          cmd: string[],
          o: {
            detach?: boolean;
            interactive?: boolean;
            tty?: boolean;
            env: string[];
            user?: string;
            workdir?: string;
            privileged?: boolean;
            detachKeys?: string;
          },
        ) => {
          const client = await connect(ctx);
          const { Id } = await client.createExec(ref, {
            AttachStdin: !!o.interactive && !o.detach,
            AttachStdout: !o.detach,
            AttachStderr: !o.detach,
            Tty: !!o.tty,
            Cmd: cmd,
            Env: o.env,
            User: o.user ?? '',
            WorkingDir: o.workdir ?? '',
            Privileged: !!o.privileged,
            DetachKeys: o.detachKeys ?? '',
          });
          if (o.detach) {
            await client.startExecDetached(Id, !!o.tty);
            return;
          }
          const sock = await client.hijack(`/exec/${Id}/start`, undefined, { Detach: false, Tty: !!o.tty });
          const done = o.tty ? copyRaw(sock, process.stdout) : demux(sock, process.stdout, process.stderr);
          let restore = () => {};
          if (o.interactive) {
            if (o.tty && process.stdin.isTTY) {
              process.stdin.setRawMode(true);
              restore = () => process.stdin.setRawMode(false);
            }
            process.stdin.on('data', (d: Buffer) => sock.write(d));
            process.stdin.on('end', () => {
              if (!o.tty) sock.end();
            });
          } else sock.end();
          if (o.tty) {
            const resize = () => {
              const size = terminalSize();
              if (size) client.resizeExec(Id, size.rows, size.cols).catch(() => undefined);
            };
            resize();
            process.stdout.on('resize', resize);
          }
          await done.finally(() => {
            restore();
            process.stdin.pause();
          });
          const info = await client.inspectExec(Id);
          if (info.ExitCode) throw new ExitError(info.ExitCode);
        },
      );

    parent
      .command('export')
      .description("Export a container's filesystem as a tar archive")
      .argument('<container>')
      .option('-o, --output <file>', 'write to a file, instead of STDOUT')
      .action(async (ref: string, o: { output?: string }) => {
        if (!o.output && process.stdout.isTTY)
          throw new ExitError(1, 'cowardly refusing to save to a terminal. Use the -o flag or redirect');
        const client = await connect(ctx);
        await pipeline(
          await client.exportContainer(ref),
          o.output ? createWriteStream(o.output) : process.stdout,
        );
      });

    parent
      .command('diff')
      .description("Inspect changes to files or directories on a container's filesystem")
      .argument('<container>')
      .action(async (ref: string) => {
        const client = await connect(ctx);
        for (const c of (await client.containerChanges(ref)) ?? [])
          process.stdout.write(`${'CAD'[c.Kind]} ${c.Path}\n`);
      });

    parent
      .command('commit')
      .description("Create a new image from a container's changes")
      .argument('<container>')
      .argument('[repository]')
      .option('-a, --author <author>', 'author')
      .option('-c, --change <instruction>', 'apply Dockerfile instruction to the created image', collect, [])
      .option('-m, --message <message>', 'commit message')
      .option('-p, --pause', 'pause container during commit', true)
      .option('--no-pause', 'do not pause the container during commit')
      .action(
        async (
          ref: string,
          repository: string | undefined,
          o: { author?: string; change: string[]; message?: string; pause: boolean },
        ) => {
          const client = await connect(ctx);
          const { repo, tag } = repository ? splitRepoTag(repository) : { repo: undefined, tag: undefined };
          const r = await client.commitContainer(ref, {
            repo,
            tag,
            comment: o.message,
            author: o.author,
            changes: o.change,
            pause: o.pause,
          });
          process.stdout.write(r.Id + '\n');
        },
      );

    parent
      .command('top')
      .description('Display the running processes of a container')
      .argument('<container>')
      .argument('[ps-options...]')
      .action(async (ref: string, psArgs: string[]) => {
        const client = await connect(ctx);
        const t = await client.topContainer(ref, psArgs.join(' ') || undefined);
        process.stdout.write(formatTable([t.Titles, ...t.Processes]));
      });

    parent
      .command('stats')
      .description('Display a live stream of container(s) resource usage statistics')
      .argument('[container...]')
      .option('-a, --all', 'show all containers (default shows just running)')
      .option('--no-stream', 'disable streaming stats and only pull the first result')
      .option('--format <format>', 'format output using a custom template')
      .option('--no-trunc', "don't truncate output")
      .action(async (refs: string[], o: { all?: boolean; format?: string; trunc: boolean }) => {
        const client = await connect(ctx);
        const ids = refs.length ? refs : (await client.listContainers({ all: o.all })).map((c) => c.Id);
        const rows = await Promise.all(ids.map(async (id) => statsRow(await client.statsOnce(id), o.trunc)));
        printRows(
          rows,
          [
            { header: 'CONTAINER ID', field: 'ID', value: (r) => r.ID },
            { header: 'NAME', field: 'Name', value: (r) => r.Name },
            { header: 'CPU %', field: 'CPUPerc', value: (r) => r.CPUPerc },
            { header: 'MEM USAGE / LIMIT', field: 'MemUsage', value: (r) => r.MemUsage },
            { header: 'MEM %', field: 'MemPerc', value: (r) => r.MemPerc },
            { header: 'NET I/O', field: 'NetIO', value: (r) => r.NetIO },
            { header: 'BLOCK I/O', field: 'BlockIO', value: (r) => r.BlockIO },
            { header: 'PIDS', field: 'PIDs', value: (r) => r.PIDs },
          ],
          o.format,
          (r) => r,
        );
      });

    parent
      .command('rename')
      .description('Rename a container')
      .argument('<container>')
      .argument('<new-name>')
      .action(async (ref: string, name: string) => {
        await (await connect(ctx)).renameContainer(ref, name);
      });

    parent
      .command('wait')
      .description('Block until one or more containers stop, then print their exit codes')
      .argument('<container...>')
      .action(async (ids: string[]) => {
        const client = await connect(ctx);
        await eachContainer(ids, async (id) => {
          const w = await client.waitContainer(id);
          process.stdout.write(`${(await w.result).StatusCode}\n`);
        });
      });
  }

  for (const [parent, name] of [
    [program, 'rm'],
    [container, 'rm'],
  ] as const) {
    parent
      .command(name)
      .description('Remove one or more containers')
      .argument('<container...>')
      .option('-f, --force', 'force the removal of a running container (uses SIGKILL)')
      .option('-v, --volumes', 'remove anonymous volumes associated with the container')
      .action(async (ids: string[], o: { force?: boolean; volumes?: boolean }) => {
        const client = await connect(ctx);
        await eachContainer(ids, async (id) => {
          await client.removeContainer(id, o);
          process.stdout.write(id + '\n');
        });
      });
  }

  for (const [parent, name, aliases] of [
    [program, 'ps', []],
    [container, 'ls', ['list', 'ps']],
  ] as const) {
    parent
      .command(name)
      .aliases([...aliases])
      .description('List containers')
      .option('-a, --all', 'show all containers (default shows just running)')
      .option('-f, --filter <filter>', 'filter output based on conditions provided', collect, [])
      .option('--format <format>', 'format output using a custom template')
      .option('-n, --last <n>', 'show n last created containers (includes all states)')
      .option('-l, --latest', 'show the latest created container (includes all states)')
      .option('--no-trunc', "don't truncate output")
      .option('-q, --quiet', 'only display container IDs')
      .option('-s, --size', 'display total file sizes')
      .action(
        async (o: {
          all?: boolean;
          filter: string[];
          format?: string;
          last?: string;
          latest?: boolean;
          trunc: boolean;
          quiet?: boolean;
          size?: boolean;
        }) => {
          const client = await connect(ctx);
          const limit = o.latest ? 1 : o.last ? Number(o.last) : undefined;
          const sizeOf = (c: ContainerSummary) =>
            c.SizeRw === undefined
              ? ''
              : `${humanSize(c.SizeRw)} (virtual ${humanSize(c.SizeRootFs ?? c.SizeRw)})`;
          const list = await client.listContainers({
            all: o.all,
            size: o.size || (o.format ?? '').includes('.Size'),
            limit,
            filters: parseFilterFlags(o.filter),
          });
          if (o.quiet) {
            for (const c of list) process.stdout.write((o.trunc ? truncateId(c.Id) : c.Id) + '\n');
            return;
          }
          const cols = psColumns(!o.trunc);
          if (o.size) cols.push({ header: 'SIZE', field: 'Size', value: sizeOf });
          printRows(list, cols, o.format, (c) => ({
            ID: o.trunc ? truncateId(c.Id) : c.Id,
            Image: c.Image,
            Command: cols[2].value(c),
            CreatedAt: goTime(c.Created),
            RunningFor: since(c.Created),
            Ports: formatPorts(c.Ports ?? []),
            State: c.State,
            Status: c.Status,
            Size: sizeOf(c),
            Names: c.Names.map((n) => n.replace(/^\//, '')).join(','),
            Labels: Object.entries(c.Labels ?? {})
              .map(([k, v]) => `${k}=${v}`)
              .join(','),
            Mounts: '',
            Networks: Object.keys(
              (c as { NetworkSettings?: { Networks?: object } }).NetworkSettings?.Networks ?? {},
            ).join(','),
          }));
        },
      );
  }

  container
    .command('inspect')
    .description('Display detailed information on one or more containers')
    .argument('<container...>')
    .option('-f, --format <format>', 'format output using a Go template')
    .action(async (ids: string[], o: { format?: string }) => {
      const client = await connect(ctx);
      const found: unknown[] = [];
      let failed = false;
      for (const id of ids) {
        try {
          found.push(await client.inspectContainer(id));
        } catch (err) {
          if (!(err instanceof ApiError) || err.status !== 404) throw err;
          failed = true;
          process.stderr.write(`Error: No such container: ${id}\n`);
        }
      }
      printInspect(found, o.format);
      if (failed) throw new ExitError(1);
    });

  container
    .command('prune')
    .description('Remove all stopped containers')
    .option('-f, --force', 'do not prompt for confirmation')
    .option('--filter <filter>', 'provide filter values', collect, [])
    .action(async (o: { filter: string[] }) => {
      const client = await connect(ctx);
      const r = await client.pruneContainers(parseFilterFlags(o.filter));
      if (r.ContainersDeleted?.length)
        process.stdout.write(`Deleted Containers:\n${r.ContainersDeleted.join('\n')}\n\n`);
      process.stdout.write(`Total reclaimed space: 0B\n`);
    });
}

interface StatsJson {
  id?: string;
  name?: string;
  cpu_stats?: { cpu_usage?: { total_usage?: number }; system_cpu_usage?: number; online_cpus?: number };
  precpu_stats?: { cpu_usage?: { total_usage?: number }; system_cpu_usage?: number };
  memory_stats?: { usage?: number; limit?: number; stats?: Record<string, number> };
  pids_stats?: { current?: number };
  blkio_stats?: { io_service_bytes_recursive?: { op: string; value: number }[] | null };
}

/** The docker CLI's arithmetic: CPU delta over system delta times CPUs; memory without page cache. */
function statsRow(raw: Record<string, unknown>, trunc: boolean): Record<string, string> {
  const s = raw as StatsJson;
  const cpuDelta = (s.cpu_stats?.cpu_usage?.total_usage ?? 0) - (s.precpu_stats?.cpu_usage?.total_usage ?? 0);
  const sysDelta = (s.cpu_stats?.system_cpu_usage ?? 0) - (s.precpu_stats?.system_cpu_usage ?? 0);
  const cpu =
    sysDelta > 0 && cpuDelta > 0 ? (cpuDelta / sysDelta) * (s.cpu_stats?.online_cpus ?? 1) * 100 : 0;
  const m = s.memory_stats ?? {};
  const cache = m.stats?.total_inactive_file ?? m.stats?.inactive_file ?? 0;
  const used = Math.max(0, (m.usage ?? 0) - cache);
  const limit = m.limit ?? 0;
  const io = s.blkio_stats?.io_service_bytes_recursive ?? [];
  const rd = io.filter((x) => x.op === 'read').reduce((a, b) => a + b.value, 0);
  const wr = io.filter((x) => x.op === 'write').reduce((a, b) => a + b.value, 0);
  return {
    ID: trunc ? truncateId(s.id ?? '') : (s.id ?? ''),
    Name: (s.name ?? '').replace(/^\//, ''),
    CPUPerc: `${cpu.toFixed(2)}%`,
    MemUsage: `${binarySize(used)} / ${binarySize(limit)}`,
    MemPerc: `${limit ? ((used / limit) * 100).toFixed(2) : '0.00'}%`,
    NetIO: '0B / 0B',
    BlockIO: `${humanSize(rd)} / ${humanSize(wr)}`,
    PIDs: String(s.pids_stats?.current ?? 0),
  };
}

async function eachContainer(ids: string[], fn: (id: string) => Promise<void>): Promise<void> {
  let failed = false;
  for (const id of ids) {
    try {
      await fn(id);
    } catch (err) {
      failed = true;
      process.stderr.write(describeError(err) + '\n');
    }
  }
  if (failed) throw new ExitError(1);
}

import type { Command } from 'commander';
import { CLIENT_MAX_API } from '../../client/client.js';
import { type CliContext, connect } from '../context.js';
import { compileTemplate, isJsonFormat } from '../gotemplate.js';
import { printInspect, unescapeFormat } from '../output.js';
import { parseFilterFlags } from './images.js';
import { humanSize } from '../table.js';

export function systemCommands(program: Command, ctx: CliContext): void {
  program
    .command('version')
    .description('Show the Berth version information')
    .option('-f, --format <format>', 'format output using a Go template')
    .action(async (o: { format?: string }) => {
      const client = await connect(ctx);
      const server = await client.version();
      const apiVersion = await client.apiVersion();
      const data = {
        Client: {
          Version: '0.1.0',
          ApiVersion: apiVersion,
          DefaultAPIVersion: CLIENT_MAX_API,
          Os: 'linux',
          Arch: process.arch === 'x64' ? 'amd64' : process.arch,
          GoVersion: `node${process.versions.node}`,
        },
        Server: server,
      };
      if (o.format) {
        printInspect([data], o.format);
        return;
      }
      const lines = [
        'Client:',
        ` Version:           0.1.0`,
        ` API version:       ${apiVersion}${apiVersion !== CLIENT_MAX_API ? ` (downgraded from ${CLIENT_MAX_API})` : ''}`,
        ` Node.js version:   ${process.versions.node}`,
        ` OS/Arch:           linux/${data.Client.Arch}`,
        '',
        `Server: ${server.Platform?.Name ?? ''}`,
        ` Engine:`,
        `  Version:          ${server.Version}`,
        `  API version:      ${server.ApiVersion} (minimum version ${server.MinAPIVersion ?? ''})`,
        `  OS/Arch:          ${server.Os}/${server.Arch}`,
        `  Kernel version:   ${server.KernelVersion ?? ''}`,
      ];
      process.stdout.write(lines.join('\n') + '\n');
    });

  program
    .command('events')
    .description('Get real time events from the server')
    .option('-f, --filter <filter>', 'filter output based on conditions provided', collectFlag, [])
    .option('--format <format>', 'format output using a Go template (or json)')
    .option('--since <time>', 'show all events created since timestamp (or 10m, 1h)')
    .option('--until <time>', 'stream events until this timestamp (or 10m, 0s)')
    .action(async (o: { filter: string[]; format?: string; since?: string; until?: string }) => {
      const client = await connect(ctx);
      const render =
        o.format && !isJsonFormat(o.format)
          ? compileTemplate(unescapeFormat(o.format), { lenient: true })
          : undefined;
      await client.events(
        {
          since: o.since && relativeTime(o.since),
          until: o.until && relativeTime(o.until),
          filters: parseFilterFlags(o.filter),
        },
        (ev) => {
          if (o.format && isJsonFormat(o.format)) process.stdout.write(JSON.stringify(ev) + '\n');
          else if (render) process.stdout.write(render(ev) + '\n');
          else process.stdout.write(eventLine(ev) + '\n');
        },
      );
    });

  program
    .command('info')
    .description('Display system-wide information')
    .option('-f, --format <format>', 'format output using a Go template')
    .action(async (o: { format?: string }) => {
      const client = await connect(ctx);
      const info = await client.info();
      if (o.format) {
        printInspect([info], o.format);
        return;
      }
      const lines = [
        'Server:',
        ` Containers: ${info.Containers}`,
        `  Running: ${info.ContainersRunning}`,
        `  Paused: ${info.ContainersPaused}`,
        `  Stopped: ${info.ContainersStopped}`,
        ` Images: ${info.Images}`,
        ` Server Version: ${info.ServerVersion}`,
        ` Storage Driver: ${info.Driver}`,
        ` Logging Driver: ${info.LoggingDriver}`,
        ` Cgroup Driver: ${info.CgroupDriver}`,
        ` Cgroup Version: ${info.CgroupVersion ?? ''}`,
        ` Default Runtime: ${info.DefaultRuntime ?? ''}`,
        ` Kernel Version: ${info.KernelVersion}`,
        ` Operating System: ${info.OperatingSystem}`,
        ` OSType: ${info.OSType}`,
        ` Architecture: ${info.Architecture}`,
        ` CPUs: ${info.NCPU}`,
        ` Total Memory: ${humanSize(info.MemTotal)}`,
        ` Name: ${info.Name}`,
        ` ID: ${info.ID}`,
        ` Berth Root Dir: ${info.DockerRootDir}`,
        ` Debug Mode: ${info.Debug ? 'true' : 'false'}`,
      ];
      if (info.Labels?.length) lines.push(' Labels:', ...info.Labels.map((l) => `  ${l}`));
      if (info.RegistryConfig?.Mirrors?.length)
        lines.push(' Registry Mirrors:', ...info.RegistryConfig.Mirrors.map((m) => `  ${m}`));
      process.stdout.write(lines.join('\n') + '\n');
      for (const w of info.Warnings ?? []) process.stderr.write(`WARNING: ${w}\n`);
    });
}

function collectFlag(v: string, prev: string[]): string[] {
  return [...prev, v];
}

/** `10m`, `1h`, `0s` before now as unix seconds; anything else is passed through. */
export function relativeTime(s: string): string {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(s);
  if (!m) return s;
  const mult = { ms: 0.001, s: 1, m: 60, h: 3600 }[m[2] as 'ms' | 's' | 'm' | 'h'];
  return (Date.now() / 1000 - Number(m[1]) * mult).toFixed(3);
}

/** Docker's default event line: `<time> <type> <action> <id> (k=v, …)`. */
function eventLine(ev: Record<string, unknown>): string {
  const actor = (ev.Actor ?? {}) as { ID?: string; Attributes?: Record<string, string> };
  const nano = Number(ev.timeNano ?? 0);
  const t =
    new Date(Math.floor(nano / 1e6)).toISOString().slice(0, 19) +
    '.' +
    String(nano % 1e9).padStart(9, '0') +
    'Z';
  const attrs = Object.entries(actor.Attributes ?? {})
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
  return `${t} ${String(ev.Type)} ${String(ev.Action)} ${actor.ID ?? ''}${attrs ? ` (${attrs})` : ''}`;
}

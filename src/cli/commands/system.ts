import type { Command } from 'commander';
import { CLIENT_MAX_API } from '../../client/client.js';
import { type CliContext, connect } from '../context.js';
import { printInspect } from '../output.js';
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

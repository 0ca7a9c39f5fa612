/**
 * `berth network …` and `berth port`: Docker's commands, flags and output.
 */
import type { Command } from 'commander';
import { ApiError, type Client } from '../../client/client.js';
import { type CliContext, connect } from '../context.js';
import { ExitError } from '../errors.js';
import { printInspect, printRows } from '../output.js';
import { truncateId } from '../table.js';
import { goTime, parseFilterFlags } from './images.js';

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

interface NetworkSummary {
  Id: string;
  Name: string;
  Driver: string;
  Scope: string;
  Created: string;
  Internal: boolean;
  EnableIPv6: boolean;
  Labels: Record<string, string>;
}

function keyValues(list: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of list) {
    const eq = l.indexOf('=');
    out[eq < 0 ? l : l.slice(0, eq)] = eq < 0 ? '' : l.slice(eq + 1);
  }
  return out;
}

/** `0.0.0.0:8080->80/tcp, 127.0.0.1:8081->81/tcp` as `docker ps` shows ports. */
export function formatPorts(
  ports: { IP?: string; PrivatePort: number; PublicPort?: number; Type: string }[],
): string {
  return [...ports]
    .sort((a, b) => a.PrivatePort - b.PrivatePort || (a.IP ?? '').localeCompare(b.IP ?? ''))
    .map((p) =>
      p.PublicPort ? `${p.IP}:${p.PublicPort}->${p.PrivatePort}/${p.Type}` : `${p.PrivatePort}/${p.Type}`,
    )
    .join(', ');
}

export function networkCommands(program: Command, ctx: CliContext): void {
  const network = program.command('network').description('Manage networks');
  const call = async <T>(
    method: string,
    path: string,
    body?: unknown,
    query?: Record<string, string>,
  ): Promise<T> => {
    const client: Client = await connect(ctx);
    return client.json<T>({ method, path, body, query });
  };

  network
    .command('create')
    .description('Create a network')
    .argument('<name>')
    .option('-d, --driver <driver>', 'driver to manage the network', 'bridge')
    .option('--subnet <cidr>', 'subnet in CIDR format')
    .option('--gateway <ip>', 'IPv4 gateway for the subnet')
    .option('--ip-range <cidr>', 'allocate container IPs from a sub-range')
    .option('--internal', 'restrict external access to the network')
    .option('--attachable', 'enable manual container attachment')
    .option('--label <label>', 'set metadata on a network', collect, [])
    .option('-o, --opt <opt>', 'set driver specific options', collect, [])
    .action(
      async (
        name: string,
        o: {
          driver: string;
          subnet?: string;
          gateway?: string;
          ipRange?: string;
          internal?: boolean;
          attachable?: boolean;
          label: string[];
          opt: string[];
        },
      ) => {
        if (o.gateway && !o.subnet)
          throw new ExitError(1, 'Error response from daemon: gateway requires a subnet');
        const r = await call<{ Id: string }>('POST', '/networks/create', {
          Name: name,
          CheckDuplicate: true,
          Driver: o.driver,
          Internal: !!o.internal,
          Attachable: !!o.attachable,
          IPAM: {
            Driver: 'default',
            Config: o.subnet
              ? [
                  {
                    Subnet: o.subnet,
                    ...(o.gateway ? { Gateway: o.gateway } : {}),
                    ...(o.ipRange ? { IPRange: o.ipRange } : {}),
                  },
                ]
              : [],
            Options: {},
          },
          Options: keyValues(o.opt),
          Labels: keyValues(o.label),
        });
        process.stdout.write(r.Id + '\n');
      },
    );

  network
    .command('ls')
    .alias('list')
    .description('List networks')
    .option('-f, --filter <filter>', 'provide filter values (e.g. "driver=bridge")', collect, [])
    .option('--format <format>', 'format output using a custom template')
    .option('--no-trunc', 'do not truncate the output')
    .option('-q, --quiet', 'only display network IDs')
    .action(async (o: { filter: string[]; format?: string; trunc: boolean; quiet?: boolean }) => {
      const filters = parseFilterFlags(o.filter);
      const list = await call<NetworkSummary[]>('GET', '/networks', undefined, {
        ...(Object.keys(filters).length ? { filters: JSON.stringify(filters) } : {}),
      });
      list.sort((a, b) => a.Name.localeCompare(b.Name));
      const id = (n: NetworkSummary) => (o.trunc ? truncateId(n.Id) : n.Id);
      if (o.quiet) {
        for (const n of list) process.stdout.write(id(n) + '\n');
        return;
      }
      printRows(
        list,
        [
          { header: 'NETWORK ID', field: 'ID', value: id },
          { header: 'NAME', field: 'Name', value: (n) => n.Name },
          { header: 'DRIVER', field: 'Driver', value: (n) => n.Driver },
          { header: 'SCOPE', field: 'Scope', value: (n) => n.Scope },
        ],
        o.format,
        (n) => ({
          ID: id(n),
          Name: n.Name,
          Driver: n.Driver,
          Scope: n.Scope,
          IPv6: String(n.EnableIPv6),
          Internal: String(n.Internal),
          CreatedAt: goTime(Math.floor(Date.parse(n.Created) / 1000)),
          Labels: Object.entries(n.Labels ?? {})
            .map(([k, v]) => `${k}=${v}`)
            .join(','),
        }),
      );
    });

  network
    .command('inspect')
    .description('Display detailed information on one or more networks')
    .argument('<network...>')
    .option('-f, --format <format>', 'format output using a Go template')
    .option('-v, --verbose', 'verbose output for diagnostics')
    .action(async (names: string[], o: { format?: string }) => {
      const found: unknown[] = [];
      let failed = false;
      for (const n of names) {
        try {
          found.push(await call('GET', `/networks/${encodeURIComponent(n)}`));
        } catch (err) {
          if (!(err instanceof ApiError) || err.status !== 404) throw err;
          failed = true;
          process.stderr.write(`Error response from daemon: network ${n} not found\n`);
        }
      }
      printInspect(found, o.format);
      if (failed) throw new ExitError(1);
    });

  network
    .command('rm')
    .aliases(['remove'])
    .description('Remove one or more networks')
    .argument('<network...>')
    .option('-f, --force', 'do not error if the network does not exist')
    .action(async (names: string[], o: { force?: boolean }) => {
      let failed = false;
      for (const n of names) {
        try {
          await call('DELETE', `/networks/${encodeURIComponent(n)}`);
          process.stdout.write(n + '\n');
        } catch (err) {
          if (o.force && err instanceof ApiError && err.status === 404) continue;
          failed = true;
          process.stderr.write(
            `Error response from daemon: ${err instanceof Error ? err.message : String(err)}\n`,
          );
        }
      }
      if (failed) throw new ExitError(1);
    });

  network
    .command('prune')
    .description('Remove all unused networks')
    .option('-f, --force', 'do not prompt for confirmation')
    .option('--filter <filter>', 'provide filter values (e.g. "label=<key>=<value>")', collect, [])
    .action(async (o: { filter: string[] }) => {
      const filters = parseFilterFlags(o.filter);
      const r = await call<{ NetworksDeleted: string[] | null }>('POST', '/networks/prune', undefined, {
        ...(Object.keys(filters).length ? { filters: JSON.stringify(filters) } : {}),
      });
      if (r.NetworksDeleted?.length)
        process.stdout.write(`Deleted Networks:\n${r.NetworksDeleted.map((n) => n + '\n').join('')}`);
    });

  network
    .command('connect')
    .description('Connect a container to a network')
    .argument('<network>')
    .argument('<container>')
    .option('--alias <alias>', 'add network-scoped alias for the container', collect, [])
    .option('--ip <ip>', 'IPv4 address (e.g., "172.30.100.104")')
    .action(async (net: string, container: string, o: { alias: string[]; ip?: string }) => {
      await call('POST', `/networks/${encodeURIComponent(net)}/connect`, {
        Container: container,
        EndpointConfig: {
          ...(o.alias.length ? { Aliases: o.alias } : {}),
          ...(o.ip ? { IPAMConfig: { IPv4Address: o.ip } } : {}),
        },
      });
    });

  network
    .command('disconnect')
    .description('Disconnect a container from a network')
    .argument('<network>')
    .argument('<container>')
    .option('-f, --force', 'force the container to disconnect from a network')
    .action(async (net: string, container: string, o: { force?: boolean }) => {
      await call('POST', `/networks/${encodeURIComponent(net)}/disconnect`, {
        Container: container,
        Force: !!o.force,
      });
    });

  program
    .command('port')
    .description('List port mappings or a specific mapping for the container')
    .argument('<container>')
    .argument('[port]', 'PRIVATE_PORT[/PROTO]')
    .action(async (container: string, port: string | undefined) => {
      const info = await call<{
        NetworkSettings?: { Ports?: Record<string, { HostIp: string; HostPort: string }[] | null> };
      }>('GET', `/containers/${encodeURIComponent(container)}/json`);
      const ports = info.NetworkSettings?.Ports ?? {};
      if (port) {
        const key = port.includes('/') ? port : `${port}/tcp`;
        const list = ports[key];
        if (!list?.length)
          throw new ExitError(1, `Error: No public port '${key}' published for ${container}`);
        for (const b of list) process.stdout.write(`${b.HostIp}:${b.HostPort}\n`);
        return;
      }
      const keys = Object.keys(ports).sort((a, b) => parseInt(a, 10) - parseInt(b, 10));
      for (const k of keys)
        for (const b of ports[k] ?? []) process.stdout.write(`${k} -> ${b.HostIp}:${b.HostPort}\n`);
    });
}

import type { Command } from 'commander';
import { mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { createHubServer } from '../../hub/server.js';
import { busyboxSeed, helloWorldSeed, pushSeed } from '../../hub/seed.js';
import { FsHubStorage } from '../../hub/storage.js';
import { ExitError } from '../errors.js';

export const DEFAULT_HUB = '127.0.0.1:5000';

export function hubCommands(program: Command): void {
  const hub = program.command('hub').description('Berth Hub: a registry for images');

  hub
    .command('serve')
    .description('Serve a registry (OCI Distribution API) from a directory')
    .option('--listen <addr>', 'address to listen on', DEFAULT_HUB)
    .option('--root <dir>', 'storage directory', '/var/lib/berth-hub')
    .action(async (o: { listen: string; root: string }) => {
      const m = /^(.*):(\d+)$/.exec(o.listen);
      if (!m) throw new ExitError(125, `invalid --listen address: ${o.listen}`);
      mkdirSync(o.root, { recursive: true });
      const storage = new FsHubStorage(o.root);
      await storage.init();
      const server = createHubServer(storage);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(Number(m[2]), m[1].replace(/^\[|\]$/g, ''), () => resolve());
      });
      process.stderr.write(`Berth Hub serving ${o.root} on http://${o.listen}\n`);
      await new Promise<void>((resolve) => {
        const stop = () => server.close(() => resolve());
        process.once('SIGTERM', stop);
        process.once('SIGINT', stop);
      });
    });

  hub
    .command('seed')
    .description("Push the project's own images (hello-world, busybox) to a registry")
    .option('--registry <host:port>', 'registry to push to', DEFAULT_HUB)
    .option('--root <dir>', 'seed a hub storage directory instead (pushed through a private loopback hub)')
    .option('--no-busybox', 'skip busybox')
    .action(async (o: { registry: string; root?: string; busybox: boolean }) => {
      const seeds = [helloWorldSeed(), ...(o.busybox ? [await busyboxSeed()] : [])];
      let server: ReturnType<typeof createHubServer> | undefined;
      let registry = o.registry;
      if (o.root) {
        mkdirSync(o.root, { recursive: true });
        const storage = new FsHubStorage(o.root);
        await storage.init();
        const s = createHubServer(storage);
        server = s;
        await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', () => resolve()));
        registry = `127.0.0.1:${(s.address() as AddressInfo).port}`;
      }
      try {
        for (const s of seeds) {
          const digest = await pushSeed(registry, s);
          process.stdout.write(`${o.root ?? o.registry}: ${s.repo}:${s.tag}: digest: ${digest}\n`);
        }
      } finally {
        server?.close();
      }
    });
}

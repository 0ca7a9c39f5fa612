import type { Command } from 'commander';
import { mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { openHub } from '../../hub/config.js';
import { DEFAULT_CACHE, debianSeed } from '../../hub/debian.js';
import { collectGarbage } from '../../hub/gc.js';
import { NAME_RE } from '../../hub/distribution.js';
import { createHubServer } from '../../hub/server.js';
import { UserStore } from '../../hub/accounts.js';
import { busyboxSeed, helloWorldSeed, pushSeed } from '../../hub/seed.js';
import { BUILT_SEEDS, buildAndPushSeed } from '../../hub/seed-build.js';
import { FsHubStorage } from '../../hub/storage.js';
import { type CliContext, connect } from '../context.js';
import { ExitError } from '../errors.js';

export const DEFAULT_HUB = '127.0.0.1:5000';
const DEFAULT_ROOT = '/var/lib/berth-hub';

export function hubCommands(program: Command, ctx?: CliContext): void {
  const hub = program.command('hub').description('Berth Hub: a registry for images');

  hub
    .command('serve')
    .description('Serve a registry (OCI Distribution API) from a directory')
    .option('--listen <addr>', 'address to listen on', DEFAULT_HUB)
    .option('--root <dir>', 'storage directory', DEFAULT_ROOT)
    .option('--auth', 'require accounts and tokens (anonymous pulls of public repositories still work)')
    .option('--proxy <url>', 'pull-through cache: fetch what is missing from this upstream registry')
    .option('--realm <url>', "the token endpoint's URL as clients reach it (default http://<host>/token)")
    .action(async (o: { listen: string; root: string; auth?: boolean; proxy?: string; realm?: string }) => {
      const m = /^(.*):(\d+)$/.exec(o.listen);
      if (!m) throw new ExitError(125, `invalid --listen address: ${o.listen}`);
      mkdirSync(o.root, { recursive: true });
      const { storage, opts } = await openHub(o.root, {
        ...(o.auth ? { auth: true } : {}),
        ...(o.proxy ? { proxy: o.proxy } : {}),
        ...(o.realm ? { realm: o.realm } : {}),
      });
      const server = createHubServer(storage, opts);
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
    .option(
      '--with <images>',
      `also seed these (comma-separated): debian (library/debian:bookworm-slim), ${BUILT_SEEDS.join(', ')} (built by the daemon from images/<name>/Dockerfile, after debian)`,
    )
    .option('--cache <dir>', 'where built images are cached by content', DEFAULT_CACHE)
    .action(
      async (o: { registry: string; root?: string; busybox: boolean; with?: string; cache: string }) => {
        const extra = (o.with ?? '').split(',').filter(Boolean);
        for (const e of extra)
          if (e !== 'debian' && !BUILT_SEEDS.includes(e))
            throw new ExitError(125, `unknown seed image: ${e} (known: debian, ${BUILT_SEEDS.join(', ')})`);
        const built = extra.filter((e) => BUILT_SEEDS.includes(e));
        if (built.length && !ctx) throw new ExitError(1, 'building seed images needs a daemon');
        const seeds = [helloWorldSeed(), ...(o.busybox ? [await busyboxSeed()] : [])];
        if (extra.includes('debian'))
          seeds.push(
            await debianSeed({ cacheDir: o.cache, log: (l) => process.stderr.write(`debian: ${l}\n`) }),
          );
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
          for (const name of built) {
            const client = await connect(ctx!);
            const digest = await buildAndPushSeed(client, registry, name, (l) => process.stderr.write(l));
            process.stdout.write(`${o.root ?? o.registry}: library/${name}:latest: digest: ${digest}\n`);
          }
        } finally {
          server?.close();
        }
      },
    );

  hub
    .command('gc')
    .description('Remove blobs no manifest references (and stale uploads) from a hub root')
    .option('--root <dir>', 'storage directory', DEFAULT_ROOT)
    .option('--min-age <seconds>', 'keep unreferenced blobs younger than this (pushes in progress)', '600')
    .option('--delete-untagged', 'also remove manifests no tag reaches')
    .option('--dry-run', 'only report what would be removed')
    .action(async (o: { root: string; minAge: string; deleteUntagged?: boolean; dryRun?: boolean }) => {
      const minAge = Number(o.minAge);
      if (!Number.isFinite(minAge) || minAge < 0) throw new ExitError(125, `invalid --min-age: ${o.minAge}`);
      const r = await collectGarbage(o.root, {
        minAgeMs: minAge * 1000,
        deleteUntagged: !!o.deleteUntagged,
        dryRun: !!o.dryRun,
      });
      for (const d of r.blobsRemoved)
        process.stdout.write(`${o.dryRun ? 'would remove' : 'removed'} blob ${d}\n`);
      process.stdout.write(
        `${r.blobsRemoved.length} blobs, ${r.manifestsRemoved} manifests, ${r.uploadsRemoved} uploads ${o.dryRun ? 'eligible for deletion' : 'deleted'}; ${r.bytesFreed} bytes ${o.dryRun ? 'reclaimable' : 'freed'}\n`,
      );
    });

  const user = hub.command('user').description("Manage a hub's accounts");
  user
    .command('add <name>')
    .description('Add an account; the password is read from stdin')
    .option('--root <dir>', 'storage directory', DEFAULT_ROOT)
    .option('--admin', 'may push anywhere (library/* included) and pull private repositories')
    .action(async (name: string, o: { root: string; admin?: boolean }) => {
      const password = (await readStdin()).replace(/\r?\n$/, '');
      await new UserStore(o.root).add(name, password, !!o.admin);
      process.stdout.write(`${name}\n`);
    });
  user
    .command('rm <name>')
    .description('Remove an account (its tokens stop working at once)')
    .option('--root <dir>', 'storage directory', DEFAULT_ROOT)
    .action(async (name: string, o: { root: string }) => {
      await new UserStore(o.root).remove(name);
      process.stdout.write(`${name}\n`);
    });
  user
    .command('ls')
    .description('List accounts')
    .option('--root <dir>', 'storage directory', DEFAULT_ROOT)
    .action(async (o: { root: string }) => {
      const rows = await new UserStore(o.root).list();
      process.stdout.write('NAME                           ADMIN   CREATED\n');
      for (const u of rows)
        process.stdout.write(`${u.name.padEnd(30)} ${String(u.admin).padEnd(7)} ${u.created}\n`);
    });

  hub
    .command('repo <name>')
    .description("Set a repository's visibility and description (shown by search and the web pages)")
    .option('--root <dir>', 'storage directory', DEFAULT_ROOT)
    .option('--private', 'only its owner and admins may pull it')
    .option('--public', 'anyone may pull it')
    .option('--description <text>', 'a one-line description')
    .action(
      async (
        name: string,
        o: { root: string; private?: boolean; public?: boolean; description?: string },
      ) => {
        if (!NAME_RE.test(name)) throw new ExitError(125, `invalid repository name: ${name}`);
        if (o.private && o.public) throw new ExitError(125, '--private and --public conflict');
        const storage = new FsHubStorage(o.root);
        await storage.init();
        const meta = await storage.repoMeta(name);
        if (o.private) meta.private = true;
        if (o.public) delete meta.private;
        if (o.description !== undefined) meta.description = o.description;
        await storage.setRepoMeta(name, meta);
        process.stdout.write(`${name}: ${meta.private ? 'private' : 'public'}\n`);
      },
    );
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

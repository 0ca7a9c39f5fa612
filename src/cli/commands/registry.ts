/**
 * `berth login`, `logout` and `push`: credentials kept in Docker's config.json and sent to the
 * daemon in `X-Registry-Auth`, like the docker CLI does.
 */
import type { Command } from 'commander';
import type { Client } from '../../client/client.js';
import { encodeRegistryAuth } from '../../distribution/auth.js';
import { type CliContext, connect } from '../context.js';
import {
  configPath,
  CredentialHelperError,
  eraseCredentials,
  loadCredentials,
  serverKey,
  serverKeyForImage,
  storeCredentials,
} from '../credentials.js';
import { ExitError } from '../errors.js';
import { ProgressPrinter } from '../progress.js';
import { splitRepoTag } from './images.js';

/** The `X-Registry-Auth` value for an image's registry: stored credentials or `{}`. */
export async function registryAuthFor(image: string): Promise<string> {
  const key = serverKeyForImage(image);
  // A broken config file is ignored as the docker CLI does; a failing credential helper is an error.
  const creds = await loadCredentials(key).catch((err: unknown) => {
    if (err instanceof CredentialHelperError) throw err;
    return undefined;
  });
  return encodeRegistryAuth(creds ? { ...creds, serveraddress: key } : undefined);
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

async function prompt(question: string, hidden: boolean): Promise<string> {
  const readline = await import('node:readline');
  return new Promise((resolve) => {
    const rl = readline.createInterface({ input: process.stdin, output: process.stdout, terminal: true });
    if (hidden) {
      const write = (rl as unknown as { _writeToOutput: (s: string) => void })._writeToOutput;
      (rl as unknown as { _writeToOutput: (s: string) => void })._writeToOutput = (s: string) => {
        if (s.startsWith(question)) write.call(rl, question);
      };
    }
    rl.question(question, (answer) => {
      rl.close();
      if (hidden) process.stdout.write('\n');
      resolve(answer);
    });
  });
}

export function registryCommands(program: Command, ctx: CliContext): void {
  program
    .command('login')
    .description('Log in to a registry')
    .argument('[server]')
    .option('-u, --username <username>', 'username')
    .option('-p, --password <password>', 'password or personal access token')
    .option('--password-stdin', 'take the password from stdin')
    .action(
      async (
        server: string | undefined,
        o: { username?: string; password?: string; passwordStdin?: boolean },
      ) => {
        const key = serverKey(server);
        let { username, password } = o;
        if (o.password)
          process.stderr.write('WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n');
        if (o.passwordStdin) {
          if (o.password) throw new ExitError(1, '--password and --password-stdin are mutually exclusive');
          if (!username) throw new ExitError(1, 'Must provide --username with --password-stdin');
          password = await readStdin();
        }
        if (!username || password === undefined) {
          if (!process.stdin.isTTY)
            throw new ExitError(1, 'Error: Cannot perform an interactive login from a non TTY device');
          username ??= await prompt('Username: ', false);
          password ??= await prompt('Password: ', true);
        }
        if (!username) throw new ExitError(1, 'Error: Non-null Username Required');
        if (!password) throw new ExitError(1, 'Error: Non-null Password Required');
        const client = await connect(ctx);
        const res = await client.login({ username, password, serveraddress: key });
        const helper = await storeCredentials(key, username, password);
        if (!helper)
          process.stderr.write(
            `WARNING! Your credentials are stored unencrypted in '${configPath()}'.\n` +
              'Configure a credential helper to remove this warning.\n\n',
          );
        process.stdout.write(`${res.Status || 'Login Succeeded'}\n`);
      },
    );

  program
    .command('logout')
    .description('Log out from a registry')
    .argument('[server]')
    .action(async (server: string | undefined) => {
      const key = serverKey(server);
      if (await eraseCredentials(key)) process.stdout.write(`Removing login credentials for ${key}\n`);
      else process.stdout.write(`Not logged in to ${key}\n`);
    });

  for (const parent of [program, program.commands.find((c) => c.name() === 'image')].filter(
    (c): c is Command => !!c,
  )) {
    parent
      .command('push')
      .description('Upload an image to a registry')
      .argument('<name>')
      .option('-a, --all-tags', 'push all tags of an image to the repository')
      .option('-q, --quiet', 'suppress verbose output')
      .action(async (name: string, o: { allTags?: boolean; quiet?: boolean }) => {
        const client = await connect(ctx);
        await pushWithProgress(client, name, { all: !!o.allTags, quiet: !!o.quiet });
      });
  }
}

export async function pushWithProgress(
  client: Client,
  name: string,
  opts: { all?: boolean; quiet?: boolean },
): Promise<void> {
  if (name.includes('@'))
    throw new ExitError(1, `invalid reference: cannot push a digest reference: ${name}`);
  const { repo, tag } = splitRepoTag(name);
  if (opts.all && tag) throw new ExitError(1, "tag can't be used with --all-tags/-a");
  let t = tag;
  if (!opts.all && !t) {
    if (!opts.quiet) process.stdout.write('Using default tag: latest\n');
    t = 'latest';
  }
  const printer = new ProgressPrinter(process.stdout);
  await client.pushImage(repo, { tag: t, registryAuth: await registryAuthFor(repo) }, (m) => {
    if (typeof m.error === 'string') throw new Error(m.error);
    if (!opts.quiet) printer.handle(m);
  });
  if (opts.quiet) process.stdout.write(`${repo}${t ? `:${t}` : ''}\n`);
}

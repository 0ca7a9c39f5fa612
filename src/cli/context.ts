/**
 * The CLI's connection to a daemon, and starting berthd in the background when the default
 * socket does not answer, so a fresh user never has to.
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, ConnectError } from '../client/client.js';
import { DEFAULT_HOST, resolveHost } from '../client/transport.js';

/**
 * BERTH_EXEC_ROOT and BERTH_DATA_ROOT move the default socket and the roots of an auto-started
 * daemon (tests use them to stay off the machine's own daemon).
 */
const execRoot = process.env.BERTH_EXEC_ROOT || '/run/berth';
const dataRoot = process.env.BERTH_DATA_ROOT;
export const DEFAULT_LOCAL_HOST = process.env.BERTH_EXEC_ROOT
  ? `unix://${execRoot}/berth.sock`
  : DEFAULT_HOST;
export const DAEMON_LOG = process.env.BERTH_EXEC_ROOT
  ? `${execRoot}/berthd.log`
  : '/var/log/berth/berthd.log';
export const PID_FILE = `${execRoot}/berthd.pid`;

export interface CliContext {
  hostFlag?: string;
}

let shared: Client | undefined;

/** A client for the chosen host; starts berthd when the default socket is dead. */
export async function connect(ctx: CliContext): Promise<Client> {
  if (shared) return shared;
  const host = resolveHost(ctx.hostFlag, process.env, DEFAULT_LOCAL_HOST);
  const client = new Client(host);
  try {
    await client.apiVersion();
  } catch (err) {
    if (!(err instanceof ConnectError) || host !== DEFAULT_LOCAL_HOST) throw err;
    await startDaemon();
    await client.apiVersion();
  }
  shared = client;
  return client;
}

export function closeClient(): void {
  shared?.close();
  shared = undefined;
}

/** Starts berthd detached, logging to DAEMON_LOG, and waits until it answers. */
export async function startDaemon(extraArgs: string[] = []): Promise<number> {
  const berthd = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../bin/berthd.js');
  mkdirSync(path.dirname(DAEMON_LOG), { recursive: true });
  const out = openSync(DAEMON_LOG, 'a');
  process.stderr.write(`Starting berthd in the background (log: ${DAEMON_LOG})\n`);
  const roots = process.env.BERTH_EXEC_ROOT
    ? ['--exec-root', execRoot, '-H', DEFAULT_LOCAL_HOST, ...(dataRoot ? ['--data-root', dataRoot] : [])]
    : [];
  const child = spawn(process.execPath, [berthd, ...roots, ...extraArgs], {
    detached: true,
    stdio: ['ignore', out, out],
  });
  closeSync(out);
  child.unref();
  const pid = child.pid ?? 0;
  const probe = new Client(DEFAULT_LOCAL_HOST);
  try {
    for (let i = 0; i < 200; i++) {
      if (child.exitCode !== null) break;
      try {
        if (await probe.ping()) return pid;
      } catch {
        // not up yet
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    probe.close();
  }
  throw new Error(`berthd did not start; see ${DAEMON_LOG}`);
}

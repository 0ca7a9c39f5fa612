import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { Client } from '../../client/client.js';
import { DAEMON_LOG, DEFAULT_LOCAL_HOST, PID_FILE, startDaemon } from '../context.js';
import { ExitError } from '../errors.js';

function daemonPid(): number | undefined {
  try {
    const pid = Number(readFileSync(PID_FILE, 'utf8').trim());
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

async function answers(): Promise<boolean> {
  const c = new Client(DEFAULT_LOCAL_HOST);
  try {
    return await c.ping();
  } catch {
    return false;
  } finally {
    c.close();
  }
}

export function daemonCommands(program: Command): void {
  const daemon = program.command('daemon').description('Manage the local berthd daemon (default socket)');

  daemon
    .command('start')
    .description('Start berthd in the background')
    .argument('[args...]', 'extra berthd flags (after --)')
    .action(async (args: string[]) => {
      if (await answers()) {
        process.stdout.write(`berthd is already running (pid ${daemonPid() ?? 'unknown'})\n`);
        return;
      }
      const pid = await startDaemon(args);
      process.stdout.write(`berthd started (pid ${pid}, log ${DAEMON_LOG})\n`);
    });

  daemon
    .command('stop')
    .description('Stop the background berthd')
    .action(async () => {
      const pid = daemonPid();
      if (!pid) {
        process.stdout.write('berthd is not running\n');
        return;
      }
      process.kill(pid, 'SIGTERM');
      for (let i = 0; i < 100; i++) {
        try {
          process.kill(pid, 0);
        } catch {
          process.stdout.write(`berthd stopped (pid ${pid})\n`);
          return;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new ExitError(1, `berthd (pid ${pid}) did not stop within 10s`);
    });

  daemon
    .command('status')
    .description('Tell whether berthd is running')
    .action(async () => {
      const pid = daemonPid();
      if (await answers()) {
        process.stdout.write(`berthd is running (pid ${pid ?? 'unknown'}, ${DEFAULT_LOCAL_HOST})\n`);
        return;
      }
      process.stdout.write('berthd is not running\n');
      throw new ExitError(3);
    });
}

/**
 * NODE_EXTRA_CA_CERTS, deferred. Node reads and parses that file as it starts, before any of our code
 * runs (~35 ms here for Debian's ca-certificates.crt), although a command that talks to berthd on its
 * unix socket never speaks TLS. bin/berth, the `berth` on PATH, starts node without it and passes it
 * on as BERTH_DEFERRED_EXTRA_CA_CERTS. Here it goes back into the environment, for the processes the
 * CLI starts (berthd in the background, credential helpers); and a command that may speak TLS itself
 * (to a daemon over tcp with TLS, or `berth hub`, which reaches registries) runs again in a node that
 * has the certificates, so it trusts exactly what it would have trusted.
 */
import { spawn } from 'node:child_process';
import { usesTls } from '../client/transport.js';

export const DEFERRED_CA_ENV = 'BERTH_DEFERRED_EXTRA_CA_CERTS';

/**
 * Puts a deferred NODE_EXTRA_CA_CERTS back. True when the command needs it loaded and was handed to a
 * new node process, whose exit this process passes on.
 */
export function restoreDeferredCaCerts(argv: string[], env: NodeJS.ProcessEnv = process.env): boolean {
  const file = env[DEFERRED_CA_ENV];
  if (file === undefined) return false;
  delete env[DEFERRED_CA_ENV];
  if (file === '') return false;
  env.NODE_EXTRA_CA_CERTS = file;
  if (!mayUseTls(argv, env)) return false;
  rerun(env);
  return true;
}

/**
 * Whether the command may open a TLS connection: `hub`, or any daemon host it could use (every -H
 * value, BERTH_HOST, DOCKER_HOST) is one the client speaks TLS to.
 */
export function mayUseTls(argv: string[], env: NodeJS.ProcessEnv): boolean {
  const hosts = [env.BERTH_HOST, env.DOCKER_HOST];
  let command: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-H' || a === '--host') hosts.push(argv[++i]);
    else if (a.startsWith('--host=')) hosts.push(a.slice(7));
    else if (a.startsWith('-H')) hosts.push(a.slice(2));
    else if (command === undefined && !a.startsWith('-')) command = a;
  }
  return command === 'hub' || hosts.some((h) => h !== undefined && usesTls(h, env));
}

function rerun(env: NodeJS.ProcessEnv): void {
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env,
  });
  // The terminal's signals reach both processes (one process group); others are passed on.
  const ignore = () => undefined;
  process.on('SIGINT', ignore).on('SIGQUIT', ignore);
  const pass = (sig: NodeJS.Signals) => child.kill(sig);
  process.on('SIGTERM', pass).on('SIGHUP', pass);
  child.on('error', (err) => {
    process.stderr.write(`berth: ${err.message}\n`);
    process.exitCode = 1;
  });
  child.on('exit', (code, signal) => {
    if (signal) {
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
    } else process.exitCode = code ?? 1;
  });
}

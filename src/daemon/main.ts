/**
 * berthd: the Berth daemon. Serves the Docker Engine API on a unix socket (and optionally TCP).
 */
import { Command } from 'commander';
import { promises as fsp, readFileSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';
import { errorMessage, invalidArgument } from '../common/errors.js';
import { isLogLevel, log, setLogLevel } from '../common/log.js';
import { Engine } from '../engine/engine.js';
import { createApiServer } from '../routes/server.js';
import { trimWhenIdle } from './idletrim.js';
import { validateRegistryConfig } from '../distribution/hosts.js';
import {
  DEFAULT_SOCKET,
  type DaemonOptions,
  defaults,
  isLoopback,
  type Listener,
  parseHost,
  readConfigFile,
} from './config.js';

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

export async function main(argv: string[]): Promise<void> {
  const program = new Command('berthd')
    .description('The Berth daemon: serves the Docker Engine API')
    .option('--data-root <dir>', 'root of persisted state', undefined)
    .option('--exec-root <dir>', 'root of runtime state (sockets, monitors)', undefined)
    .option('-H, --host <host>', 'socket to listen on: unix:///path or tcp://host:port', collect, [])
    .option('--config-file <file>', 'daemon configuration file', defaults.configFile)
    .option('-l, --log-level <level>', 'debug, info, warn or error')
    .option('-D, --debug', 'debug logging')
    .option('--registry-mirror <url>', 'registry mirror for docker.io', collect, [])
    .option('--insecure-registry <host>', 'registry reachable over plain HTTP', collect, [])
    .option('--label <label>', 'daemon label key=value', collect, [])
    .option('--hub-listen <addr>', 'also serve Berth Hub on host:port')
    .option('--hub-root <dir>', 'Berth Hub storage (default <data-root>/hub)')
    .option('--tls', 'use TLS on TCP listeners')
    .option('--tlsverify', 'use TLS and verify clients')
    .option('--tlscert <file>', 'TLS certificate')
    .option('--tlskey <file>', 'TLS key')
    .option('--tlscacert <file>', 'CA to verify clients with')
    .allowExcessArguments(false);
  program.parse(argv, { from: 'user' });
  const o = program.opts<Record<string, unknown>>();
  const explicitConfig = argv.some((a) => a.startsWith('--config-file'));
  const fromFile = await readConfigFile(String(o.configFile), explicitConfig);
  const opts: DaemonOptions = {
    ...defaults,
    ...fromFile,
    configFile: String(o.configFile),
  };
  if (o.dataRoot) opts.dataRoot = path.resolve(String(o.dataRoot));
  if (o.execRoot) opts.execRoot = path.resolve(String(o.execRoot));
  if ((o.host as string[]).length) opts.hosts = o.host as string[];
  if (o.logLevel) {
    if (!isLogLevel(String(o.logLevel))) throw invalidArgument(`invalid log level: ${String(o.logLevel)}`);
    opts.logLevel = o.logLevel as DaemonOptions['logLevel'];
  }
  if (o.debug) opts.debug = true;
  if ((o.registryMirror as string[]).length) opts.registryMirrors = o.registryMirror as string[];
  if ((o.insecureRegistry as string[]).length) opts.insecureRegistries = o.insecureRegistry as string[];
  if ((o.label as string[]).length) opts.labels = o.label as string[];
  if (o.hubListen) opts.hubListen = String(o.hubListen);
  if (o.hubRoot) opts.hubRoot = path.resolve(String(o.hubRoot));
  if (o.tls) opts.tls = true;
  if (o.tlsverify) opts.tlsVerify = true;
  for (const k of ['tlscert', 'tlskey', 'tlscacert'] as const) {
    const key = ({ tlscert: 'tlsCert', tlskey: 'tlsKey', tlscacert: 'tlsCaCert' } as const)[k];
    if (o[k]) opts[key] = String(o[k]);
  }
  validateRegistryConfig({ mirrors: opts.registryMirrors, insecure: opts.insecureRegistries });
  setLogLevel(opts.debug ? 'debug' : opts.logLevel);
  const hosts = opts.hosts.length ? opts.hosts : [`unix://${DEFAULT_SOCKET}`];
  const listeners = hosts.map(parseHost);
  const useTls = opts.tls || opts.tlsVerify;
  for (const l of listeners) {
    if (l.kind === 'tcp' && !isLoopback(l.host!) && !useTls)
      throw invalidArgument(
        `refusing to listen on tcp://${l.host}:${l.port} without TLS: use --tlsverify with --tlscacert, --tlscert and --tlskey, or a loopback address`,
      );
  }

  await fsp.mkdir(opts.execRoot, { recursive: true, mode: 0o711 });
  const pidFile = path.join(opts.execRoot, 'berthd.pid');
  await claimPidFile(pidFile);

  const engine = await Engine.open({
    dataRoot: opts.dataRoot,
    execRoot: opts.execRoot,
    registryMirrors: opts.registryMirrors,
    insecureRegistries: opts.insecureRegistries,
    debug: opts.debug,
    labels: opts.labels,
    cgroupParent: opts.cgroupParent,
    network: {
      bridge: opts.bridge,
      bip: opts.bip,
      defaultAddressPools: opts.defaultAddressPools,
      chainPrefix: opts.iptablesChainPrefix,
      dns: opts.dns,
    },
  });

  const servers: http.Server[] = [];
  // The hub first: once the API answers, everything the daemon serves is up.
  if (opts.hubListen)
    servers.push(await startHub(opts.hubListen, opts.hubRoot ?? path.join(opts.dataRoot, 'hub')));
  for (const l of listeners) servers.push(await listen(engine, l, opts));
  trimWhenIdle(servers);
  log.info('berthd ready', { hosts, dataRoot: opts.dataRoot, pid: process.pid });
  engine.events.publish('daemon', 'start', engine.id);

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info('shutting down', { signal });
    await Promise.all(
      servers.map(
        (s) =>
          new Promise<void>((resolve) => {
            s.close(() => resolve());
            s.closeAllConnections();
          }),
      ),
    );
    await engine.close();
    for (const l of listeners) if (l.kind === 'unix') await fsp.rm(l.path!, { force: true });
    await fsp.rm(pidFile, { force: true });
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

/** One daemon per exec root: a live pid in the pid file means another berthd owns it. */
async function claimPidFile(pidFile: string): Promise<void> {
  try {
    const pid = Number((await fsp.readFile(pidFile, 'utf8')).trim());
    if (pid && pid !== process.pid && isAlive(pid) && isBerthd(pid))
      throw invalidArgument(`berthd is already running with pid ${pid} (pid file ${pidFile})`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await fsp.writeFile(pidFile, String(process.pid));
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function isBerthd(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('berthd');
  } catch {
    return false;
  }
}

async function listen(engine: Engine, l: Listener, opts: DaemonOptions): Promise<http.Server> {
  let server = createApiServer(engine);
  if (l.kind === 'unix') {
    const sock = l.path!;
    await fsp.mkdir(path.dirname(sock), { recursive: true, mode: 0o755 });
    await removeStaleSocket(sock);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(sock, () => resolve());
    });
    await fsp.chmod(sock, 0o660);
    return server;
  }
  if (opts.tls || opts.tlsVerify) {
    if (!opts.tlsCert || !opts.tlsKey) throw invalidArgument('TLS needs --tlscert and --tlskey');
    const tlsServer = https.createServer({
      cert: readFileSync(opts.tlsCert),
      key: readFileSync(opts.tlsKey),
      ca: opts.tlsCaCert ? readFileSync(opts.tlsCaCert) : undefined,
      requestCert: opts.tlsVerify,
      rejectUnauthorized: opts.tlsVerify,
      maxHeaderSize: 1024 * 1024,
      // A client that has no stdin to send half-closes a hijacked attach (docker run does); the
      // output must still reach it. The plain server keeps half-open connections too.
      allowHalfOpen: true,
    });
    // Reuse the request handler and upgrade listeners of the plain server.
    for (const ev of ['request', 'upgrade'] as const)
      for (const fn of server.listeners(ev)) tlsServer.on(ev, fn as (...args: unknown[]) => void);
    server = tlsServer as unknown as http.Server;
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(l.port, l.host, () => resolve());
  });
  return server;
}

async function startHub(listenAddr: string, root: string): Promise<http.Server> {
  const m = /^(.*):(\d+)$/.exec(listenAddr);
  if (!m) throw invalidArgument(`invalid hub-listen address: ${listenAddr}`);
  const host = m[1].replace(/^\[|\]$/g, '');
  if (!isLoopback(host))
    throw invalidArgument(`refusing to serve the hub on non-loopback ${listenAddr} without TLS`);
  // Loaded only when asked for: the hub (and its JWT library) would otherwise sit in an idle daemon's memory.
  const [{ openHub }, { createHubServer }] = await Promise.all([
    import('../hub/config.js'),
    import('../hub/server.js'),
  ]);
  const { storage, opts } = await openHub(root);
  const server = createHubServer(storage, opts);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(m[2]), host, () => resolve());
  });
  log.info('Berth Hub serving', { listen: listenAddr, root });
  return server;
}

async function removeStaleSocket(sock: string): Promise<void> {
  try {
    await fsp.access(sock);
  } catch {
    return;
  }
  const alive = await new Promise<boolean>((resolve) => {
    const req = http.request({ socketPath: sock, path: '/_ping', method: 'HEAD', timeout: 1000 }, (res) => {
      res.resume();
      resolve(true);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => {
      req.destroy();
      resolve(false);
    });
    req.end();
  });
  if (alive) throw invalidArgument(`another daemon is already listening on ${sock}`);
  await fsp.rm(sock, { force: true });
}

export function runDaemon(): void {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`berthd: ${errorMessage(err)}\n`);
    process.exit(1);
  });
}

/**
 * bin/berth, the `berth` on PATH: node starts without NODE_EXTRA_CA_CERTS (src/cli/extraca.ts), and
 * a command that speaks TLS still trusts the certificates it names.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { DEFERRED_CA_ENV, mayUseTls, restoreDeferredCaCerts } from '../../src/cli/extraca.js';
import {
  BERTH,
  cleanupDir,
  DOCKER_CLI,
  FIXTURES,
  ROOT,
  run,
  startDaemon,
  type TestDaemon,
} from '../helpers/daemon.js';

const LAUNCHER = path.join(ROOT, 'bin', 'berth');

let d: TestDaemon;
let pki: string;
let tlsHost: string;

/** A CA and a server certificate for 127.0.0.1 signed by it. */
function makePki(dir: string): void {
  const ssl = (args: string) => {
    const r = spawnSync('openssl', args.split(' '), { cwd: dir, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  };
  writeFileSync(path.join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1\n');
  ssl('req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=berth-test-ca');
  ssl('req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1');
  ssl(
    'x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.ext',
  );
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

before(async () => {
  pki = mkdtempSync(path.join(os.tmpdir(), 'berth-pki-'));
  makePki(pki);
  const port = await freePort();
  tlsHost = `tcp://127.0.0.1:${port}`;
  d = await startDaemon([
    '-H',
    tlsHost,
    '--tls',
    '--tlscert',
    path.join(pki, 'server.pem'),
    '--tlskey',
    path.join(pki, 'server.key'),
  ]);
  const r = await run(process.execPath, [
    BERTH,
    '-H',
    d.host,
    'load',
    '-i',
    path.join(FIXTURES, 'busybox-1.38.0-musl-docker-archive.tar'),
  ]);
  assert.equal(r.code, 0, r.stderr);
});
after(async () => {
  await d?.stop();
  await cleanupDir(pki);
});

/** The launcher with a clean environment plus `env` (no host of the machine's own). */
function launcher(args: string[], env: NodeJS.ProcessEnv) {
  return run(LAUNCHER, args, {
    env: {
      BERTH_HOST: '',
      DOCKER_HOST: '',
      DOCKER_TLS_VERIFY: '',
      NODE_EXTRA_CA_CERTS: '',
      DOCKER_CONFIG: path.join(d.dir, 'docker-config'),
      ...env,
    },
  });
}

test('launcher: a run on the unix socket works with NODE_EXTRA_CA_CERTS set', async () => {
  const r = await launcher(
    ['-H', d.host, 'run', '--rm', '--network', 'none', 'busybox:1.38.0-musl', 'echo', 'hi'],
    {
      NODE_EXTRA_CA_CERTS: path.join(pki, 'ca.pem'),
    },
  );
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'hi\n');
});

test('launcher: a TLS daemon verified with the CA from NODE_EXTRA_CA_CERTS', async () => {
  const env = { DOCKER_HOST: tlsHost, DOCKER_TLS_VERIFY: '1', NODE_EXTRA_CA_CERTS: path.join(pki, 'ca.pem') };
  const ok = await launcher(['ps', '-a', '--format', '{{.ID}}'], env);
  assert.equal(ok.code, 0, ok.stderr);
  const viaRun = await launcher(
    ['run', '--rm', '--network', 'none', 'busybox:1.38.0-musl', 'echo', 'tls'],
    env,
  );
  assert.equal(viaRun.code, 0, viaRun.stderr);
  assert.equal(viaRun.stdout, 'tls\n');
  // the same with -H: the flag's host counts as the environment's does
  const flag = await launcher(['-H', tlsHost, 'ps', '-q'], { ...env, DOCKER_HOST: '' });
  assert.equal(flag.code, 0, flag.stderr);
  // the docker CLI's run over TLS (it half-closes the attach: the daemon keeps the output flowing)
  const dockerRun = await run(DOCKER_CLI, [
    ...['-H', tlsHost, '--tlsverify', '--tlscacert', path.join(pki, 'ca.pem')],
    ...['run', '--rm', '--network', 'none', 'busybox:1.38.0-musl', 'echo', 'docker-tls'],
  ]);
  assert.equal(dockerRun.code, 0, dockerRun.stderr);
  assert.equal(dockerRun.stdout, 'docker-tls\n');
  // without the CA the server's certificate is not trusted: the test above proves the CA was used
  const untrusted = await launcher(['ps', '-a'], { ...env, NODE_EXTRA_CA_CERTS: '' });
  assert.notEqual(untrusted.code, 0);
  assert.match(untrusted.stderr, /certificate/i);
});

test('extraca: the deferred value goes back into the environment; a re-run only for TLS', () => {
  const env: NodeJS.ProcessEnv = { [DEFERRED_CA_ENV]: '/x/ca.pem' };
  assert.equal(restoreDeferredCaCerts(['-H', 'unix:///run/b.sock', 'ps'], env), false);
  assert.equal(env.NODE_EXTRA_CA_CERTS, '/x/ca.pem');
  assert.equal(env[DEFERRED_CA_ENV], undefined);
  assert.equal(mayUseTls(['ps'], {}), false);
  assert.equal(mayUseTls(['-H', 'tcp://127.0.0.1:2375', 'ps'], {}), false);
  assert.equal(mayUseTls(['-H', 'tcp://127.0.0.1:2376', 'ps'], { DOCKER_TLS_VERIFY: '1' }), true);
  assert.equal(mayUseTls(['--host=https://h:2376', 'ps'], {}), true);
  assert.equal(mayUseTls(['ps'], { DOCKER_HOST: 'https://h:2376' }), true);
  assert.equal(mayUseTls(['compose', '-H', 'https://h:2376', 'ps'], {}), true);
  assert.equal(mayUseTls(['hub', 'serve'], {}), true);
  assert.equal(mayUseTls(['images', '-H'], {}), false);
});

/**
 * The issue's 3-service project: redis (from Debian's redis-server), a client that pings redis by
 * service name on the project network, and a service built from a local Dockerfile — brought up
 * and down with berth compose and with docker-compose 1.29. Named volume data survives `down`,
 * not `down -v`. Needs the daemon's networks, volumes and /build.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { berth, cleanupDir, startDaemon, type TestDaemon } from '../helpers/daemon.js';
import {
  compose,
  containerNames,
  dockerCompose,
  loadBusybox,
  makeRedisImage,
  projectDir,
  serves,
} from './helpers.js';

let d: TestDaemon;
let hasBuild = false;
const dirs: string[] = [];

before(async () => {
  d = await startDaemon();
  await loadBusybox(d);
  await makeRedisImage(d);
  hasBuild = await serves(d, 'POST', '/build');
});

after(async () => {
  await d?.stop();
  for (const dir of dirs) await cleanupDir(path.dirname(dir));
});

const PING = `for i in $$(seq 1 100); do if echo PING | nc -w 1 redis 6379 | grep -q PONG; then echo pinged redis by name; exec sleep 300; fi; sleep 0.2; done; echo redis unreachable; exit 1`;

function stack(withBuild: boolean): Record<string, string> {
  const files: Record<string, string> = {
    'compose.yaml': `
services:
  redis:
    image: redis:test
    stop_signal: SIGKILL
  client:
    image: busybox
    command: ["sh", "-c", "${PING}"]
    depends_on: [redis]
    stop_signal: SIGKILL
${
  withBuild
    ? `  web:
    build:
      context: ./web
      args: {MESSAGE: built from a local Dockerfile}
    stop_signal: SIGKILL
`
    : ''
}  tool:
    image: busybox
    profiles: [tools]
    volumes: [data:/data]
volumes:
  data:
`,
  };
  if (withBuild) {
    files['web/Dockerfile'] =
      'FROM busybox\nARG MESSAGE\nRUN echo "$MESSAGE" > /msg.txt\nCOPY hello.txt /hello.txt\nCMD ["sh", "-c", "cat /msg.txt /hello.txt; exec sleep 300"]\n';
    files['web/hello.txt'] = 'hello from the context\n';
    files['web/.dockerignore'] = 'secret.txt\n';
    files['web/secret.txt'] = 'must not be sent\n';
  }
  return files;
}

async function logsOf(p: string, svc: string, want: RegExp, runner = compose): Promise<string> {
  let out = '';
  for (let i = 0; i < 100; i++) {
    const r = await runner(d, p, ['logs', '--no-color', svc]);
    out = r.stdout;
    if (want.test(out)) return out;
    await new Promise((res) => setTimeout(res, 200));
  }
  return out;
}

test('berth compose: the client pings redis by service name on the project network; down removes it all', async (t) => {
  if (!(await serves(d, 'GET', '/networks'))) return t.skip('the daemon has no /networks yet');
  const p = projectDir(stack(hasBuild), 'stack');
  dirs.push(p);
  let r = await compose(d, p, ['up', '-d']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /Network stack_default {2}Created/);
  assert.match(await logsOf(p, 'client', /pinged redis/), /stack-client-1 +\| pinged redis by name/);
  const net = await berth(d, ['network', 'inspect', '--format', '{{json .Labels}}', 'stack_default']);
  assert.equal(net.code, 0, net.stderr);
  assert.equal((JSON.parse(net.stdout) as Record<string, string>)['com.docker.compose.project'], 'stack');
  if (hasBuild) {
    assert.match(
      await logsOf(p, 'web', /hello from/),
      /built from a local Dockerfile\n.*hello from the context/,
    );
    r = await berth(d, ['run', '--rm', '--network', 'none', 'stack-web', 'ls', '/']);
    assert.equal(r.code, 0, r.stderr);
  } else t.diagnostic('the daemon has no /build yet: the built service was left out');
  // --rmi local removes the images compose built, not pulled or named ones.
  r = await compose(d, p, ['down', '--rmi', 'local']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await containerNames(d), []);
  r = await berth(d, ['images', '--format', '{{.Repository}}']);
  assert.match(r.stdout, /^redis$/m);
  assert.doesNotMatch(r.stdout, /^stack-web$/m);
  r = await berth(d, ['network', 'ls', '--format', '{{.Name}}']);
  assert.doesNotMatch(r.stdout, /stack_default/);
});

test('docker-compose 1.29 runs the same project against berthd', async (t) => {
  if (!(await serves(d, 'GET', '/networks'))) return t.skip('the daemon has no /networks yet');
  const p = projectDir(stack(hasBuild), 'stackdc');
  dirs.push(p);
  let r = await dockerCompose(d, p, ['up', '-d']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(await logsOf(p, 'client', /pinged redis/, dockerCompose), /pinged redis by name/);
  if (hasBuild) assert.match(await logsOf(p, 'web', /hello from/, dockerCompose), /hello from the context/);
  // berth compose sees docker-compose's project.
  r = await compose(d, p, ['ps', '--services']);
  assert.deepEqual(
    r.stdout.split('\n').filter(Boolean).sort(),
    hasBuild ? ['client', 'redis', 'web'] : ['client', 'redis'],
  );
  r = await dockerCompose(d, p, ['down']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await containerNames(d), []);
});

test('named volume data survives down, not down -v', async (t) => {
  if (!(await serves(d, 'GET', '/volumes'))) return t.skip('the daemon has no /volumes yet');
  const p = projectDir(
    {
      'compose.yaml':
        'services:\n  tool: {image: busybox, network_mode: none, volumes: [data:/data]}\nvolumes:\n  data:\n',
    },
    'vols',
  );
  dirs.push(p);
  let r = await compose(d, p, ['run', '--rm', 'tool', 'sh', '-c', 'echo kept > /data/marker']);
  assert.equal(r.code, 0, r.stderr);
  r = await berth(d, ['volume', 'inspect', '--format', '{{json .Labels}}', 'vols_data']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((JSON.parse(r.stdout) as Record<string, string>)['com.docker.compose.volume'], 'data');
  assert.equal((await compose(d, p, ['down'])).code, 0);
  r = await compose(d, p, ['run', '--rm', 'tool', 'cat', '/data/marker']);
  assert.equal(r.stdout, 'kept\n', r.stderr);
  r = await compose(d, p, ['down', '-v']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /Volume vols_data {2}Removed/);
  r = await berth(d, ['volume', 'ls', '-q']);
  assert.doesNotMatch(r.stdout, /vols_data/);
  r = await compose(d, p, ['run', '--rm', 'tool', 'sh', '-c', 'cat /data/marker || echo gone']);
  assert.match(r.stdout, /gone/);
  assert.equal((await compose(d, p, ['down', '-v'])).code, 0);
});

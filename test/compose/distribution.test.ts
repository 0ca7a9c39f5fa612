/**
 * `compose push` and `compose pull` end to end: berth compose (and docker-compose 1.29) against a
 * test daemon and Debian's reference registry on loopback (insecure by default, as Docker treats
 * 127.0.0.0/8).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { berth, cleanupDir, startDaemon, type TestDaemon } from '../helpers/daemon.js';
import {
  hasReferenceRegistry,
  type RunningRegistry,
  startReferenceRegistry,
} from '../distribution/registries.js';
import { compose, DOCKER_COMPOSE, dockerCompose, loadBusybox, projectDir } from './helpers.js';

let d: TestDaemon;
let reg: RunningRegistry | undefined;
const dirs: string[] = [];
const skip = !hasReferenceRegistry && 'no docker-registry';

before(async () => {
  if (skip) return;
  d = await startDaemon();
  await loadBusybox(d);
  reg = await startReferenceRegistry();
});

after(async () => {
  await reg?.stop();
  await d?.stop();
  for (const dir of dirs) await cleanupDir(path.dirname(dir));
});

function tags(repo: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    http
      .get(`http://${reg!.host}/v2/${repo}/tags/list`, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () =>
          resolve(res.statusCode === 200 ? ((JSON.parse(body) as { tags: string[] }).tags ?? []) : []),
        );
      })
      .on('error', reject);
  });
}

function project(): string {
  const host = reg!.host;
  const p = projectDir({
    'compose.yaml': `
services:
  app:
    image: ${host}/proj/app:1
    build: ./app
  base:
    image: ${host}/proj/base:1
  local:
    build: ./app
`,
    'app/Dockerfile': 'FROM busybox:1.38.0-musl\nCOPY hello.txt /\nCMD ["cat", "/hello.txt"]\n',
    'app/hello.txt': 'pushed and pulled\n',
  });
  dirs.push(p);
  return p;
}

test(
  'compose push sends every service image with a name to the registry; compose pull brings them back',
  { skip },
  async () => {
    const host = reg!.host;
    const p = project();
    assert.equal((await berth(d, ['tag', 'busybox:1.38.0-musl', `${host}/proj/base:1`])).code, 0);
    const built = await compose(d, p, ['build']);
    assert.equal(built.code, 0, built.stderr);

    const pushed = await compose(d, p, ['push']);
    assert.equal(pushed.code, 0, pushed.stderr);
    assert.match(pushed.stderr, new RegExp(`Image ${host}/proj/app:1 {2}Pushed`));
    assert.match(pushed.stderr, new RegExp(`Image ${host}/proj/base:1 {2}Pushed`));
    // `local` has no image name: nothing of it is pushed.
    assert.doesNotMatch(pushed.stderr, /local/);
    assert.deepEqual(await tags('proj/app'), ['1']);
    assert.deepEqual(await tags('proj/base'), ['1']);

    for (const ref of [`${host}/proj/app:1`, `${host}/proj/base:1`])
      assert.equal((await berth(d, ['rmi', ref])).code, 0);
    const pulled = await compose(d, p, ['pull', 'app', 'base']);
    assert.equal(pulled.code, 0, pulled.stderr);
    const r = await berth(d, ['run', '--rm', '--network', 'none', `${host}/proj/app:1`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'pushed and pulled\n');
    assert.equal((await berth(d, ['image', 'inspect', `${host}/proj/base:1`])).code, 0);
  },
);

test(
  'compose pull and push failures: an error naming the image, or a warning with --ignore-*-failures',
  { skip },
  async () => {
    const host = reg!.host;
    const p = projectDir({
      'compose.yaml': `
services:
  ghost:
    image: ${host}/proj/ghost:1
`,
    });
    dirs.push(p);
    const pull = await compose(d, p, ['pull']);
    assert.notEqual(pull.code, 0);
    assert.match(pull.stderr, /proj\/ghost/);
    const ignored = await compose(d, p, ['pull', '--ignore-pull-failures']);
    assert.equal(ignored.code, 0, ignored.stderr);
    assert.match(ignored.stderr, /proj\/ghost/);

    const push = await compose(d, p, ['push']);
    assert.notEqual(push.code, 0);
    assert.match(push.stderr, /does not exist locally with the tag: .*proj\/ghost:1/);
    const pushIgnored = await compose(d, p, ['push', '--ignore-push-failures']);
    assert.equal(pushIgnored.code, 0, pushIgnored.stderr);
    assert.match(pushIgnored.stderr, /WARN.*proj\/ghost:1/);
    assert.deepEqual(await tags('proj/ghost'), []);
  },
);

test(
  'docker-compose 1.29 push and pull against berthd',
  { skip: skip || (!existsSync(DOCKER_COMPOSE) && 'no docker-compose') },
  async () => {
    const host = reg!.host;
    // docker-compose 1.x pushes only the services it builds.
    const p = projectDir({
      'compose.yaml': `
services:
  other:
    image: ${host}/proj/other:2
    build: ./other
`,
      'other/Dockerfile': 'FROM busybox:1.38.0-musl\nLABEL made-by=docker-compose\n',
    });
    dirs.push(p);
    const built = await dockerCompose(d, p, ['build']);
    assert.equal(built.code, 0, built.stderr);
    const pushed = await dockerCompose(d, p, ['push']);
    assert.equal(pushed.code, 0, pushed.stderr);
    assert.deepEqual(await tags('proj/other'), ['2'], pushed.stdout + pushed.stderr);
    assert.equal((await berth(d, ['rmi', `${host}/proj/other:2`])).code, 0);
    const pulled = await dockerCompose(d, p, ['pull']);
    assert.equal(pulled.code, 0, pulled.stderr);
    assert.equal((await berth(d, ['image', 'inspect', `${host}/proj/other:2`])).code, 0);
  },
);

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { DOCKER_CLI, docker, FIXTURES, startDaemon, type TestDaemon } from '../helpers/daemon.js';

const skip = !existsSync(DOCKER_CLI) && 'the real docker CLI is not installed';
let d: TestDaemon;
let tmp: string;

before(async () => {
  d = await startDaemon();
  tmp = mkdtempSync(path.join(os.tmpdir(), 'berth-dockercli-'));
});
after(async () => {
  await d.stop();
  rmSync(tmp, { recursive: true, force: true });
});

test('docker load, images, tag, inspect, history, save|load, rmi, import', { skip }, async () => {
  const load = await docker(d, ['load', '-i', path.join(FIXTURES, 'busybox-1.38.0-musl-docker-archive.tar')]);
  assert.equal(load.code, 0, load.stderr);
  assert.match(load.stdout, /Loaded image: busybox:1.38.0-musl/);

  const images = await docker(d, ['images']);
  assert.equal(images.code, 0, images.stderr);
  assert.match(images.stdout, /^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE/);
  assert.match(images.stdout, /busybox\s+1\.38\.0-musl\s+654fc8fd[0-9a-f]{4}/);

  assert.equal((await docker(d, ['tag', 'busybox:1.38.0-musl', 'example.com:5000/x/bb:2'])).code, 0);
  const fmt = await docker(d, ['images', '--format', '{{.Repository}}:{{.Tag}}']);
  assert.deepEqual(fmt.stdout.trim().split('\n').sort(), ['busybox:1.38.0-musl', 'example.com:5000/x/bb:2']);

  const inspect = await docker(d, [
    'image',
    'inspect',
    '-f',
    '{{.Os}}/{{.Architecture}} {{json .Config.Cmd}}',
    'busybox:1.38.0-musl',
  ]);
  assert.equal(inspect.code, 0, inspect.stderr);
  assert.equal(inspect.stdout.trim(), 'linux/amd64 ["sh"]');
  const noSuch = await docker(d, ['image', 'inspect', 'nosuch']);
  assert.notEqual(noSuch.code, 0);
  assert.match(noSuch.stderr, /No such image: nosuch/);

  const history = await docker(d, ['history', 'busybox:1.38.0-musl']);
  assert.equal(history.code, 0, history.stderr);
  assert.match(history.stdout, /^IMAGE\s+CREATED\s+CREATED BY\s+SIZE\s+COMMENT/);

  const saved = path.join(tmp, 'bb.tar');
  const save = await docker(d, ['save', '-o', saved, 'busybox:1.38.0-musl']);
  assert.equal(save.code, 0, save.stderr);
  assert.ok(readFileSync(saved).length > 800_000);

  const rmi = await docker(d, ['rmi', 'example.com:5000/x/bb:2']);
  assert.equal(rmi.code, 0, rmi.stderr);
  assert.match(rmi.stdout, /Untagged: example.com:5000\/x\/bb:2/);
  const rmAll = await docker(d, ['rmi', 'busybox:1.38.0-musl']);
  assert.equal(rmAll.code, 0, rmAll.stderr);
  assert.match(rmAll.stdout, /Deleted: sha256:654fc8fd/);
  assert.equal((await docker(d, ['images', '-q'])).stdout.trim(), '');

  const reload = await docker(d, ['load', '-i', saved]);
  assert.equal(reload.code, 0, reload.stderr);
  assert.match(reload.stdout, /Loaded image: busybox:1.38.0-musl/);

  const imp = await docker(d, [
    'import',
    '--change',
    'CMD ["/bin/sh"]',
    '-m',
    'from docker cli',
    path.join(FIXTURES, 'alpine-minirootfs-3.20.3-x86_64.tar.gz'),
    'alpine:3.20.3',
  ]);
  assert.equal(imp.code, 0, imp.stderr);
  assert.match(imp.stdout.trim(), /^sha256:[0-9a-f]{64}$/);
  const cmd = await docker(d, ['inspect', '-f', '{{json .Config.Cmd}} {{.Comment}}', 'alpine:3.20.3']);
  assert.equal(cmd.stdout.trim(), '["/bin/sh"] from docker cli');
});

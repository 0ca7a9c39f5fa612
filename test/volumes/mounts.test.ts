/**
 * Container mounts: named and anonymous volumes, binds, tmpfs, --volumes-from, copy-up from the
 * image, cp/diff/commit/export with mounts, restarts, and Docker's errors for bad mount specs.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import {
  BERTH,
  berth,
  cleanupDir,
  docker,
  FIXTURES,
  request,
  run,
  startDaemon,
  type TestDaemon,
} from '../helpers/daemon.js';

const BB = 'busybox:1.38.0-musl';
let d: TestDaemon;
let tmp: string;

before(async () => {
  d = await startDaemon();
  tmp = mkdtempSync(path.join(os.tmpdir(), 'berth-mnt-'));
  let r = await berth(d, ['load', '-i', path.join(FIXTURES, 'busybox-1.38.0-musl-docker-archive.tar')]);
  assert.equal(r.code, 0, r.stderr);
  // An image with a VOLUME whose content belongs to uid 1000 (for copy-up).
  r = await berth(d, [
    'run',
    '--name',
    'seedbase',
    BB,
    'sh',
    '-c',
    'mkdir -p /seed/sub && echo seeded > /seed/f && echo deep > /seed/sub/g && chown -R 1000:1001 /seed && chmod 750 /seed',
  ]);
  assert.equal(r.code, 0, r.stderr);
  r = await berth(d, ['commit', '-c', 'VOLUME /seed', 'seedbase', 'volimg:1']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await berth(d, ['rm', 'seedbase'])).code, 0);
});
after(async () => {
  await d.stop();
  await cleanupDir(tmp);
});

async function volumes(): Promise<string[]> {
  return (await berth(d, ['volume', 'ls', '-q'])).stdout.split('\n').filter(Boolean);
}

function mountedUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((m) => m && m.startsWith(dir + '/'));
}

test('data written in a named volume by one container is read back by a second (docker CLI)', async () => {
  let r = await docker(d, [
    'run',
    '--rm',
    '-v',
    'shared:/data',
    BB,
    'sh',
    '-c',
    'echo persisted > /data/note',
  ]);
  assert.equal(r.code, 0, r.stderr);
  r = await docker(d, ['run', '--rm', '-v', 'shared:/other', BB, 'cat', '/other/note']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'persisted\n');
  r = await docker(d, [
    'run',
    '--rm',
    '--mount',
    'type=volume,source=shared,target=/m,readonly',
    BB,
    'sh',
    '-c',
    'cat /m/note; touch /m/x',
  ]);
  assert.equal(r.stdout, 'persisted\n');
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /Read-only file system/);
  r = await docker(d, ['create', '--name', 'insp', '-v', 'shared:/data', BB]);
  assert.equal(r.code, 0, r.stderr);
  r = await docker(d, ['inspect', '--format', '{{json .Mounts}}', 'insp']);
  assert.deepEqual(JSON.parse(r.stdout), [
    {
      Type: 'volume',
      Name: 'shared',
      Source: path.join(d.dataRoot, 'volumes', 'shared', '_data'),
      Destination: '/data',
      Driver: 'local',
      Mode: 'z',
      RW: true,
      Propagation: '',
    },
  ]);
  r = await docker(d, ['ps', '-a', '--filter', 'name=insp', '--format', '{{.Mounts}}']);
  assert.equal(r.stdout.trim(), 'shared');
  // In use by a container (even a stopped one): refused with 409.
  const res = await request(d, 'DELETE', '/v1.41/volumes/shared');
  assert.equal(res.status, 409);
  assert.match(
    JSON.parse(res.body.toString()).message as string,
    /^remove shared: volume is in use - \[[0-9a-f]{64}\]$/,
  );
  assert.equal((await docker(d, ['rm', 'insp'])).code, 0);
  assert.equal((await docker(d, ['volume', 'rm', 'shared'])).code, 0);
});

test('bind mounts: read-only enforced, read-write reaches the host, -v creates a missing source', async () => {
  const src = path.join(tmp, 'bind');
  mkdirSync(src);
  writeFileSync(path.join(src, 'in'), 'host data\n');
  let r = await docker(d, [
    'run',
    '--rm',
    '-v',
    `${src}:/b:ro`,
    BB,
    'sh',
    '-c',
    'cat /b/in; echo x > /b/new',
  ]);
  assert.equal(r.stdout, 'host data\n');
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /Read-only file system/);
  assert.ok(!existsSync(path.join(src, 'new')));
  r = await docker(d, ['run', '--rm', '-v', `${src}:/b:rw,z`, BB, 'sh', '-c', 'echo written > /b/new']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(readFileSync(path.join(src, 'new'), 'utf8'), 'written\n');
  const missing = path.join(tmp, 'made', 'by', 'v');
  r = await docker(d, ['run', '--rm', '-v', `${missing}:/m`, BB, 'ls', '-d', '/m']);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(statSync(missing).isDirectory());
  r = await docker(d, [
    'create',
    '--name',
    'bindinsp',
    '-v',
    `${src}:/b:ro`,
    '--mount',
    `type=bind,src=${src},dst=/c,bind-propagation=rslave`,
    BB,
  ]);
  assert.equal(r.code, 0, r.stderr);
  r = await docker(d, ['inspect', '--format', '{{json .Mounts}}', 'bindinsp']);
  const mounts = JSON.parse(r.stdout) as Record<string, unknown>[];
  assert.deepEqual(
    mounts.find((m) => m.Destination === '/b'),
    { Type: 'bind', Source: src, Destination: '/b', Mode: 'ro', RW: false, Propagation: 'rprivate' },
  );
  assert.deepEqual(
    mounts.find((m) => m.Destination === '/c'),
    { Type: 'bind', Source: src, Destination: '/c', Mode: '', RW: true, Propagation: 'rslave' },
  );
  r = await docker(d, ['start', '-a', 'bindinsp']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await docker(d, ['rm', 'bindinsp'])).code, 0);
  // Through the API: HostConfig.Binds and Mounts.
  const res = await request(
    d,
    'POST',
    '/v1.41/containers/create',
    JSON.stringify({
      Image: BB,
      Cmd: ['cat', '/x/in'],
      HostConfig: {
        Binds: [`${src}:/x:ro`],
        Mounts: [{ Type: 'tmpfs', Target: '/scratch', TmpfsOptions: { SizeBytes: 1048576 } }],
      },
    }),
    { 'Content-Type': 'application/json' },
  );
  assert.equal(res.status, 201, res.body.toString());
  const id = (JSON.parse(res.body.toString()) as { Id: string }).Id;
  r = await docker(d, ['start', '-a', id]);
  assert.equal(r.stdout, 'host data\n');
  assert.equal((await docker(d, ['rm', id])).code, 0);
});

test('tmpfs mounts with --mount: size applied, nothing kept', async () => {
  const r = await berth(d, [
    'run',
    '--rm',
    '--mount',
    'type=tmpfs,target=/t,tmpfs-size=2m,tmpfs-mode=1770',
    BB,
    'sh',
    '-c',
    'df -k /t | tail -1; stat -c %a /t',
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^tmpfs\s+2048\s/);
  assert.match(r.stdout, /\n1770\n$/);
});

test('anonymous volumes: image VOLUMEs and -v /path, removed by rm -v and --rm, named ones kept', async () => {
  const initial = await volumes();
  let r = await docker(d, [
    'run',
    '--name',
    'anon1',
    '-v',
    '/scratch',
    '-v',
    'keepme:/keep',
    'volimg:1',
    'sh',
    '-c',
    'cat /seed/f; echo a > /scratch/a',
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'seeded\n');
  r = await docker(d, ['inspect', '--format', '{{json .Mounts}}', 'anon1']);
  const mounts = JSON.parse(r.stdout) as { Name: string; Destination: string; Mode: string }[];
  assert.deepEqual(mounts.map((m) => m.Destination).sort(), ['/keep', '/scratch', '/seed']);
  const anon = mounts.filter((m) => m.Destination !== '/keep').map((m) => m.Name);
  for (const n of anon) assert.match(n, /^[0-9a-f]{64}$/);
  const vols = await volumes();
  for (const n of [...anon, 'keepme']) assert.ok(vols.includes(n), n);
  r = await docker(d, ['volume', 'inspect', '--format', '{{json .Labels}}', anon[0]]);
  assert.deepEqual(JSON.parse(r.stdout), { 'com.docker.volume.anonymous': '' });
  r = await docker(d, ['rm', '-v', 'anon1']);
  assert.equal(r.code, 0, r.stderr);
  const after1 = await volumes();
  for (const n of anon) assert.ok(!after1.includes(n), n);
  assert.ok(after1.includes('keepme'));
  for (const n of anon) assert.ok(!existsSync(path.join(d.dataRoot, 'volumes', n)));
  // --rm removes the anonymous volumes too.
  r = await docker(d, ['run', '--rm', 'volimg:1', 'true']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual((await volumes()).sort(), [...initial, 'keepme'].sort());
  // Without -v they stay (dangling).
  r = await docker(d, ['run', '--name', 'anon2', 'volimg:1', 'true']);
  const left = JSON.parse((await docker(d, ['inspect', '--format', '{{json .Mounts}}', 'anon2'])).stdout) as {
    Name: string;
  }[];
  assert.equal((await docker(d, ['rm', 'anon2'])).code, 0);
  assert.ok((await volumes()).includes(left[0].Name));
  assert.equal((await docker(d, ['volume', 'rm', left[0].Name, 'keepme'])).code, 0);
});

test('a new named volume is filled from the image at that path, ownership and mode too', async () => {
  let r = await docker(d, [
    'run',
    '--rm',
    '-v',
    'filled:/seed',
    'volimg:1',
    'sh',
    '-c',
    'cat /seed/f /seed/sub/g; stat -c "%u:%g %a" /seed /seed/f',
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'seeded\ndeep\n1000:1001 750\n1000:1001 644\n');
  const data = path.join(d.dataRoot, 'volumes', 'filled', '_data');
  assert.equal(readFileSync(path.join(data, 'f'), 'utf8'), 'seeded\n');
  assert.equal(statSync(data).uid, 1000);
  // A volume that has content is not filled again; nocopy leaves a new one empty.
  r = await docker(d, [
    'run',
    '--rm',
    '-v',
    'filled:/seed',
    'volimg:1',
    'sh',
    '-c',
    'rm /seed/f; echo mine > /seed/own',
  ]);
  assert.equal(r.code, 0, r.stderr);
  r = await docker(d, ['run', '--rm', '-v', 'filled:/seed', 'volimg:1', 'ls', '/seed']);
  assert.equal(r.stdout, 'own\nsub\n');
  r = await docker(d, ['run', '--rm', '-v', 'empty:/seed:nocopy', 'volimg:1', 'ls', '-A', '/seed']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, '');
  // A bind over an image directory shows the host's content only.
  const src = path.join(tmp, 'overseed');
  mkdirSync(src);
  r = await docker(d, ['run', '--rm', '-v', `${src}:/seed`, 'volimg:1', 'ls', '-A', '/seed']);
  assert.equal(r.stdout, '');
  assert.equal((await docker(d, ['volume', 'rm', 'filled', 'empty'])).code, 0);
});

test('--volumes-from shares the mounts, :ro makes them read-only', async () => {
  let r = await docker(d, ['create', '--name', 'datacon', '-v', 'vf:/data', '-v', '/anonvf', BB]);
  assert.equal(r.code, 0, r.stderr);
  r = await docker(d, [
    'run',
    '--rm',
    '--volumes-from',
    'datacon',
    BB,
    'sh',
    '-c',
    'echo one > /data/f; echo two > /anonvf/g',
  ]);
  assert.equal(r.code, 0, r.stderr);
  r = await berth(d, [
    'run',
    '--rm',
    '--volumes-from',
    'datacon:ro',
    BB,
    'sh',
    '-c',
    'cat /data/f /anonvf/g; touch /data/no',
  ]);
  assert.equal(r.stdout, 'one\ntwo\n');
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /Read-only file system/);
  r = await docker(d, ['create', '--name', 'vfuser', '--volumes-from', 'datacon:ro', BB]);
  const m = JSON.parse((await docker(d, ['inspect', '--format', '{{json .Mounts}}', 'vfuser'])).stdout) as {
    Destination: string;
    RW: boolean;
  }[];
  assert.deepEqual(m.map((x) => [x.Destination, x.RW]).sort(), [
    ['/anonvf', false],
    ['/data', false],
  ]);
  // The anonymous volume is shared: `rm -v` of its owner keeps it while vfuser uses it.
  const anonName = (
    JSON.parse((await docker(d, ['inspect', '--format', '{{json .Mounts}}', 'datacon'])).stdout) as {
      Name: string;
      Destination: string;
    }[]
  ).find((x) => x.Destination === '/anonvf')!.Name;
  assert.equal((await docker(d, ['rm', '-v', 'datacon'])).code, 0);
  assert.ok((await volumes()).includes(anonName));
  assert.equal((await docker(d, ['rm', 'vfuser'])).code, 0);
  // Through the API (both CLIs take a 404 from create for a missing image and try a pull).
  const res = await request(
    d,
    'POST',
    '/v1.41/containers/create',
    JSON.stringify({ Image: BB, HostConfig: { VolumesFrom: ['nosuchcontainer:ro'] } }),
    { 'Content-Type': 'application/json' },
  );
  assert.equal(res.status, 404);
  assert.deepEqual(JSON.parse(res.body.toString()), { message: 'No such container: nosuchcontainer' });
  assert.equal((await docker(d, ['volume', 'rm', 'vf', anonName])).code, 0);
});

test('bad mount specs: Docker errors (400), no container or volume left behind', async () => {
  const initial = await volumes();
  const ps = async () => (await docker(d, ['ps', '-aq'])).stdout;
  const psBefore = await ps();
  const cases: [string[], string][] = [
    [
      ['--mount', 'type=bind,source=/nonexistent-berth-src,target=/x'],
      'invalid mount config for type "bind": bind source path does not exist: /nonexistent-berth-src',
    ],
    [
      ['-v', 'a/b:/x'],
      'create a/b: "a/b" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path',
    ],
    [
      ['-v', 'okvol:../etc'],
      `invalid volume specification: 'okvol:../etc': invalid mount config for type "volume": invalid mount path: '../etc' mount path must be absolute`,
    ],
    [
      ['-v', 'okvol:/..'],
      `invalid volume specification: 'okvol:/..': invalid mount config for type "volume": invalid specification: destination can't be '/'`,
    ],
    [
      ['-v', `${tmp}:relative`],
      `invalid volume specification: '${tmp}:relative': invalid mount config for type "bind": invalid mount path: 'relative' mount path must be absolute`,
    ],
    [
      ['--mount', 'type=volume,source=okvol,target=rel'],
      `invalid mount config for type "volume": invalid mount path: 'rel' mount path must be absolute`,
    ],
    [['-v', 'okvol:/x:bogus'], 'invalid mode: bogus'],
    [['-v', 'okvol:/x', '-v', 'other:/x'], 'Duplicate mount point: /x'],
    [['--mount', 'type=nfs,target=/x'], 'invalid mount config for type "nfs": mount type unknown'],
    [['-v', '/anon:ro'], `invalid volume specification: '/anon:ro'`],
    [
      ['--mount', 'type=volume,target=/x,readonly'],
      'invalid mount config for type "volume": must not set ReadOnly mode when using anonymous volumes',
    ],
    [
      ['--mount', `type=bind,source=${tmp},target=/x,bind-propagation=sideways`],
      'invalid mount config for type "bind": invalid propagation mode: sideways',
    ],
  ];
  for (const [flags, msg] of cases) {
    const r = await docker(d, ['run', '--rm', ...flags, BB, 'true']);
    assert.equal(r.code, 125, `${flags.join(' ')}: ${r.stderr}`);
    assert.ok(r.stderr.includes(`Error response from daemon: ${msg}`), `${flags.join(' ')}: ${r.stderr}`);
  }
  const res = await request(
    d,
    'POST',
    '/v1.41/containers/create',
    JSON.stringify({
      Image: BB,
      HostConfig: { Mounts: [{ Type: 'bind', Source: '/nonexistent-berth-src', Target: '/x' }] },
    }),
    { 'Content-Type': 'application/json' },
  );
  assert.equal(res.status, 400);
  assert.deepEqual(JSON.parse(res.body.toString()), {
    message: 'invalid mount config for type "bind": bind source path does not exist: /nonexistent-berth-src',
  });
  assert.deepEqual(await volumes(), initial);
  assert.equal(await ps(), psBefore);
});

test('cp reads and writes volumes; diff, commit and export leave mount points out', async () => {
  let r = await docker(d, [
    'run',
    '-d',
    '--name',
    'cpv',
    '-v',
    'cpvol:/vol',
    '--mount',
    'type=tmpfs,target=/tm',
    BB,
    'sleep',
    '300',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const f = path.join(tmp, 'cpfile');
  writeFileSync(f, 'copied in\n');
  assert.equal((await docker(d, ['cp', f, 'cpv:/vol/'])).code, 0);
  assert.equal((await docker(d, ['cp', f, 'cpv:/tm/'])).code, 0);
  assert.equal(
    readFileSync(path.join(d.dataRoot, 'volumes', 'cpvol', '_data', 'cpfile'), 'utf8'),
    'copied in\n',
  );
  r = await docker(d, ['exec', 'cpv', 'cat', '/tm/cpfile']);
  assert.equal(r.stdout, 'copied in\n');
  r = await docker(d, ['cp', 'cpv:/tm/cpfile', path.join(tmp, 'back')]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(readFileSync(path.join(tmp, 'back'), 'utf8'), 'copied in\n');
  r = await docker(d, ['diff', 'cpv']);
  assert.ok(!/\/(vol|tm)\b/.test(r.stdout), r.stdout);
  r = await docker(d, ['commit', 'cpv', 'cpvimg:1']);
  assert.equal(r.code, 0, r.stderr);
  r = await docker(d, ['run', '--rm', 'cpvimg:1', 'sh', '-c', 'ls -d /vol /tm 2>&1; true']);
  assert.match(r.stdout, /\/vol: No such file or directory/);
  // Stopped: cp still reaches the volume.
  assert.equal((await docker(d, ['stop', '-t', '0', 'cpv'])).code, 0);
  assert.equal((await docker(d, ['cp', f, 'cpv:/vol/second'])).code, 0);
  assert.ok(existsSync(path.join(d.dataRoot, 'volumes', 'cpvol', '_data', 'second')));
  const tarFile = path.join(tmp, 'cpv.tar');
  r = await docker(d, ['export', '-o', tarFile, 'cpv']);
  assert.equal(r.code, 0, r.stderr);
  const names = (await run('tar', ['-tf', tarFile])).stdout.split('\n');
  assert.ok(names.includes('bin/sh'));
  assert.ok(!names.some((n) => /^(vol|tm)\/?$/.test(n) || n.includes('cpfile')), names.join(' '));
  assert.equal((await docker(d, ['rm', 'cpv'])).code, 0);
  assert.equal((await docker(d, ['volume', 'rm', 'cpvol'])).code, 0);
});

test('restarts and a restarted daemon keep the mounts; nothing stays mounted after rm', async () => {
  let r = await docker(d, ['volume', 'create', '--opt', 'type=tmpfs', '--opt', 'device=tmpfs', 'rtv']);
  assert.equal(r.code, 0, r.stderr);
  r = await docker(d, [
    'run',
    '-d',
    '--name',
    'rs',
    '-v',
    'rsvol:/data',
    '-v',
    'rtv:/t',
    BB,
    'sh',
    '-c',
    'echo $$ >> /data/starts; sleep 300',
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await docker(d, ['restart', '-t', '0', 'rs'])).code, 0);
  const dir = d.dir;
  d.proc.kill('SIGKILL');
  await new Promise((res) => d.proc.once('exit', res));
  d = await startDaemon([], {}, { dir });
  assert.equal(mountedUnder(path.join(d.dataRoot, 'volumes')).length, 1);
  r = await docker(d, ['exec', 'rs', 'sh', '-c', 'wc -l < /data/starts; echo x > /t/y; cat /t/y']);
  assert.equal(r.stdout, '2\nx\n');
  assert.equal((await docker(d, ['restart', '-t', '0', 'rs'])).code, 0);
  r = await docker(d, ['exec', 'rs', 'sh', '-c', 'wc -l < /data/starts']);
  assert.equal(r.stdout.trim(), '3');
  assert.equal((await docker(d, ['rm', '-f', 'rs'])).code, 0);
  assert.deepEqual(mountedUnder(d.dir), []);
  assert.equal((await docker(d, ['volume', 'rm', 'rsvol', 'rtv'])).code, 0);
});

test('volume events, ps --filter volume=, rshared binds and relative -v sources from the CLI', async () => {
  const since = Math.floor(Date.now() / 1000) - 1;
  const src = path.join(tmp, 'shared-prop');
  mkdirSync(src);
  let r = await docker(d, [
    'run',
    '--name',
    'evc',
    '-v',
    'evvol:/e',
    '-v',
    `${src}:/s:ro,z,rshared`,
    BB,
    'sh',
    '-c',
    'grep " /s " /proc/self/mountinfo',
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, / \/s ro,.* shared:\d+ /);
  r = await docker(d, ['ps', '-a', '--filter', 'volume=evvol', '--format', '{{.Names}}']);
  assert.equal(r.stdout.trim(), 'evc');
  r = await docker(d, ['ps', '-a', '--filter', 'volume=/s', '--format', '{{.Names}}']);
  assert.equal(r.stdout.trim(), 'evc');
  r = await docker(d, ['ps', '-a', '--filter', 'volume=nothere', '--format', '{{.Names}}']);
  assert.equal(r.stdout.trim(), '');
  assert.equal((await docker(d, ['rm', 'evc'])).code, 0);
  assert.equal((await docker(d, ['volume', 'rm', 'evvol'])).code, 0);
  r = await docker(d, [
    'events',
    '--since',
    String(since),
    '--until',
    String(Math.floor(Date.now() / 1000) + 1),
    '--filter',
    'type=volume',
    '--format',
    '{{.Action}} {{.Actor.ID}} {{index .Actor.Attributes "destination"}}',
  ]);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.split('\n').map((l) => l.trimEnd());
  assert.deepEqual(
    lines.filter((l) => l.includes('evvol')),
    ['create evvol', 'mount evvol /e', 'unmount evvol', 'destroy evvol'],
  );
  // berth makes a relative host path absolute on the client side, as the docker CLI does.
  const rel = spawnSync(
    process.execPath,
    [BERTH, '-H', d.host, 'run', '--rm', '-v', './relsrc:/r', BB, 'sh', '-c', 'echo rel > /r/f'],
    {
      cwd: tmp,
      env: { ...process.env, BERTH_HOST: '', DOCKER_HOST: '' },
      encoding: 'utf8',
      timeout: 60_000,
    },
  );
  assert.equal(rel.status, 0, rel.stderr);
  assert.equal(readFileSync(path.join(tmp, 'relsrc', 'f'), 'utf8'), 'rel\n');
});

test('cp into a read-only mount is refused; a volume subpath must not go through a symlink', async () => {
  let r = await docker(d, ['create', '--name', 'rocp', '-v', 'rovol:/ro:ro', BB]);
  assert.equal(r.code, 0, r.stderr);
  const f = path.join(tmp, 'rofile');
  writeFileSync(f, 'x\n');
  r = await docker(d, ['cp', f, 'rocp:/ro/']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /mounted volume is marked read-only/);
  assert.ok(!existsSync(path.join(d.dataRoot, 'volumes', 'rovol', '_data', 'rofile')));
  assert.equal((await docker(d, ['rm', 'rocp'])).code, 0);
  r = await docker(d, [
    'run',
    '--rm',
    '-v',
    'subvol:/v',
    BB,
    'sh',
    '-c',
    'mkdir /v/real && echo in > /v/real/f && ln -s / /v/escape',
  ]);
  assert.equal(r.code, 0, r.stderr);
  r = await docker(d, [
    'run',
    '--rm',
    '--mount',
    'type=volume,src=subvol,dst=/s,volume-subpath=real',
    BB,
    'cat',
    '/s/f',
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'in\n');
  // create + start (the docker CLI's run --rm waits for a removal that a failed start never brings).
  r = await docker(d, [
    'create',
    '--name',
    'subesc',
    '--mount',
    'type=volume,src=subvol,dst=/s,volume-subpath=escape',
    BB,
    'ls',
    '/s',
  ]);
  assert.equal(r.code, 0, r.stderr);
  r = await docker(d, ['start', '-a', 'subesc']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /must not go through a symbolic link/);
  assert.equal((await docker(d, ['rm', 'subesc'])).code, 0);
  r = await docker(d, [
    'run',
    '--rm',
    '--mount',
    'type=volume,src=subvol,dst=/s,volume-subpath=../x',
    BB,
    'true',
  ]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /subpath must be a relative path within the volume/);
  assert.equal((await docker(d, ['volume', 'rm', 'rovol', 'subvol'])).code, 0);
});

/**
 * berth compose against a test daemon, and docker-compose 1.29 on the same projects: up, ps,
 * logs, reconciliation by config hash, scale, down; bad projects create nothing.
 * (Services use network_mode none here; networked projects are in stack.test.ts.)
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { BERTH, berth, cleanupDir, startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { compose, containerNames, dockerCompose, loadBusybox, projectDir } from './helpers.js';

let d: TestDaemon;
const dirs: string[] = [];

before(async () => {
  d = await startDaemon();
  await loadBusybox(d);
});

after(async () => {
  await d?.stop();
  for (const dir of dirs) await cleanupDir(path.dirname(dir));
});

function dir(files: Record<string, string>, name?: string): string {
  const p = projectDir(files, name);
  dirs.push(p);
  return p;
}

const TWO_SERVICES = `
services:
  web:
    image: busybox
    command: sh -c 'echo web says $$GREETING; sleep 300'
    environment: {GREETING: "\${GREETING:-hello}"}
    network_mode: none
    stop_signal: SIGKILL
    depends_on: [db]
    labels: {tier: front}
  db:
    image: busybox
    command: sh -c 'echo db ready; sleep 300'
    network_mode: none
    stop_signal: SIGKILL
`;

async function inspectLabels(id: string): Promise<Record<string, string>> {
  const r = await berth(d, ['inspect', '--format', '{{json .Config.Labels}}', id]);
  return JSON.parse(r.stdout) as Record<string, string>;
}

test('up -d, ps, logs; a second up keeps unchanged containers; a change recreates only its service; down', async () => {
  const p = dir({ 'compose.yaml': TWO_SERVICES }, 'Life_Cycle');
  let r = await compose(d, p, ['up', '-d']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await containerNames(d), ['life_cycle-db-1', 'life_cycle-web-1']);
  // db starts before web (web depends on it).
  assert.ok(
    r.stderr.indexOf('life_cycle-db-1  Started') < r.stderr.indexOf('life_cycle-web-1  Started'),
    r.stderr,
  );

  r = await compose(d, p, ['ps', '--format', 'json']);
  const rows = r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, string>);
  assert.deepEqual(
    rows.map((x) => [x.Name, x.Service, x.State]),
    [
      ['life_cycle-db-1', 'db', 'running'],
      ['life_cycle-web-1', 'web', 'running'],
    ],
  );
  const labels = await inspectLabels('life_cycle-web-1');
  assert.equal(labels['com.docker.compose.project'], 'life_cycle');
  assert.equal(labels['com.docker.compose.service'], 'web');
  assert.equal(labels['com.docker.compose.container-number'], '1');
  assert.equal(labels['com.docker.compose.oneoff'], 'False');
  assert.equal(labels['com.docker.compose.project.working_dir'], p);
  assert.match(labels['com.docker.compose.config-hash'], /^[0-9a-f]{64}$/);
  assert.equal(labels.tier, 'front');

  for (let i = 0; i < 50; i++) {
    r = await compose(d, p, ['logs', '--no-color']);
    if (r.stdout.includes('web says hello') && r.stdout.includes('db ready')) break;
    await new Promise((res) => setTimeout(res, 100));
  }
  assert.match(r.stdout, /^life_cycle-web-1 +\| web says hello$/m);
  assert.match(r.stdout, /^life_cycle-db-1 +\| db ready$/m);
  r = await compose(d, p, ['logs', '--no-log-prefix', 'db']);
  assert.equal(r.stdout, 'db ready\n');

  const idsBefore = (await compose(d, p, ['ps', '-q'])).stdout;
  r = await compose(d, p, ['up', '-d']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await compose(d, p, ['ps', '-q'])).stdout, idsBefore, 'an unchanged project is left alone');
  assert.match(r.stderr, /life_cycle-web-1 {2}Running/);

  // A changed variable changes web's config only: web is recreated, db is not.
  const dbId = (await compose(d, p, ['ps', '-q', 'db'])).stdout;
  const webId = (await compose(d, p, ['ps', '-q', 'web'])).stdout;
  r = await compose(d, p, ['up', '-d'], { GREETING: 'bonjour' });
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await compose(d, p, ['ps', '-q', 'db'])).stdout, dbId);
  assert.notEqual((await compose(d, p, ['ps', '-q', 'web'])).stdout, webId);
  assert.match(r.stderr, /life_cycle-web-1 {2}Recreated/);

  // --force-recreate recreates everything; --scale adds and removes replicas.
  r = await compose(d, p, ['up', '-d', '--force-recreate', '--scale', 'web=3'], { GREETING: 'bonjour' });
  assert.equal(r.code, 0, r.stderr);
  assert.notEqual((await compose(d, p, ['ps', '-q', 'db'])).stdout, dbId);
  assert.deepEqual(await containerNames(d), [
    'life_cycle-db-1',
    'life_cycle-web-1',
    'life_cycle-web-2',
    'life_cycle-web-3',
  ]);
  r = await compose(d, p, ['up', '-d', '--scale', 'web=1'], { GREETING: 'bonjour' });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await containerNames(d), ['life_cycle-db-1', 'life_cycle-web-1']);

  // A service gone from the files is an orphan: warned about, removed with --remove-orphans.
  writeFileSync(path.join(p, 'only-db.yaml'), TWO_SERVICES.replace(/ {2}web:[\s\S]*?(?= {2}db:)/, ''));
  r = await compose(d, p, ['-f', 'only-db.yaml', 'up', '-d']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /Found orphan containers \(life_cycle-web-1\)/);
  r = await compose(d, p, ['-f', 'only-db.yaml', 'up', '-d', '--remove-orphans']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await containerNames(d), ['life_cycle-db-1']);
  r = await compose(d, p, ['up', '-d']);
  assert.equal(r.code, 0, r.stderr);

  r = await compose(d, p, ['ls']);
  assert.match(r.stdout, /^life_cycle +running\(2\) +.*compose\.yaml$/m);

  r = await compose(d, p, ['down']);
  assert.equal(r.code, 0, r.stderr);
  // web (the dependent) is stopped before db.
  assert.ok(
    r.stderr.indexOf('life_cycle-web-1  Stopping') < r.stderr.indexOf('life_cycle-db-1  Stopping'),
    r.stderr,
  );
  assert.deepEqual(await containerNames(d), []);
});

test("docker-compose 1.29 and berth compose recognise each other's containers", async () => {
  const p = dir({ 'docker-compose.yml': TWO_SERVICES }, 'mixed');
  // berth compose up, docker-compose sees and removes.
  let r = await compose(d, p, ['up', '-d']);
  assert.equal(r.code, 0, r.stderr);
  r = await dockerCompose(d, p, ['ps']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /mixed-db-1 .* Up/);
  assert.match(r.stdout, /mixed-web-1 .* Up/);
  r = await dockerCompose(d, p, ['down']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await containerNames(d), []);

  // docker-compose up (names with `_`), berth compose sees, reconciles and removes.
  r = await dockerCompose(d, p, ['up', '-d']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await containerNames(d), ['mixed_db_1', 'mixed_web_1']);
  r = await compose(d, p, ['ps', '--format', 'json']);
  assert.deepEqual(
    r.stdout
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { Service: string }).Service),
    ['db', 'web'],
  );
  r = await compose(d, p, ['logs', 'db']);
  assert.match(r.stdout, /mixed_db_1 +\| db ready/);
  r = await compose(d, p, ['down']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await containerNames(d), []);
});

test('bad projects fail before anything is created', async () => {
  const cases: [Record<string, string>, RegExp][] = [
    [
      { 'compose.yaml': 'services:\n  web: {image: busybox, ports: ["80:abc"]}\n' },
      /services\.web\.ports\[0\]: invalid port "80:abc"/,
    ],
    [
      { 'compose.yaml': 'services:\n  web: {image: busybox, depends_on: [nope]}\n' },
      /depends on undefined service "nope"/,
    ],
    [
      {
        'compose.yaml':
          'services:\n  a: {image: busybox, depends_on: [b]}\n  b: {image: busybox, depends_on: [a]}\n',
      },
      /dependency cycle detected: a -> b -> a/,
    ],
    [
      { 'compose.yaml': 'services:\n  web: {image: "busybox:${TAG:?TAG must be set}"}\n' },
      /required variable TAG is missing a value: TAG must be set/,
    ],
    [{ 'compose.yaml': 'services:\n  web: {command: [echo]}\n' }, /neither an image nor a build context/],
    [
      {
        'compose.yaml':
          'services:\n  a: {image: busybox, ports: ["18080:80"]}\n  b: {image: busybox, ports: ["18080:80"]}\n',
      },
      /host port 18080\/tcp is already published by service "a"/,
    ],
  ];
  for (const [files, re] of cases) {
    const p = dir({ ...files, '.keep': '' }, 'bad');
    const r = await compose(d, p, ['up', '-d']);
    assert.equal(r.code, 1, `${r.stdout}${r.stderr}`);
    assert.match(r.stderr, re);
    assert.deepEqual(await containerNames(d), []);
  }
  // A missing image (a failed pull) stops before any container exists too.
  const p = dir(
    {
      'compose.yaml':
        'services:\n  a: {image: busybox, network_mode: none}\n  b: {image: no-such-image:1, network_mode: none}\n',
    },
    'pullfail',
  );
  const r = await compose(d, p, ['up', '-d']);
  assert.notEqual(r.code, 0);
  assert.deepEqual(await containerNames(d), []);
});

test('run --rm, exec, stop/start/restart, rm, top, images, config', async () => {
  const p = dir(
    {
      'compose.yaml': `
services:
  app:
    image: busybox
    command: sleep 300
    init: true
    network_mode: none
    working_dir: /tmp
    environment: [FROM_FILE_OVERRIDDEN=compose]
    env_file: [app.env]
`,
      'app.env': 'FROM_FILE=yes\nFROM_FILE_OVERRIDDEN=file\n',
    },
    'ops',
  );
  let r = await compose(d, p, [
    'run',
    '--rm',
    'app',
    'sh',
    '-c',
    'echo $FROM_FILE $FROM_FILE_OVERRIDDEN $(pwd); exit 3',
  ]);
  assert.equal(r.code, 3, r.stderr);
  assert.equal(r.stdout, 'yes compose /tmp\n');
  assert.deepEqual(await containerNames(d), [], 'run --rm leaves nothing');

  r = await compose(d, p, ['up', '-d']);
  assert.equal(r.code, 0, r.stderr);
  r = await compose(d, p, ['exec', '-T', 'app', 'sh', '-c', 'echo in $(hostname) $FROM_FILE; exit 4']);
  assert.equal(r.code, 4);
  assert.match(r.stdout, /^in \S+ yes$/m);

  r = await compose(d, p, ['top']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^ops-app-1$/m);
  assert.match(r.stdout, /sleep 300/);

  r = await compose(d, p, ['images']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^ops-app-1 +busybox +latest +654fc8fd836e /m);

  r = await compose(d, p, ['stop']);
  assert.equal(r.code, 0, r.stderr);
  assert.match((await compose(d, p, ['ps', '-a', '--format', 'json'])).stdout, /"State":"exited"/);
  assert.equal((await compose(d, p, ['ps', '-q'])).stdout, '', 'ps without -a lists running containers only');
  r = await compose(d, p, ['start']);
  assert.equal(r.code, 0, r.stderr);
  assert.match((await compose(d, p, ['ps', '--format', 'json'])).stdout, /"State":"running"/);
  r = await compose(d, p, ['restart', '-t', '1']);
  assert.equal(r.code, 0, r.stderr);
  assert.match((await compose(d, p, ['ps', '--format', 'json'])).stdout, /"State":"running"/);

  r = await compose(d, p, ['rm', '-f']);
  assert.match(r.stderr, /No stopped containers/);
  r = await compose(d, p, ['rm', '-f', '-s']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await containerNames(d), []);

  r = await compose(d, p, ['config']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^name: ops$/m);
  assert.match(r.stdout, /FROM_FILE: "?yes"?/);
  r = await compose(d, p, ['config', '--services']);
  assert.equal(r.stdout, 'app\n');
  r = await compose(d, p, ['exec', 'nope', 'true']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no such service: nope/);
});

test('depends_on conditions: service_completed_successfully waits for exit 0, and a failure stops up', async () => {
  const p = dir(
    {
      'compose.yaml': `
services:
  migrate:
    image: busybox
    command: sh -c 'sleep 1; echo migrated > /dev/null; exit \${MIGRATE_EXIT:-0}'
    network_mode: none
  app:
    image: busybox
    command: sleep 300
    stop_signal: SIGKILL
    network_mode: none
    depends_on:
      migrate: {condition: service_completed_successfully}
`,
    },
    'conds',
  );
  let r = await compose(d, p, ['up', '-d']);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.stderr.indexOf('conds-migrate-1  Exited') < r.stderr.indexOf('conds-app-1  Started'), r.stderr);
  r = await compose(d, p, ['down']);
  assert.equal(r.code, 0, r.stderr);
  r = await compose(d, p, ['up', '-d'], { MIGRATE_EXIT: '2' });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /service "migrate" didn't complete successfully: exit 2/);
  assert.ok(!(await containerNames(d)).includes('conds-app-1'), 'app was not created');
  await compose(d, p, ['down']);

  // service_healthy waits for the dependency's health check; --wait for every service.
  const h = dir(
    {
      'compose.yaml': `
services:
  db:
    image: busybox
    command: sh -c 'sleep 1; touch /tmp/ready; exec sleep 300'
    stop_signal: SIGKILL
    network_mode: none
    healthcheck: {test: "test -f /tmp/ready", interval: 300ms, retries: 20}
  app:
    image: busybox
    command: sleep 300
    stop_signal: SIGKILL
    network_mode: none
    depends_on:
      db: {condition: service_healthy}
`,
    },
    'health',
  );
  r = await compose(d, h, ['up', '-d', '--wait']);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.stderr.indexOf('health-db-1  Healthy') < r.stderr.indexOf('health-app-1  Started'), r.stderr);
  const state = await berth(d, ['inspect', '--format', '{{.State.Health.Status}}', 'health-db-1']);
  assert.equal(state.stdout.trim(), 'healthy');
  assert.equal((await compose(d, h, ['down'])).code, 0);
});

test("attached up prefixes each service's output and Ctrl-C stops the project", async () => {
  const p = dir(
    {
      'compose.yaml': `
services:
  one:
    image: busybox
    command: sh -c 'echo one started; sleep 300'
    stop_signal: SIGKILL
    network_mode: none
  two:
    image: busybox
    command: sh -c 'echo two started; sleep 300'
    stop_signal: SIGKILL
    network_mode: none
`,
    },
    'attached',
  );
  writeFileSync(path.join(p, '.env'), '');
  const child = spawn(process.execPath, [BERTH, '-H', d.host, 'compose', '--ansi', 'always', 'up'], {
    cwd: p,
    env: { ...process.env, BERTH_HOST: '', DOCKER_HOST: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  for (let i = 0; i < 300 && !(out.includes('one started') && out.includes('two started')); i++)
    await new Promise((res) => setTimeout(res, 100));
  // Coloured prefixes, one colour per service.
  const ESC = '\x1b';
  assert.match(out, new RegExp(`${ESC}\\[\\d+mattached-one-1 +\\| ${ESC}\\[0mone started`));
  assert.match(out, new RegExp(`${ESC}\\[\\d+mattached-two-1 +\\| ${ESC}\\[0mtwo started`));
  const colour = (svc: string) => new RegExp(`\\x1b\\[(\\d+)mattached-${svc}-1`).exec(out)?.[1];
  assert.notEqual(colour('one'), colour('two'));
  child.kill('SIGINT');
  const code = await exited;
  clearTimeout(timer);
  assert.equal(code, 130, err);
  assert.match(err, /Gracefully stopping/);
  const r = await compose(d, p, ['ps', '-a', '--format', 'json']);
  const states = r.stdout
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as { State: string }).State);
  assert.deepEqual(states, ['exited', 'exited']);
  assert.equal((await compose(d, p, ['down'])).code, 0);
});

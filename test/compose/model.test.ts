/**
 * The compose model without a daemon: interpolation, .env files, merging, extends, profiles,
 * validation errors with their paths, and the Engine API body a service becomes.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { parseEnvFile } from '../../src/compose/envfile.js';
import { ComposeError } from '../../src/compose/errors.js';
import { interpolateString } from '../../src/compose/interpolate.js';
import { dependencyOrder, loadProject, normalizeProjectName } from '../../src/compose/load.js';
import { parsePortShort } from '../../src/compose/normalize.js';
import { renderConfig } from '../../src/compose/render.js';
import { configHash, createBody } from '../../src/compose/spec.js';

const root = mkdtempSync(path.join(os.tmpdir(), 'berth-compose-model-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;

/** A project directory with the given files; returns its path. */
function project(files: Record<string, string>): string {
  const dir = path.join(root, `p${++n}`);
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), text);
  }
  return dir;
}

const quiet = () => undefined;

function load(dir: string, opts: Parameters<typeof loadProject>[0] = {}) {
  return loadProject({ cwd: dir, env: {}, warn: quiet, ...opts });
}

function loadError(dir: string, opts: Parameters<typeof loadProject>[0] = {}): string {
  try {
    load(dir, opts);
  } catch (err) {
    assert.ok(err instanceof ComposeError, `expected a ComposeError, got ${String(err)}`);
    return err.message;
  }
  assert.fail('the project loaded, but should not have');
}

test('interpolation: ${VAR}, defaults, alternatives, required, $$ and nesting', () => {
  const env = { SET: 'x', EMPTY: '' };
  const i = (s: string) => interpolateString(s, env, 'f');
  assert.equal(i('a-$SET-${SET}'), 'a-x-x');
  assert.equal(i('${UNSET:-d}|${EMPTY:-d}|${SET:-d}'), 'd|d|x');
  assert.equal(i('${UNSET-d}|${EMPTY-d}'), 'd|');
  assert.equal(i('${SET:+alt}|${EMPTY:+alt}|${EMPTY+alt}|${UNSET+alt}'), 'alt||alt|');
  assert.equal(i('$$HOME and $${SET} and $'), '$HOME and ${SET} and $');
  assert.equal(i('${UNSET:-${SET}-y}'), 'x-y');
  assert.equal(i('${UNSET}'), '');
  assert.throws(() => i('${UNSET:?need it}'), /f: required variable UNSET is missing a value: need it/);
  assert.throws(() => i('${EMPTY:?}'), /required variable EMPTY/);
  assert.equal(i('${EMPTY?fine}'), '');
  assert.throws(() => i('${UNSET?must}'), /UNSET is missing a value: must/);
  assert.throws(() => i('${SET'), /invalid interpolation format/);
  assert.throws(() => i('${1x}'), /invalid interpolation format/);
});

test('.env files: comments, quotes, export, escapes, bare names', () => {
  const vars = parseEnvFile(
    [
      '# comment',
      'A=1',
      'export B = two ',
      "C='single $x # kept'",
      'D="line\\nnext"',
      'E=value # comment',
      'F',
      'G=',
      'H="multi',
      'line"',
    ].join('\n'),
    '.env',
    (k) => (k === 'F' ? 'from-shell' : undefined),
  );
  assert.deepEqual(vars, {
    A: '1',
    B: 'two',
    C: 'single $x # kept',
    D: 'line\nnext',
    E: 'value',
    F: 'from-shell',
    G: '',
    H: 'multi\nline',
  });
  assert.throws(() => parseEnvFile('1BAD=x', '.env'), /\.env:1: invalid variable name/);
});

test('project names: -p, COMPOSE_PROJECT_NAME, top-level name, directory; normalized', () => {
  assert.equal(normalizeProjectName('My App.v2'), 'myappv2');
  assert.equal(normalizeProjectName('_-x'), 'x');
  const dir = project({ 'compose.yaml': 'services: {a: {image: busybox}}\n' });
  assert.equal(load(dir).name, `p${n}`);
  assert.equal(load(dir, { env: { COMPOSE_PROJECT_NAME: 'fromenv' } }).name, 'fromenv');
  assert.equal(load(dir, { projectName: 'flag' }).name, 'flag');
  assert.match(loadError(dir, { projectName: 'Bad Name' }), /invalid project name/);
  const named = project({ 'compose.yaml': 'name: Named_Proj\nservices: {a: {image: busybox}}\n' });
  assert.equal(load(named).name, 'named_proj');
});

test('.env and --env-file feed interpolation; the shell wins over them', () => {
  const dir = project({
    'compose.yaml':
      'services:\n  a:\n    image: busybox:${TAG}\n    environment: ["MODE=${MODE:-dev}", PASSED]\n',
    '.env': 'TAG=1.38\nMODE=prod\nPASSED=from-dotenv\n',
    'other.env': 'TAG=other\n',
  });
  const p = load(dir);
  assert.equal(p.services.a.image, 'busybox:1.38');
  assert.deepEqual(p.services.a.environment, { MODE: 'prod', PASSED: 'from-dotenv' });
  assert.equal(load(dir, { env: { TAG: 'shell' } }).services.a.image, 'busybox:shell');
  assert.equal(load(dir, { envFiles: [path.join(dir, 'other.env')] }).services.a.image, 'busybox:other');
  assert.match(
    loadError(dir, { envFiles: [path.join(dir, 'missing.env')] }),
    /env file .*missing\.env not found/,
  );
});

test('a missing required variable is an error naming the path and the message', () => {
  const dir = project({ 'compose.yaml': 'services:\n  a:\n    image: "${IMG:?set IMG to the image}"\n' });
  assert.match(
    loadError(dir),
    /services\.a\.image: required variable IMG is missing a value: set IMG to the image/,
  );
});

test('several files merge by the specification rules', () => {
  const dir = project({
    'compose.yaml': [
      'services:',
      '  web:',
      '    image: busybox',
      '    command: [sh, -c, "echo base"]',
      '    environment: {A: "1", B: "1"}',
      '    labels: [x=1]',
      '    ports: ["8080:80", "9090:90"]',
      '    volumes: ["data:/data", "/host:/a"]',
      '    expose: ["1000"]',
      '    healthcheck: {test: [CMD, "true"], interval: 5s}',
      'volumes: {data: {}}',
    ].join('\n'),
    'compose.override.yaml': [
      'services:',
      '  web:',
      '    command: echo override',
      '    environment: [B=2, C=3]',
      '    labels: {y: "2"}',
      '    ports: ["8080:80", "7070:70"]',
      '    volumes: ["/other:/a:ro"]',
      '    expose: ["1000", "2000"]',
      '    healthcheck: {test: "exit 0"}',
    ].join('\n'),
  });
  const p = load(dir);
  assert.deepEqual(p.configFiles, [path.join(dir, 'compose.yaml'), path.join(dir, 'compose.override.yaml')]);
  const web = p.services.web;
  assert.deepEqual(web.command, ['echo', 'override']);
  assert.deepEqual(web.environment, { A: '1', B: '2', C: '3' });
  assert.deepEqual(web.labels, { x: '1', y: '2' });
  assert.deepEqual(
    web.ports!.map((x) => `${x.published}:${x.target}`),
    ['9090:90', '8080:80', '7070:70'],
  );
  assert.deepEqual(
    web.volumes!.map((v) => `${v.source}:${v.target}:${v.read_only ? 'ro' : 'rw'}`),
    ['data:/data:rw', '/other:/a:ro'],
  );
  assert.deepEqual(web.expose, ['1000', '2000']);
  assert.deepEqual(web.healthcheck, { test: ['CMD-SHELL', 'exit 0'], interval: '5s' });
  // -f picks files explicitly, in order; later wins.
  const only = load(dir, { files: ['compose.yaml'] });
  assert.deepEqual(only.services.web.command, ['sh', '-c', 'echo base']);
});

test('extends: same file and another file (its relative paths stay relative to it)', () => {
  const dir = project({
    'compose.yaml': [
      'services:',
      '  base: {image: busybox, environment: {A: "1"}, restart: always}',
      '  child:',
      '    extends: base',
      '    environment: {B: "2"}',
      '  remote:',
      '    extends: {file: lib/common.yaml, service: tmpl}',
      '    command: echo remote',
    ].join('\n'),
    'lib/common.yaml':
      'services:\n  tmpl:\n    build: ./ctx\n    volumes: ["./conf:/conf"]\n    extends: root\n  root: {user: "1000"}\n',
  });
  const p = load(dir);
  assert.deepEqual(p.services.child.environment, { A: '1', B: '2' });
  assert.equal(p.services.child.restart, 'always');
  assert.equal(p.services.child.extends, undefined);
  assert.equal(p.services.remote.build!.context, path.join(dir, 'lib/ctx'));
  assert.equal(p.services.remote.volumes![0].source, path.join(dir, 'lib/conf'));
  assert.equal(p.services.remote.user, '1000');
  assert.deepEqual(p.services.remote.command, ['echo', 'remote']);
  const loop = project({
    'compose.yaml': 'services:\n  a: {image: x, extends: b}\n  b: {image: x, extends: a}\n',
  });
  assert.match(loadError(loop), /circular reference/);
  const missing = project({ 'compose.yaml': 'services:\n  a: {image: x, extends: nope}\n' });
  assert.match(loadError(missing), /service "nope" not found/);
});

test('profiles: inactive services are left out unless enabled or named', () => {
  const dir = project({
    'compose.yaml': [
      'services:',
      '  app: {image: busybox}',
      '  debug: {image: busybox, profiles: [dev], depends_on: [helper]}',
      '  helper: {image: busybox, profiles: [tools]}',
    ].join('\n'),
  });
  assert.deepEqual(Object.keys(load(dir).services), ['app']);
  assert.deepEqual(Object.keys(load(dir).disabled).sort(), ['debug', 'helper']);
  assert.match(
    loadError(dir, { profiles: ['dev'] }),
    /depends on service "helper", which is disabled by its profiles/,
  );
  assert.deepEqual(Object.keys(load(dir, { profiles: ['dev', 'tools'] }).services).sort(), [
    'app',
    'debug',
    'helper',
  ]);
  assert.deepEqual(Object.keys(load(dir, { env: { COMPOSE_PROFILES: 'tools' } }).services).sort(), [
    'app',
    'helper',
  ]);
  // Naming a service on the command line enables it and what it depends on.
  assert.deepEqual(Object.keys(load(dir, { targets: ['debug'] }).services).sort(), [
    'app',
    'debug',
    'helper',
  ]);
});

test('schema errors are reported with their path', () => {
  const cases: [string, RegExp][] = [
    ['services:\n  web: {image: x, ports: ["80:abc"]}\n', /services\.web\.ports\[0\]: invalid port "80:abc"/],
    ['services:\n  web: {image: x, ports: ["1:2:3:4"]}\n', /services\.web\.ports\[0\]: invalid port/],
    [
      'services:\n  web: {image: x, ports: [{published: 80}]}\n',
      /services\.web\.ports\[0\]: target is required/,
    ],
    [
      'services:\n  web: {image: x, colour: red}\n',
      /services\.web: additional property "colour" is not allowed/,
    ],
    ['servics: {}\n', /\(root\): additional property "servics" is not allowed/],
    ['services:\n  web: {image: [x]}\n', /services\.web\.image: must be a string, got array/],
    [
      'services:\n  web: {image: x, restart: sometimes}\n',
      /services\.web\.restart: invalid restart policy "sometimes"/,
    ],
    [
      'services:\n  web: {image: x, volumes: ["data"]}\n',
      /services\.web\.volumes\[0\]: invalid volume "data": the target must be absolute/,
    ],
    [
      'services:\n  web: {image: x, healthcheck: {interval: soon}}\n',
      /services\.web\.healthcheck\.interval: invalid duration "soon"/,
    ],
    [
      'services:\n  web: {image: x, deploy: {resources: {limits: {memory: lots}}}}\n',
      /services\.web\.deploy\.resources\.limits\.memory: invalid size "lots"/,
    ],
    [
      'services:\n  web: {image: x, depends_on: {db: {condition: service_ready}}}\n  db: {image: x}\n',
      /services\.web\.depends_on\.db\.condition: must be one of/,
    ],
    [
      'services:\n  web: {image: x, ulimits: {nofile: {soft: 10, hard: 5}}}\n',
      /services\.web\.ulimits\.nofile: soft limit is greater than hard limit/,
    ],
    ['services: [web]\n', /services: must be a mapping, got array/],
    ['services:\n  web: {image: x\n', /yaml:/],
  ];
  for (const [text, re] of cases) assert.match(loadError(project({ 'compose.yaml': text })), re, text);
});

test('project errors: unknown dependencies, cycles, no image, port clashes, undefined resources', () => {
  const cases: [string, RegExp][] = [
    ['services:\n  web: {image: x, depends_on: [db]}\n', /service "web" depends on undefined service "db"/],
    [
      'services:\n  a: {image: x, depends_on: [b]}\n  b: {image: x, depends_on: [c]}\n  c: {image: x, depends_on: [a]}\n',
      /dependency cycle detected: a -> b -> c -> a/,
    ],
    ['services:\n  a: {image: x, depends_on: [a]}\n', /depends on itself/],
    [
      'services:\n  web: {command: echo}\n',
      /service "web" has neither an image nor a build context specified/,
    ],
    [
      'services:\n  a: {image: x, ports: ["8080:80"]}\n  b: {image: x, ports: ["127.0.0.1:8080:81"]}\n',
      /services\.b\.ports: host port 8080\/tcp is already published by service "a"/,
    ],
    [
      'services:\n  a: {image: x, ports: ["8080:80"], deploy: {replicas: 2}}\n',
      /2 replicas cannot all publish host port 8080/,
    ],
    ['services:\n  a: {image: x, volumes: ["data:/d"]}\n', /refers to undefined volume "data"/],
    ['services:\n  a: {image: x, networks: [back]}\n', /refers to undefined network "back"/],
    ['services:\n  a: {image: x, network_mode: "service:b"}\n', /service "b" is not defined/],
  ];
  for (const [text, re] of cases) assert.match(loadError(project({ 'compose.yaml': text })), re, text);
  // Different protocols or different specific addresses do not clash.
  const ok = project({
    'compose.yaml':
      'services:\n  a: {image: x, ports: ["8080:80", "127.0.0.1:9000:1"]}\n  b: {image: x, ports: ["8080:80/udp", "127.0.0.2:9000:1"]}\n',
  });
  assert.equal(Object.keys(load(ok).services).length, 2);
});

test('port short syntax: ranges, addresses, protocols', () => {
  assert.deepEqual(parsePortShort('80', 'p'), [{ target: 80, protocol: 'tcp', mode: 'ingress' }]);
  assert.deepEqual(parsePortShort('127.0.0.1:8080:80/udp', 'p'), [
    { target: 80, protocol: 'udp', mode: 'ingress', published: '8080', host_ip: '127.0.0.1' },
  ]);
  assert.deepEqual(
    parsePortShort('9090-9091:8080-8081', 'p').map((x) => `${x.published}:${x.target}`),
    ['9090:8080', '9091:8081'],
  );
  assert.equal(parsePortShort('[::1]:53:53', 'p')[0].host_ip, '::1');
  assert.equal(parsePortShort('127.0.0.1::80', 'p')[0].published, undefined);
  assert.throws(() => parsePortShort('9090-9092:8080-8081', 'p'), /invalid port/);
  assert.throws(() => parsePortShort('80/xyz', 'p'), /invalid port/);
  assert.throws(() => parsePortShort('70000', 'p'), /invalid port/);
});

test('dependency order puts dependencies first; --no-deps keeps only what was asked', () => {
  const dir = project({
    'compose.yaml':
      'services:\n  web: {image: x, depends_on: [api]}\n  api: {image: x, depends_on: {db: {condition: service_healthy}}}\n  db: {image: x}\n  other: {image: x}\n',
  });
  const p = load(dir);
  assert.deepEqual(dependencyOrder(p), ['db', 'api', 'other', 'web']);
  assert.deepEqual(dependencyOrder(p, ['web']), ['db', 'api', 'web']);
  assert.deepEqual(dependencyOrder(p, ['web'], true), ['web']);
});

test('a service becomes an Engine API create body with compose labels', () => {
  const dir = project({
    'compose.yaml': [
      'name: demo',
      'services:',
      '  web:',
      '    image: busybox',
      '    entrypoint: ["/bin/sh", "-c"]',
      '    command: ["echo hi"]',
      '    environment: {A: "1", UNSET: null}',
      '    ports: ["127.0.0.1:8080:80", "90"]',
      '    expose: ["7000-7001/udp"]',
      '    volumes: ["data:/data", "./conf:/conf:ro", {type: tmpfs, target: /t, tmpfs: {size: 1m}}, "/anon"]',
      '    tmpfs: ["/run:size=64k"]',
      '    networks: {front: {aliases: [www]}, back: {priority: 10}}',
      '    deploy: {resources: {limits: {cpus: "1.5", memory: 128M, pids: 50}, reservations: {memory: 32m}}}',
      '    restart: on-failure:3',
      '    healthcheck: {test: ["CMD", "true"], interval: 1m30s, retries: 3}',
      '    ulimits: {nofile: {soft: 1024, hard: 2048}, nproc: 512}',
      '    extra_hosts: ["db.local:10.0.0.5", "other=10.0.0.6"]',
      '    labels: {team: core}',
      '    hostname: web-host',
      '    user: "1000:1000"',
      '    working_dir: /srv',
      '    stop_signal: SIGINT',
      '    stop_grace_period: 1m',
      '    init: true',
      'networks: {front: {}, back: {}}',
      'volumes: {data: {}}',
    ].join('\n'),
  });
  const p = load(dir);
  const s = p.services.web;
  // As sent on the wire (undefined fields dropped).
  const body = JSON.parse(
    JSON.stringify(createBody(p, 'web', s, { number: 2, hash: configHash(s) })),
  ) as Record<string, never>;
  const h = body.HostConfig as Record<string, unknown>;
  const labels = body.Labels as Record<string, string>;
  assert.equal(body.Image, 'busybox');
  assert.deepEqual(body.Entrypoint, ['/bin/sh', '-c']);
  assert.deepEqual(body.Cmd, ['echo hi']);
  assert.deepEqual(body.Env, ['A=1']);
  assert.equal(labels['com.docker.compose.project'], 'demo');
  assert.equal(labels['com.docker.compose.service'], 'web');
  assert.equal(labels['com.docker.compose.container-number'], '2');
  assert.equal(labels['com.docker.compose.oneoff'], 'False');
  assert.equal(labels['com.docker.compose.config-hash'], configHash(s));
  assert.equal(labels['com.docker.compose.project.working_dir'], dir);
  assert.equal(labels.team, 'core');
  assert.deepEqual(Object.keys(body.ExposedPorts).sort(), ['7000/udp', '7001/udp', '80/tcp', '90/tcp']);
  assert.deepEqual(h.PortBindings, {
    '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '8080' }],
    '90/tcp': [{ HostIp: '', HostPort: '' }],
  });
  assert.deepEqual(h.Binds, ['demo_data:/data:rw', `${path.join(dir, 'conf')}:/conf:ro`]);
  assert.deepEqual(body.Volumes, { '/anon': {} });
  assert.deepEqual(h.Tmpfs, { '/t': 'size=1048576', '/run': 'size=64k' });
  // The highest-priority network is joined at create; the others are connected before start.
  assert.equal(h.NetworkMode, 'demo_back');
  assert.deepEqual(body.NetworkingConfig, { EndpointsConfig: { demo_back: { Aliases: ['web'] } } });
  assert.equal(h.NanoCpus, 1.5e9);
  assert.equal(h.Memory, 128 * 1024 * 1024);
  assert.equal(h.MemoryReservation, 32 * 1024 * 1024);
  assert.equal(h.PidsLimit, 50);
  assert.deepEqual(h.RestartPolicy, { Name: 'on-failure', MaximumRetryCount: 3 });
  assert.deepEqual(body.Healthcheck, { Test: ['CMD', 'true'], Interval: 90e9, Retries: 3 });
  assert.deepEqual(h.Ulimits, [
    { Name: 'nofile', Soft: 1024, Hard: 2048 },
    { Name: 'nproc', Soft: 512, Hard: 512 },
  ]);
  assert.deepEqual(h.ExtraHosts, ['db.local:10.0.0.5', 'other:10.0.0.6']);
  assert.equal(body.Hostname, 'web-host');
  assert.equal(body.User, '1000:1000');
  assert.equal(body.WorkingDir, '/srv');
  assert.equal(body.StopSignal, 'SIGINT');
  assert.equal(body.StopTimeout, 60);
  assert.equal(h.Init, true);
});

test('the config hash changes with the configuration, not with replicas or key order', () => {
  const a = project({ 'compose.yaml': 'services:\n  w: {image: x, environment: {A: "1", B: "2"}}\n' });
  const b = project({
    'compose.yaml': 'services:\n  w: {environment: {B: "2", A: "1"}, image: x, scale: 3}\n',
  });
  const c = project({ 'compose.yaml': 'services:\n  w: {image: x, environment: {A: "1", B: "3"}}\n' });
  const h = (d: string) => configHash(load(d).services.w);
  assert.equal(h(a), h(b));
  assert.notEqual(h(a), h(c));
});

test('config renders the resolved model as YAML that loads back to the same model', () => {
  const dir = project({
    'compose.yaml':
      'services:\n  web:\n    image: busybox\n    ports: ["8080:80"]\n    environment: ["A=$${X}"]\n    depends_on: [db]\n  db: {image: busybox, volumes: ["data:/d"]}\nvolumes: {data: {}}\n',
  });
  const p = load(dir);
  const yaml = renderConfig(p, 'yaml');
  assert.match(yaml, /^name: p\d+$/m);
  assert.match(yaml, /published: "8080"/);
  // Literal dollars are written back escaped, so the output loads to the same model.
  assert.match(yaml, /A: \$\$\{X\}/);
  const again = project({ 'compose.yaml': yaml });
  const q = load(again, { projectName: p.name });
  assert.deepEqual(q.services.web.ports, p.services.web.ports);
  assert.deepEqual(q.services.web.environment, { A: '${X}' });
  assert.deepEqual(q.services.db.volumes, p.services.db.volumes);
  assert.equal(q.volumes.data.name, p.volumes.data.name);
});

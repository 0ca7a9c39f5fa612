import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { berth, DOCKER_CLI, FIXTURES, request, run, startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { cleanupContexts, containerCount, imageConfig, makeContext } from './helpers.js';

const BB = 'busybox:1.38.0-musl';
let d: TestDaemon;

before(async () => {
  d = await startDaemon();
  const r = await berth(d, ['load', '-i', path.join(FIXTURES, 'busybox-1.38.0-musl-docker-archive.tar')]);
  assert.equal(r.code, 0, r.stderr);
});
after(async () => {
  await d.stop();
  cleanupContexts();
});

/** The real docker CLI with the classic builder. */
function dockerBuild(args: string[], input?: string | Buffer) {
  return run(DOCKER_CLI, ['-H', d.host, 'build', ...args], {
    input,
    env: {
      DOCKER_BUILDKIT: '0',
      DOCKER_CONFIG: path.join(d.dir, 'docker-config'),
      DOCKER_CLI_HINTS: 'false',
    },
  });
}

async function tree(image: string): Promise<string> {
  const r = await berth(d, [
    'run',
    '--rm',
    '--user',
    '0',
    '--entrypoint',
    'sh',
    image,
    '-c',
    'cd / && find app srv | sort | while read -r f; do stat -c "%n %F %s %a %u:%g" "$f"; done; ' +
      'find app srv -type f | sort | xargs md5sum',
  ]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

const DOCKERFILE = `FROM ${BB} AS base
ARG VERSION=1.0
ENV APP_HOME=/app VERSION=$VERSION
WORKDIR $APP_HOME
COPY --chmod=0755 run.sh ./bin/
COPY conf/ /srv/conf/
COPY data*.txt /srv/data/
RUN echo "built $VERSION" > build.txt && adduser -D -u 1234 app && chown app /app/build.txt
USER app
EXPOSE 8080/tcp 9090/udp
LABEL org.example.name="demo app" org.example.version=$VERSION
CMD ["/app/bin/run.sh"]
`;

test('DOCKER_BUILDKIT=0 docker build and berth build give the same config and file tree; docker sees cache hits', async () => {
  const ctx = makeContext({
    'run.sh': '#!/bin/sh\ncat /app/build.txt\n',
    'conf/a.conf': 'a=1\n',
    'conf/nested/b.conf': 'b=2\n',
    'data1.txt': 'one\n',
    'data2.txt': 'two\n',
    'secret.key': 'do not send\n',
    '.dockerignore': '*.key\n',
    Dockerfile: DOCKERFILE,
  });
  const b = await berth(d, ['build', '-t', 'via-berth', '--build-arg', 'VERSION=2.5', ctx]);
  assert.equal(b.code, 0, b.stdout + b.stderr);
  const k = await dockerBuild(['--no-cache', '-t', 'via-docker', '--build-arg', 'VERSION=2.5', ctx]);
  assert.equal(k.code, 0, k.stdout + k.stderr);
  assert.match(k.stdout, /Step 1\/12 : FROM busybox:1.38.0-musl AS base\n/);
  assert.match(k.stdout, /Successfully tagged via-docker:latest\n/);

  const cb = await imageConfig(d, 'via-berth');
  const cd = await imageConfig(d, 'via-docker');
  for (const key of ['Cmd', 'Entrypoint', 'Env', 'WorkingDir', 'User', 'ExposedPorts', 'Labels'])
    assert.deepEqual(cd[key], cb[key], key);
  assert.deepEqual(cb.Labels, { 'org.example.name': 'demo app', 'org.example.version': '2.5' });
  assert.equal(cb.User, 'app');
  const tb = await tree('via-berth');
  assert.equal(await tree('via-docker'), tb);
  assert.match(tb, /^app\/bin\/run\.sh regular file 29 755 0:0$/m);
  assert.match(tb, /^app\/build\.txt regular file 10 644 1234:0$/m);
  assert.doesNotMatch(tb, /secret/);
  assert.equal((await berth(d, ['run', '--rm', 'via-docker'])).stdout, 'built 2.5\n');

  // A rebuild through the docker CLI is served from the cache, step by step.
  const again = await dockerBuild(['-t', 'via-docker', '--build-arg', 'VERSION=2.5', ctx]);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(again.stdout.match(/ ---> Using cache\n/g)?.length, 11, again.stdout);
  assert.doesNotMatch(again.stdout, /Running in/);
  // A changed source invalidates its step and those after it.
  const changed = await dockerBuild(['-t', 'via-docker', '--build-arg', 'VERSION=2.6', ctx]);
  assert.equal(changed.stdout.match(/ ---> Using cache\n/g)?.length, 1, changed.stdout);
});

test('docker CLI: -q, -f -, a Dockerfile on stdin, --target, --label, and the error paths', async () => {
  const ctx = makeContext({
    'f.txt': 'f\n',
    Dockerfile: `FROM ${BB} AS one\nRUN echo one > /one\nFROM one AS two\nRUN echo two > /two\n`,
  });
  const q = await dockerBuild(['-q', '--target', 'one', '--label', 'k=v', ctx]);
  assert.equal(q.code, 0, q.stderr);
  assert.match(q.stdout, /^sha256:[0-9a-f]{64}\n$/);
  const id = q.stdout.trim();
  const img = JSON.parse((await request(d, 'GET', `/images/${id}/json`)).body.toString()) as {
    Config: { Labels: Record<string, string> };
  };
  assert.deepEqual(img.Config.Labels, { k: 'v' });

  const stdinDf = await dockerBuild(['-t', 'df-stdin', '-f', '-', ctx], `FROM ${BB}\nCOPY f.txt /from-ctx\n`);
  assert.equal(stdinDf.code, 0, stdinDf.stderr);
  const only = await dockerBuild(['-t', 'df-only', '-'], `FROM ${BB}\nENV ONLY=yes\n`);
  assert.equal(only.code, 0, only.stderr);
  assert.equal(((await imageConfig(d, 'df-only')).Env as string[]).at(-1), 'ONLY=yes');

  const bogus = await dockerBuild(['-'], `FROM ${BB}\nBOGUS foo\n`);
  assert.equal(bogus.code, 1);
  assert.match(bogus.stderr, /Error response from daemon: dockerfile parse error line 2: unknown instruction: BOGUS/);

  const before = await containerCount(d);
  const failing = await dockerBuild(['-t', 'never', '-'], `FROM ${BB}\nRUN echo failing; exit 7\n`);
  assert.equal(failing.code, 7);
  assert.match(failing.stdout, /failing\n/);
  assert.match(failing.stderr, /The command '\/bin\/sh -c echo failing; exit 7' returned a non-zero code: 7/);
  assert.equal((await request(d, 'GET', '/images/never/json')).status, 404);
  assert.equal(await containerCount(d), before);

  const missing = await dockerBuild([ctx, '-f', `${ctx}/Dockerfile`, '--target', 'nope']);
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /failed to reach build target nope in Dockerfile/);
});

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import tar from 'tar-stream';
import { berth, FIXTURES, request, startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { cleanupContexts, containerCount, containerEvents, imageConfig, makeContext } from './helpers.js';

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

function tarOf(dir: string, out: string, gzip = false): void {
  const r = spawnSync('tar', [gzip ? '-czf' : '-cf', out, '-C', dir, '.']);
  assert.equal(r.status, 0, r.stderr.toString());
}

async function sh(image: string, script: string): Promise<string> {
  const r = await berth(d, ['run', '--rm', '--entrypoint', 'sh', image, '-c', script]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

const EVERY = `# syntax=docker/dockerfile:1
FROM ${BB}
ARG GREETING=hello
ENV APP=/app NAME="my app" \\
    HOME_DIR=\${APP:-none}/home
LABEL org.test.a=1 "org.test.b"="two words"
WORKDIR $APP
COPY files/ ./files/
COPY *.txt ./txt/
COPY --chown=1000:1001 --chmod=0640 one.txt /owned/one
ADD archive.tar /unpacked/
ADD archive.tar.gz /unpacked-gz/
COPY link-in-context /copied-link
RUN echo "$GREETING from $NAME" > greeting && id -u > uid-at-build
RUN <<EOF
echo heredoc > /app/heredoc.txt
EOF
COPY <<EOT /app/inline.txt
inline $APP
EOT
USER 1000:1001
EXPOSE 8080 53/udp
VOLUME /data
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s --retries=2 CMD ["true"]
SHELL ["/bin/sh", "-ec"]
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat greeting"]
ONBUILD RUN echo triggered > /tmp/onbuild.txt
MAINTAINER someone
`;

test('every instruction: config, COPY/ADD semantics, RUN with args and heredocs, history; a cached rebuild runs no container', async () => {
  const ctx = makeContext({
    'files/f1': 'f1\n',
    'files/sub/f2': 'f2\n',
    'one.txt': 'one\n',
    'two.txt': 'two\n',
    'link-in-context': '->one.txt',
    'arch/a.txt': 'from tar\n',
    'arch/d/b.txt': 'b\n',
    Dockerfile: EVERY,
  });
  tarOf(path.join(ctx, 'arch'), path.join(ctx, 'archive.tar'));
  tarOf(path.join(ctx, 'arch'), path.join(ctx, 'archive.tar.gz'), true);
  const r = await berth(d, ['build', '-t', 'every:1', '-t', 'every:2', ctx]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /^Step 1\/24 : FROM busybox:1.38.0-musl\n/);
  assert.match(
    r.stdout,
    /Step 12\/24 : RUN echo "\$GREETING from \$NAME" > greeting && id -u > uid-at-build\n ---> Running in [0-9a-f]{12}\n/,
  );
  assert.match(r.stdout, /Removing intermediate container [0-9a-f]{12}\n/);
  assert.match(
    r.stdout,
    /Successfully built [0-9a-f]{12}\nSuccessfully tagged every:1\nSuccessfully tagged every:2\n$/,
  );

  const cfg = await imageConfig(d, 'every:1');
  assert.deepEqual(cfg.Env, [
    'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    'APP=/app',
    'NAME=my app',
    // Docker's rule: one ENV line sees the environment from before it.
    'HOME_DIR=none/home',
  ]);
  assert.deepEqual(cfg.Labels, { 'org.test.a': '1', 'org.test.b': 'two words' });
  assert.equal(cfg.WorkingDir, '/app');
  assert.equal(cfg.User, '1000:1001');
  assert.deepEqual(cfg.ExposedPorts, { '8080/tcp': {}, '53/udp': {} });
  assert.deepEqual(cfg.Volumes, { '/data': {} });
  assert.equal(cfg.StopSignal, 'SIGINT');
  assert.deepEqual(cfg.Healthcheck, { Test: ['CMD', 'true'], Interval: 5e9, Retries: 2 });
  assert.deepEqual(cfg.Shell, ['/bin/sh', '-ec']);
  assert.deepEqual(cfg.Entrypoint, ['/bin/sh', '-c']);
  assert.deepEqual(cfg.Cmd, ['cat greeting']);
  assert.deepEqual(cfg.OnBuild, ['RUN echo triggered > /tmp/onbuild.txt']);

  const run = await berth(d, ['run', '--rm', 'every:1']);
  assert.equal(run.stdout, 'hello from my app\n');
  const files = await sh(
    'every:1',
    'cd /app; cat files/f1 files/sub/f2 txt/one.txt txt/two.txt uid-at-build heredoc.txt inline.txt; ' +
      'stat -c "%u:%g %a" /owned/one; cat /unpacked/a.txt /unpacked/d/b.txt /unpacked-gz/a.txt; ' +
      'cat /copied-link; test -L /copied-link || echo not-a-link; ls /app/files',
  );
  assert.equal(
    files,
    'f1\nf2\none\ntwo\n0\nheredoc\ninline /app\n1000:1001 640\nfrom tar\nb\nfrom tar\none\nnot-a-link\nf1\nsub\n',
  );

  const hist = await request(d, 'GET', '/images/every:1/history');
  const createdBy = (JSON.parse(hist.body.toString()) as { CreatedBy: string }[]).map((h) => h.CreatedBy);
  assert.ok(
    createdBy.includes(
      '|1 GREETING=hello /bin/sh -c echo "$GREETING from $NAME" > greeting && id -u > uid-at-build',
    ),
    createdBy.join('\n'),
  );
  assert.ok(
    createdBy.some((c) => /^\/bin\/sh -c #\(nop\) COPY dir:[0-9a-f]{64} in \/app\/files\/ $/.test(c)),
    createdBy.join('\n'),
  );
  assert.ok(createdBy.includes('/bin/sh -c #(nop) WORKDIR /app'));

  // Fully cached: every step after FROM says so, and no container is created.
  await new Promise((res) => setTimeout(res, 1100)); // past the second of the last `run --rm`
  const since = Math.floor(Date.now() / 1000);
  const again = await berth(d, ['build', '-t', 'every:1', ctx]);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(again.stdout.match(/ ---> Using cache\n/g)?.length, 23, again.stdout);
  assert.doesNotMatch(again.stdout, /Running in/);
  assert.deepEqual(await containerEvents(d, since), []);
  const id1 = JSON.parse((await request(d, 'GET', '/images/every:1/json')).body.toString()).Id as string;
  const id2 = JSON.parse((await request(d, 'GET', '/images/every:2/json')).body.toString()).Id as string;
  assert.equal(id1, id2);

  // ONBUILD triggers run in the child build and are not inherited further.
  const child = makeContext({ Dockerfile: 'FROM every:1\nRUN cat /tmp/onbuild.txt\n' });
  const c = await berth(d, ['build', '-t', 'child', child]);
  assert.equal(c.code, 0, c.stdout + c.stderr);
  assert.match(c.stdout, /# Executing 1 build trigger\n/);
  assert.match(c.stdout, /triggered\n/);
  assert.equal((await imageConfig(d, 'child')).OnBuild, null);
});

test('multi-stage: only the stages the target needs are built; COPY --from by name and index', async () => {
  const ctx = makeContext({
    Dockerfile: `ARG BASE=${BB}
FROM \${BASE} AS unused
RUN echo unused-stage-ran; exit 1
FROM \${BASE} AS builder
RUN echo built > /out.txt
FROM builder AS mid
RUN echo mid > /mid.txt
FROM scratch
COPY --from=builder /out.txt /out.txt
COPY --from=1 /bin/busybox /busybox
CMD ["/busybox", "cat", "/out.txt"]
`,
  });
  const r = await berth(d, ['build', '-t', 'ms:final', ctx]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.doesNotMatch(r.stdout, /unused-stage-ran/);
  assert.match(r.stdout, /^Step 1\/7 : ARG BASE=/);
  assert.equal((await berth(d, ['run', '--rm', 'ms:final'])).stdout, 'built\n');

  const t = await berth(d, ['build', '--target', 'mid', '-t', 'ms:mid', ctx]);
  assert.equal(t.code, 0, t.stdout + t.stderr);
  assert.match(t.stdout, /^Step 1\/5 : ARG BASE=/);
  assert.equal(await sh('ms:mid', 'cat /out.txt /mid.txt'), 'built\nmid\n');

  const bad = await berth(d, ['build', '--target', 'nosuch', ctx]);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /failed to reach build target nosuch in Dockerfile/);
});

test('CLI: .dockerignore, -f -, tar and Dockerfile on stdin, build args, labels, -q, --iidfile, --no-cache', async () => {
  const ctx = makeContext({
    'app.txt': 'app\n',
    'secret.txt': 'secret\n',
    'debug.log': 'log\n',
    'sub/keep.txt': 'keep\n',
    'sub/ignored.txt': 'ignored\n',
    'deep/a/b/x.log': 'x\n',
    'deep/a/b/keep.log': 'k\n',
    '.dockerignore': 'secret.txt\n*.log\nsub/ignored.txt\n**/*.log\n!**/keep.log\n',
    Dockerfile: `FROM ${BB}\nCOPY . /ctx/\n`,
  });
  const iid = `${ctx}.iid`;
  const r = await berth(d, ['build', '-t', 'ign', '--iidfile', iid, ctx]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.equal(
    await sh('ign', 'cd /ctx && find . | sort'),
    '.\n./.dockerignore\n./Dockerfile\n./app.txt\n./deep\n./deep/a\n./deep/a/b\n./deep/a/b/keep.log\n./sub\n./sub/keep.txt\n',
  );
  const id = JSON.parse((await request(d, 'GET', '/images/ign/json')).body.toString()).Id as string;
  assert.equal(readFileSync(iid, 'utf8'), id);

  // -f - : the Dockerfile from stdin, the context from the directory.
  const args = await berth(
    d,
    [
      'build',
      '-q',
      '-f',
      '-',
      '--build-arg',
      'WHO=stdin',
      '--label',
      'l1=v1',
      '--no-cache',
      '-t',
      'fromstdin',
      ctx,
    ],
    { input: `FROM ${BB}\nARG WHO=nobody\nRUN echo "hi $WHO" > /who\nCOPY app.txt /\n` },
  );
  assert.equal(args.code, 0, args.stderr);
  assert.match(args.stdout, /^sha256:[0-9a-f]{64}\n$/);
  assert.equal(await sh('fromstdin', 'cat /who /app.txt'), 'hi stdin\napp\n');
  assert.deepEqual((await imageConfig(d, 'fromstdin')).Labels, { l1: 'v1' });

  // A Dockerfile alone on stdin.
  const only = await berth(d, ['build', '-t', 'dfonly', '-'], { input: `FROM ${BB}\nENV ONLY=1\n` });
  assert.equal(only.code, 0, only.stderr);
  assert.equal(((await imageConfig(d, 'dfonly')).Env as string[]).at(-1), 'ONLY=1');

  // A context tar (gzip) on stdin is taken as it is (.dockerignore is the client's business).
  const tarball = `${ctx}.tgz`;
  tarOf(ctx, tarball, true);
  const fromTar = await berth(d, ['build', '-t', 'fromtar', '-'], { input: readFileSync(tarball) });
  assert.equal(fromTar.code, 0, fromTar.stderr);
  assert.equal(await sh('fromtar', 'cat /ctx/secret.txt'), 'secret\n');

  // An unused build arg is reported; --no-cache runs everything again.
  const warn = await berth(d, ['build', '--no-cache', '--build-arg', 'UNUSED=1', ctx]);
  assert.match(warn.stdout, /\[Warning\] One or more build-args \[UNUSED\] were not consumed/);
  assert.doesNotMatch(warn.stdout, /Using cache/);
});

test('reproducible layers: SOURCE_DATE_EPOCH gives the same image and layer digests without the cache', async () => {
  const ctx = makeContext({
    'data/a.txt': 'a\n',
    'data/b.bin': Buffer.alloc(100_000, 7),
    Dockerfile: `FROM ${BB}\nARG SOURCE_DATE_EPOCH\nCOPY data /data\nRUN mkdir -p /made && echo x > /made/x && touch /made/y\nENV X=1\n`,
  });
  const ids: string[] = [];
  const layers: string[][] = [];
  for (let i = 0; i < 2; i++) {
    const r = await berth(d, ['build', '-q', '--no-cache', '--build-arg', 'SOURCE_DATE_EPOCH=1700000000', ctx]);
    assert.equal(r.code, 0, r.stderr);
    const id = r.stdout.trim();
    ids.push(id);
    const img = JSON.parse((await request(d, 'GET', `/images/${id}/json`)).body.toString()) as {
      RootFS: { Layers: string[] };
      Created: string;
    };
    layers.push(img.RootFS.Layers);
    assert.equal(img.Created, '2023-11-14T22:13:20Z');
    // Let the clock move on, so that only the clamping can make the bytes equal.
    await new Promise((res) => setTimeout(res, 1100));
  }
  assert.equal(ids[0], ids[1]);
  assert.deepEqual(layers[0], layers[1]);
  assert.equal(layers[0].length, 3);
});

async function tarOfEntries(files: Record<string, string>): Promise<Buffer> {
  const pack = tar.pack();
  for (const [name, content] of Object.entries(files)) pack.entry({ name }, content);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack as unknown as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

test('bad input: parse errors with line numbers, missing and escaping sources, unknown stage, failing RUN', async () => {
  const ctx = makeContext({ Dockerfile: `FROM ${BB}\nBOGUS foo\n` });
  const bogus = await berth(d, ['build', ctx]);
  assert.equal(bogus.code, 1);
  assert.equal(
    bogus.stderr,
    'Error response from daemon: dockerfile parse error line 2: unknown instruction: BOGUS\n',
  );

  const raw = await request(d, 'POST', '/build', await tarOfEntries({ Dockerfile: 'FROM x\nRUN a \\\n b\nCOPY\n' }));
  assert.equal(raw.status, 400);
  assert.deepEqual(JSON.parse(raw.body.toString()), {
    message: 'dockerfile parse error line 4: COPY requires at least one argument',
  });
  const escape = await request(d, 'POST', '/build', await tarOfEntries({ Dockerfile: 'FROM x\n', '../../evil': 'x' }));
  assert.equal(escape.status, 400);
  assert.match((JSON.parse(escape.body.toString()) as { message: string }).message, /escapes/);

  // A relative symlink that climbs out of the context refuses the whole context.
  const climbing = makeContext({ 'leak-dir': '->../../../../../../etc', Dockerfile: `FROM ${BB}\nCOPY leak-dir/passwd /x\n` });
  const cl = await berth(d, ['build', climbing]);
  assert.equal(cl.code, 1);
  assert.match(cl.stderr, /invalid tar entry "leak-dir": symlink target .* escapes/);

  const before = await containerCount(d);
  const cases: [string, RegExp][] = [
    [
      'COPY missing.txt /x',
      /COPY failed: file not found in build context or excluded by \.dockerignore: stat missing\.txt: file does not exist/,
    ],
    ['COPY ../ok.txt /x', /forbidden path outside the build context: \.\.\/ok\.txt/],
    ['COPY leak-file /x', /file not found in build context/],
    ['COPY abs-dir/passwd /x', /file not found in build context/],
    ['COPY --from=nosuchstage /x /x', /invalid from flag value nosuchstage/],
    ['COPY ok.txt ok.txt /notadir', /the destination must be a directory and end with a \//],
    ['COPY', /line 2: COPY requires at least one argument/],
    ['RUN --frob=1 true', /line 2: Unknown flag: frob/],
    ['EXPOSE 80/tcpx', /invalid containerPort: 80\/tcpx/],
    ['ENV A=${B', /failed to process/],
  ];
  for (const [line, want] of cases) {
    const c = makeContext({
      'ok.txt': 'ok\n',
      'leak-file': '->/etc/passwd',
      'abs-dir': '->/etc',
      Dockerfile: `FROM ${BB}\n${line}\n`,
    });
    const r = await berth(d, ['build', '-t', 'bad:1', c]);
    assert.equal(r.code, 1, `${line}: ${r.stdout} ${r.stderr}`);
    assert.match(r.stderr, want, line);
  }
  const fail = makeContext({ Dockerfile: `FROM ${BB}\nRUN echo failing; echo to-stderr >&2; exit 7\n` });
  const r = await berth(d, ['build', '-t', 'bad:1', fail]);
  assert.equal(r.code, 7);
  assert.match(r.stdout, /failing\n/);
  assert.match(r.stdout, /to-stderr\n/);
  assert.equal(
    r.stderr,
    "The command '/bin/sh -c echo failing; echo to-stderr >&2; exit 7' returned a non-zero code: 7\n",
  );
  assert.equal((await request(d, 'GET', '/images/bad:1/json')).status, 404);
  assert.equal(await containerCount(d), before, 'no build container is left behind');
});


/** POST /build?t=<tag> with a tar stream as the body; the status and the whole answer. */
function postBuild(tag: string, context: tar.Pack): Promise<{ code: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { socketPath: d.socket, path: `/build?t=${tag}`, method: 'POST', headers: { 'Content-Type': 'application/x-tar' } },
      (resp) => {
        let body = '';
        resp.on('data', (c: Buffer) => (body += c.toString()));
        resp.on('end', () => resolve({ code: resp.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    (context as unknown as NodeJS.ReadableStream).pipe(req);
  });
}

test('a huge context streams with bounded daemon memory', async () => {
  const hwm = (): number => {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${d.proc.pid}/status`, 'utf8'));
    return Number(m![1]) * 1024;
  };
  const start = hwm();
  const size = 400 * 1024 * 1024;
  const pack = tar.pack();
  pack.entry({ name: 'Dockerfile' }, `FROM ${BB}\nCOPY small.txt /\n`);
  pack.entry({ name: 'small.txt' }, 'small\n');
  const big = pack.entry({ name: 'big.bin', size }, () => undefined) as unknown as NodeJS.WritableStream;
  void (async () => {
    const chunk = Buffer.alloc(1024 * 1024, 1);
    for (let i = 0; i < size / chunk.length; i++)
      if (!big.write(chunk)) await new Promise<void>((res) => big.once('drain', () => res()));
    big.end();
    pack.finalize();
  })();
  const res = await postBuild('huge', pack);
  assert.equal(res.code, 200);
  assert.match(res.body, /Successfully tagged huge:latest/);
  const grew = hwm() - start;
  assert.ok(grew < 150 * 1024 * 1024, `daemon peak memory grew by ${grew} bytes for a ${size}-byte context`);
});

test('a context refused early in a long body is answered with the error, not a connection reset', async () => {
  const pack = tar.pack();
  pack.entry({ name: 'Dockerfile' }, `FROM ${BB}\n`);
  pack.entry({ name: 'out', type: 'symlink', linkname: '../../etc' });
  pack.entry({ name: 'big.bin' }, Buffer.alloc(20 * 1024 * 1024, 1));
  pack.finalize();
  // The daemon may close the connection once it has answered: the rest of the body is not sent then.
  pack.on('error', () => undefined);
  const res = await postBuild('refused', pack);
  assert.equal(res.code, 400);
  assert.match(JSON.parse(res.body).message, /invalid tar entry "out": symlink target "..\/..\/etc" escapes/);
});

test('the cache survives a daemon restart; builder prune empties it', async () => {
  const ctx = makeContext({ 'f.txt': 'f\n', Dockerfile: `FROM ${BB}\nCOPY f.txt /\nRUN echo ran\n` });
  const first = await berth(d, ['build', '-t', 'persist', ctx]);
  assert.equal(first.code, 0, first.stderr);
  // Kill the daemon hard and start another on the same state.
  const exited = new Promise((res) => d.proc.once('exit', res));
  d.proc.kill('SIGKILL');
  await exited;
  d = await startDaemon([], {}, { dir: d.dir });
  const again = await berth(d, ['build', '-t', 'persist', ctx]);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(again.stdout.match(/Using cache/g)?.length, 2, again.stdout);

  const prune = await berth(d, ['builder', 'prune', '-f']);
  assert.equal(prune.code, 0, prune.stderr);
  assert.match(prune.stdout, /Total reclaimed space: /);
  const rebuilt = await berth(d, ['build', '-t', 'persist', ctx]);
  assert.doesNotMatch(rebuilt.stdout, /Using cache/);
  assert.match(rebuilt.stdout, /ran\n/);
});

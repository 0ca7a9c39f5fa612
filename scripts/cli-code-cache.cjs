'use strict';
// Makes the V8 code cache of the bundled CLI (argv[2]) beside it, as `<bundle>.cache`
// (bin/cli-loader.cjs reads it). V8 caches the functions compiled so far, so the bundle first runs
// what a `berth run --rm` runs — flag set-up and parsing, the Engine API calls, the attach stream —
// against a stand-in daemon on a temporary socket that answers those calls. Nothing else is cached:
// every other path compiles as it did before.
const { mkdtempSync, renameSync, rmSync, writeFileSync } = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { loadBundle } = require('../bin/cli-loader.cjs');

const bundle = process.argv[2];
const ID = 'c'.repeat(64);

/** Answers a run's calls: ping, create, wait (acknowledged, then the exit), attach (hijack), start. */
function standInDaemon(socket) {
  let onStart = () => {};
  const started = new Promise((resolve) => (onStart = resolve));
  const server = http.createServer((req, res) => {
    res.setHeader('Api-Version', '1.41');
    if (req.url.endsWith('/_ping')) return res.end('OK');
    if (req.url.includes('/containers/create')) {
      req.resume();
      res.writeHead(201, { 'Content-Type': 'application/json' });
      return res.end(JSON.stringify({ Id: ID, Warnings: [] }));
    }
    if (req.url.includes('/wait')) {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.flushHeaders();
      return void started.then(() => res.end(JSON.stringify({ StatusCode: 0, Error: null }) + '\n'));
    }
    if (req.url.includes('/start')) {
      res.writeHead(204);
      res.end();
      return onStart();
    }
    res.writeHead(404, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ message: 'not in the stand-in daemon' }));
  });
  server.on('upgrade', (_req, sock) => {
    sock.write(
      'HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n' +
        'Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n',
    );
    void started.then(() => {
      // one stdout frame, then the end of the stream, as a container that printed a line and exited
      const line = Buffer.from('ok\n');
      const header = Buffer.alloc(8);
      header[0] = 1;
      header.writeUInt32BE(line.length, 4);
      sock.end(Buffer.concat([header, line]));
    });
  });
  return new Promise((resolve) => server.listen(socket, () => resolve(server)));
}

async function main() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-code-cache-'));
  try {
    const socket = path.join(dir, 'api.sock');
    const server = await standInDaemon(socket);
    const { exports: cli, script } = loadBundle(bundle);
    const argv = ['-H', `unix://${socket}`, 'run', '--rm', '--network', 'none', 'busybox', 'true'];
    // the container's output goes nowhere: this is a build step
    const write = process.stdout.write;
    process.stdout.write = () => true;
    const code = await cli.runCliArgs(argv).finally(() => (process.stdout.write = write));
    server.close();
    if (code !== 0) throw new Error(`the training run exited ${code}`);
    const tmp = `${bundle}.cache.tmp`;
    writeFileSync(tmp, script.createCachedData());
    renameSync(tmp, `${bundle}.cache`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  // Without a cache the CLI still works (it compiles from source): say so, do not fail the build.
  process.stderr.write(`cli-code-cache: no code cache made: ${err.stack ?? err}\n`);
});

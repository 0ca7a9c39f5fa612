/**
 * Issue 4's serving target: Berth Hub (standalone) and Debian's reference registry hold the same
 * image (pushed by berthd); 8 clients at once download all its layers from each.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, promises as fsp } from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { api, type Daemon, freePort, median } from './harness.js';

const CLIENTS = 8;
const ROUNDS = 3;

function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      })
      .on('error', reject);
  });
}

/** Downloads a blob and throws the bytes away, counting them. */
function drain(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        let n = 0;
        res.on('data', (c: Buffer) => (n += c.length));
        res.on('end', () =>
          res.statusCode === 200 ? resolve(n) : reject(new Error(`${url}: ${res.statusCode}`)),
        );
      })
      .on('error', reject);
  });
}

async function push(d: Daemon, repo: string): Promise<void> {
  const t = await api(
    d.socket,
    'POST',
    `/images/bench/big:latest/tag?repo=${encodeURIComponent(repo)}&tag=latest`,
  );
  if (t.status !== 201) throw new Error(`tag ${repo}: ${t.body}`);
  const r = await new Promise<string>((resolve, reject) => {
    const req = http.request(
      {
        socketPath: d.socket,
        path: `/images/${repo}/push?tag=latest`,
        method: 'POST',
        headers: { 'X-Registry-Auth': 'e30=' },
      },
      (res) => {
        let s = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (s += c));
        res.on('end', () => resolve(s));
      },
    );
    req.on('error', reject);
    req.end();
  });
  if (r.includes('"error"')) throw new Error(`push ${repo}: ${r}`);
}

async function layerUrls(host: string): Promise<string[]> {
  const m = await get(`http://${host}/v2/bench/serve/manifests/latest`, {
    Accept:
      'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json',
  });
  if (m.status !== 200) throw new Error(`manifest from ${host}: ${m.status}`);
  const layers = (JSON.parse(m.body.toString()) as { layers: { digest: string }[] }).layers;
  return layers.map((l) => `http://${host}/v2/bench/serve/blobs/${l.digest}`);
}

async function serveTime(urls: string[]): Promise<number> {
  const times: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    await Promise.all(
      Array.from({ length: CLIENTS }, async () => {
        for (const u of urls) await drain(u);
      }),
    );
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return median(times);
}

/** Median ms for 8 concurrent clients to fetch every layer, from Berth Hub and from the registry. */
export async function hubServingFigures(
  berth: Daemon,
  registryHost: string,
  root: string,
): Promise<{ hub: number; registry: number }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-hub-'));
  const port = await freePort();
  const hubHost = `127.0.0.1:${port}`;
  const proc = spawn(
    process.execPath,
    [path.join(root, 'bin/berth.js'), 'hub', 'serve', '--listen', hubHost, '--root', dir],
    { stdio: 'ignore' },
  );
  try {
    for (let i = 0; i < 100; i++) {
      const up = await get(`http://${hubHost}/v2/`).then(
        (r) => r.status === 200,
        () => false,
      );
      if (up) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await push(berth, `${hubHost}/bench/serve`);
    await push(berth, `${registryHost}/bench/serve`);
    const hub = await serveTime(await layerUrls(hubHost));
    const registry = await serveTime(await layerUrls(registryHost));
    return { hub, registry };
  } finally {
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGTERM');
    await exited;
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

/** An in-process Berth Hub on a fresh root and loopback port, for the hub's tests. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { openHub, type HubConfig } from '../../src/hub/config.js';
import { createHubServer } from '../../src/hub/server.js';
import type { FsHubStorage } from '../../src/hub/storage.js';

export interface Reply {
  status: number;
  body: Buffer;
  text: string;
  headers: http.IncomingHttpHeaders;
}

export interface TestHub {
  root: string;
  /** host:port */
  addr: string;
  url: string;
  storage: FsHubStorage;
  req(method: string, p: string, body?: Buffer | string, headers?: Record<string, string>): Promise<Reply>;
  stop(): Promise<void>;
}

export async function startTestHub(config: HubConfig & { fileConfig?: object } = {}): Promise<TestHub> {
  const root = mkdtempSync(path.join(os.tmpdir(), 'berth-hub-'));
  if (config.fileConfig) writeFileSync(path.join(root, 'config.json'), JSON.stringify(config.fileConfig));
  const { fileConfig: _f, ...overrides } = config;
  const { storage, opts } = await openHub(root, overrides);
  const server = createHubServer(storage, opts);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const addr = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  const req = (method: string, p: string, body?: Buffer | string, headers: Record<string, string> = {}) =>
    new Promise<Reply>((resolve, reject) => {
      const [host, port] = addr.split(':');
      const r = http.request({ host, port: Number(port), method, path: p, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const b = Buffer.concat(chunks);
          resolve({ status: res.statusCode ?? 0, body: b, text: b.toString(), headers: res.headers });
        });
      });
      r.on('error', reject);
      r.end(body);
    });
  return {
    root,
    addr,
    url: `http://${addr}`,
    storage,
    req,
    stop: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      rmSync(root, { recursive: true, force: true });
    },
  };
}

export function errorCode(r: Reply): string {
  return (JSON.parse(r.text) as { errors: { code: string }[] }).errors[0].code;
}

/** Pushes a blob monolithically; returns its digest. */
export async function pushBlob(
  hub: TestHub,
  repo: string,
  data: Buffer | string,
  headers: Record<string, string> = {},
): Promise<string> {
  const { createHash } = await import('node:crypto');
  const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
  const r = await hub.req('POST', `/v2/${repo}/blobs/uploads/?digest=${digest}`, data, headers);
  if (r.status !== 201) throw new Error(`blob push: ${r.status} ${r.text}`);
  return digest;
}

/** An OCI image manifest over a config blob and layers, pushed under `ref`. */
export async function pushImage(
  hub: TestHub,
  repo: string,
  ref: string,
  extra: Record<string, unknown> = {},
  headers: Record<string, string> = {},
): Promise<{ digest: string; body: string; reply: Reply; config: string; layer: string }> {
  const configData = JSON.stringify({
    architecture: 'amd64',
    os: 'linux',
    rootfs: { type: 'layers', diff_ids: [] },
    ref,
  });
  const layerData = `layer of ${repo}:${ref}`;
  const config = await pushBlob(hub, repo, configData, headers);
  const layer = await pushBlob(hub, repo, layerData, headers);
  const body = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: {
      mediaType: 'application/vnd.oci.image.config.v1+json',
      digest: config,
      size: configData.length,
    },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layer, size: layerData.length }],
    ...extra,
  });
  const reply = await hub.req('PUT', `/v2/${repo}/manifests/${ref}`, body, {
    'Content-Type': 'application/vnd.oci.image.manifest.v1+json',
    ...headers,
  });
  if (reply.status !== 201) throw new Error(`manifest push: ${reply.status} ${reply.text}`);
  return { digest: String(reply.headers['docker-content-digest']), body, reply, config, layer };
}

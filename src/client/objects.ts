/**
 * Engine API calls for networks, volumes, image build and push, as free functions over a Client
 * (kept apart from client.ts so several rooms can add calls without stepping on each other).
 */
import type { Readable } from 'node:stream';
import { type Client, filtersParam, type JsonMessage } from './client.js';

export interface NetworkInspect {
  Name: string;
  Id: string;
  Driver: string;
  Scope?: string;
  Internal?: boolean;
  Attachable?: boolean;
  EnableIPv6?: boolean;
  Labels: Record<string, string> | null;
  Options?: Record<string, string> | null;
  IPAM?: { Driver: string; Config: { Subnet?: string; Gateway?: string; IPRange?: string }[] | null };
  Containers?: Record<string, { Name: string; IPv4Address?: string }>;
  [key: string]: unknown;
}

export interface VolumeInspect {
  Name: string;
  Driver: string;
  Mountpoint: string;
  Labels: Record<string, string> | null;
  Options?: Record<string, string> | null;
  Scope?: string;
  CreatedAt?: string;
  [key: string]: unknown;
}

// --- networks ---
export function listNetworks(c: Client, filters?: Record<string, string[]>): Promise<NetworkInspect[]> {
  return c.json({ method: 'GET', path: '/networks', query: { filters: filtersParam(filters) } });
}
export function inspectNetwork(c: Client, id: string): Promise<NetworkInspect> {
  return c.json({ method: 'GET', path: `/networks/${encodeURIComponent(id)}` });
}
export function createNetwork(
  c: Client,
  body: Record<string, unknown>,
): Promise<{ Id: string; Warning?: string }> {
  return c.json({ method: 'POST', path: '/networks/create', body });
}
export async function removeNetwork(c: Client, id: string): Promise<void> {
  await c.json({ method: 'DELETE', path: `/networks/${encodeURIComponent(id)}` });
}
export async function connectNetwork(
  c: Client,
  network: string,
  container: string,
  endpoint: Record<string, unknown> = {},
): Promise<void> {
  await c.json({
    method: 'POST',
    path: `/networks/${encodeURIComponent(network)}/connect`,
    body: { Container: container, EndpointConfig: endpoint },
  });
}
export async function disconnectNetwork(
  c: Client,
  network: string,
  container: string,
  force = false,
): Promise<void> {
  await c.json({
    method: 'POST',
    path: `/networks/${encodeURIComponent(network)}/disconnect`,
    body: { Container: container, Force: force },
  });
}

// --- volumes ---
export async function listVolumes(c: Client, filters?: Record<string, string[]>): Promise<VolumeInspect[]> {
  const r = await c.json<{ Volumes: VolumeInspect[] | null }>({
    method: 'GET',
    path: '/volumes',
    query: { filters: filtersParam(filters) },
  });
  return r.Volumes ?? [];
}
export function inspectVolume(c: Client, name: string): Promise<VolumeInspect> {
  return c.json({ method: 'GET', path: `/volumes/${encodeURIComponent(name)}` });
}
export function createVolume(c: Client, body: Record<string, unknown>): Promise<VolumeInspect> {
  return c.json({ method: 'POST', path: '/volumes/create', body });
}
export async function removeVolume(c: Client, name: string, force = false): Promise<void> {
  await c.json({
    method: 'DELETE',
    path: `/volumes/${encodeURIComponent(name)}`,
    query: { force: force ? 1 : undefined },
  });
}

// --- images ---
export interface BuildOptions {
  tags: string[];
  dockerfile?: string;
  buildargs?: Record<string, string>;
  target?: string;
  labels?: Record<string, string>;
  nocache?: boolean;
  pull?: boolean;
  networkmode?: string;
}

/** POST /build with a tar context; the stream's messages go to onMessage (errors come in-band). */
export function buildImage(
  c: Client,
  context: Readable,
  o: BuildOptions,
  onMessage: (m: JsonMessage) => void,
): Promise<void> {
  return c.jsonStream(
    {
      method: 'POST',
      path: '/build',
      query: {
        t: o.tags,
        dockerfile: o.dockerfile,
        buildargs: o.buildargs && Object.keys(o.buildargs).length ? JSON.stringify(o.buildargs) : undefined,
        target: o.target,
        labels: o.labels && Object.keys(o.labels).length ? JSON.stringify(o.labels) : undefined,
        nocache: o.nocache ? 1 : undefined,
        pull: o.pull ? 1 : undefined,
        networkmode: o.networkmode,
        rm: 1,
      },
      stream: context,
      headers: { 'Content-Type': 'application/x-tar', 'X-Registry-Config': 'e30=' },
    },
    onMessage,
  );
}

export function pushImage(
  c: Client,
  name: string,
  tag: string | undefined,
  onMessage: (m: JsonMessage) => void,
): Promise<void> {
  return c.jsonStream(
    {
      method: 'POST',
      path: `/images/${name}/push`,
      query: { tag },
      headers: { 'X-Registry-Auth': 'e30=' },
    },
    onMessage,
  );
}

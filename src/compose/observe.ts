/**
 * What exists on the engine for a project, found by labels (so containers made by docker-compose
 * 1.29, Docker Compose v2 and berth compose are all recognised).
 */
import type { Client, ContainerSummary } from '../client/client.js';
import * as L from './labels.js';

export interface ProjectContainer {
  id: string;
  name: string;
  service: string;
  number: number;
  oneoff: boolean;
  hash: string;
  state: string;
  status: string;
  image: string;
  imageId: string;
  labels: Record<string, string>;
  summary: ContainerSummary;
}

export function fromSummary(c: ContainerSummary): ProjectContainer {
  const labels = c.Labels ?? {};
  return {
    id: c.Id,
    name: (c.Names?.[0] ?? c.Id).replace(/^\//, ''),
    service: labels[L.SERVICE] ?? '',
    number: Number(labels[L.NUMBER] ?? 0) || 0,
    oneoff: (labels[L.ONEOFF] ?? 'False').toLowerCase() === 'true',
    hash: labels[L.CONFIG_HASH] ?? '',
    state: c.State,
    status: c.Status,
    image: c.Image,
    imageId: c.ImageID,
    labels,
    summary: c,
  };
}

/** Every container of the project (stopped ones too), oneoff ones only when asked. */
export async function projectContainers(
  client: Client,
  project: string,
  opts: { oneoff?: boolean | 'only'; services?: string[]; all?: boolean } = {},
): Promise<ProjectContainer[]> {
  const label = [`${L.PROJECT}=${project}`];
  if (opts.oneoff === undefined || opts.oneoff === false) label.push(`${L.ONEOFF}=False`);
  if (opts.oneoff === 'only') label.push(`${L.ONEOFF}=True`);
  const list = await client.listContainers({ all: opts.all ?? true, filters: { label } });
  return list
    .map(fromSummary)
    .filter((c) => !opts.services?.length || opts.services.includes(c.service))
    .sort((a, b) => (a.service < b.service ? -1 : a.service > b.service ? 1 : a.number - b.number));
}

/** Projects present on the engine: name, states, config files (for `ls`). */
export async function listProjects(
  client: Client,
  all: boolean,
): Promise<{ name: string; status: string; configFiles: string }[]> {
  const list = (await client.listContainers({ all: true, filters: { label: [L.PROJECT] } })).map(fromSummary);
  const byProject = new Map<string, ProjectContainer[]>();
  for (const c of list) {
    const p = c.labels[L.PROJECT];
    if (!byProject.has(p)) byProject.set(p, []);
    byProject.get(p)!.push(c);
  }
  const out: { name: string; status: string; configFiles: string }[] = [];
  for (const [name, cs] of [...byProject].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const counts = new Map<string, number>();
    for (const c of cs) counts.set(c.state, (counts.get(c.state) ?? 0) + 1);
    if (!all && !counts.get('running')) continue;
    const status = [...counts]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([s, n]) => `${s}(${n})`)
      .join(', ');
    out.push({ name, status, configFiles: cs[0].labels[L.CONFIG_FILES] ?? '' });
  }
  return out;
}

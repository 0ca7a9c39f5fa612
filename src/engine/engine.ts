/**
 * The engine: the domain rooms wired together. It knows nothing of HTTP.
 */
import { randomUUID } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../common/atomic.js';
import { Builder } from './build/builder.js';
import { FileContentStore } from './content/store.js';
import { ExecService } from './containers/exec.js';
import { HealthMonitor } from './containers/health.js';
import { ContainerService } from './containers/service.js';
import { ConmonRuntime } from './runtime/conmon.js';
import { EventBus } from './events/events.js';
import type { NetworkConfig } from './network/network.js';
import { NetworkService } from './network/service.js';
import { ImageStore } from './images/store.js';
import { OverlaySnapshotter } from './snapshots/overlay.js';
import type { Snapshotter } from './snapshots/snapshots.js';
import { VolumeService } from './volumes/service.js';

export interface EngineConfig {
  dataRoot: string;
  execRoot: string;
  registryMirrors: string[];
  insecureRegistries: string[];
  debug: boolean;
  labels: string[];
  /** Absolute cgroup path containers are placed under, e.g. /berth. */
  cgroupParent: string;
  network: NetworkConfig;
}

export class Engine {
  readonly content: FileContentStore;
  readonly snapshots: Snapshotter;
  readonly images: ImageStore;
  readonly runtime: ConmonRuntime;
  readonly containers: ContainerService;
  readonly volumes: VolumeService;
  readonly execs: ExecService;
  readonly network: NetworkService;
  readonly builder: Builder;
  readonly health: HealthMonitor;
  readonly events = new EventBus();
  readonly startedAt = Date.now();
  readonly id: string;

  constructor(
    readonly config: EngineConfig,
    id: string,
  ) {
    this.id = id;
    this.content = new FileContentStore(path.join(config.dataRoot, 'content'));
    this.snapshots = new OverlaySnapshotter(path.join(config.dataRoot, 'snapshots'));
    this.images = new ImageStore(
      path.join(config.dataRoot, 'image'),
      this.content,
      this.snapshots,
      this.events,
    );
    this.network = new NetworkService(config.network, config.dataRoot, config.execRoot, this.events);
    this.runtime = new ConmonRuntime({ runcRoot: path.join(config.execRoot, 'runc') });
    this.volumes = new VolumeService(config.dataRoot, this.events);
    this.containers = new ContainerService({
      volumes: this.volumes,
      images: this.images,
      content: this.content,
      snapshots: this.snapshots,
      runtime: this.runtime,
      events: this.events,
      network: this.network,
      dataRoot: config.dataRoot,
      execRoot: config.execRoot,
      cgroupParent: config.cgroupParent,
    });
    this.images.usage = (id) => this.containers.imageUsage(id);
    this.execs = new ExecService(this.containers, this.runtime);
    this.network.containers = {
      resolve: (ref) => this.containers.tryGet(ref)?.id,
      isRunning: (id) => !!this.containers.tryGet(id)?.state.Running,
      pid: (id) => this.containers.tryGet(id)?.state.Pid ?? 0,
    };
    this.builder = new Builder(
      { images: this.images, content: this.content, snapshots: this.snapshots, containers: this.containers },
      config.dataRoot,
    );
    this.health = new HealthMonitor(this.containers, this.execs, this.events);
  }

  /** Creates the data root and recovers whatever a crash left behind. */
  static async open(config: EngineConfig): Promise<Engine> {
    await fsp.mkdir(config.dataRoot, { recursive: true, mode: 0o711 });
    await fsp.mkdir(config.execRoot, { recursive: true, mode: 0o711 });
    const idFile = path.join(config.dataRoot, 'engine-id');
    let id: string;
    try {
      id = (await fsp.readFile(idFile, 'utf8')).trim();
    } catch {
      id = randomUUID();
      await writeFileAtomic(idFile, id);
    }
    const engine = new Engine(config, id);
    await engine.content.init();
    await engine.snapshots.init();
    await engine.images.init();
    await engine.network.init();
    await engine.volumes.init();
    await engine.containers.init();
    await engine.network.reconcile(new Set(engine.containers.list().map((r) => r.id)));
    await engine.builder.init();
    engine.health.init();
    return engine;
  }

  /** Containers keep running under conmon; only the daemon's watchers stop. */
  async close(): Promise<void> {
    this.health.close();
    this.containers.close();
    await this.network.close();
  }
}

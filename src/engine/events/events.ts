/**
 * Events: one bus for `GET /events` and for internal watchers.
 * Messages have Docker's shape; a bounded backlog serves `--since`.
 */
import { EventEmitter } from 'node:events';

export interface EngineEvent {
  Type: 'container' | 'image' | 'network' | 'volume' | 'daemon' | 'builder';
  Action: string;
  Actor: { ID: string; Attributes: Record<string, string> };
  scope: 'local';
  time: number;
  timeNano: number;
  // Pre-1.22 fields Docker still sends for containers and images.
  status?: string;
  id?: string;
  from?: string;
}

export class EventBus {
  private readonly emitter = new EventEmitter();
  private readonly backlog: EngineEvent[] = [];

  constructor(private readonly backlogSize = 1024) {
    this.emitter.setMaxListeners(0);
  }

  publish(
    type: EngineEvent['Type'],
    action: string,
    id: string,
    attributes: Record<string, string> = {},
  ): void {
    const nowNs = BigInt(Date.now()) * 1_000_000n + (process.hrtime.bigint() % 1_000_000n);
    const ev: EngineEvent = {
      Type: type,
      Action: action,
      Actor: { ID: id, Attributes: attributes },
      scope: 'local',
      time: Number(nowNs / 1_000_000_000n),
      timeNano: Number(nowNs),
    };
    if (type === 'container' || type === 'image') {
      ev.status = action;
      ev.id = id;
      if (attributes.image) ev.from = attributes.image;
    }
    this.backlog.push(ev);
    if (this.backlog.length > this.backlogSize) this.backlog.shift();
    this.emitter.emit('event', ev);
  }

  /** Events already published with time in [sinceSec, untilSec]. */
  history(sinceSec: number, untilSec = Infinity): EngineEvent[] {
    return this.backlog.filter((e) => e.time >= sinceSec && e.time <= untilSec);
  }

  subscribe(listener: (ev: EngineEvent) => void): () => void {
    this.emitter.on('event', listener);
    return () => this.emitter.off('event', listener);
  }

  get listenerCount(): number {
    return this.emitter.listenerCount('event');
  }
}

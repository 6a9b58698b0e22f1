/** An in-memory `EventSink` (and `EventReader` over the same events) for tests. */
import type { EventFilter, EventReader, EventSink, GatewayEvent } from './types.ts';

export function matchesFilter(event: GatewayEvent, filter: EventFilter): boolean {
  if (filter.consumerGroup !== undefined && event.consumer_group !== filter.consumerGroup) return false;
  if (filter.status !== undefined && event.result !== filter.status && event.reason !== filter.status) return false;
  return true;
}

export class MemoryEventSink implements EventSink, EventReader {
  /** Recorded events, oldest first, each with a sequence number that survives prune. */
  private entries: { seq: number; event: GatewayEvent }[] = [];
  private nextSeq = 1;

  /** All events currently held, oldest first. */
  get events(): GatewayEvent[] {
    return this.entries.map((e) => e.event);
  }

  record(event: GatewayEvent): void {
    this.entries.push({ seq: this.nextSeq++, event });
  }

  flush(): Promise<void> {
    return Promise.resolve();
  }

  prune(olderThanMs: number): void {
    this.entries = this.entries.filter((e) => e.event.ts_ms >= olderThanMs);
  }

  last(n: number, filter: EventFilter): { seq: number; event: GatewayEvent }[] {
    if (n <= 0) return [];
    return this.entries.filter((e) => matchesFilter(e.event, filter)).slice(-n);
  }

  after(seq: number, filter: EventFilter): { seq: number; event: GatewayEvent }[] {
    return this.entries.filter((e) => e.seq > seq && matchesFilter(e.event, filter));
  }

  /** Forgets every event (sequence numbers keep increasing). */
  clear(): void {
    this.entries = [];
  }

  /**
   * Serves as both `EventSink.close()` and `EventReader.close()`. Holds no resources, so it keeps
   * the events readable and keeps recording: a test may restart a gateway with the same sink.
   */
  close(): Promise<void> {
    return Promise.resolve();
  }
}

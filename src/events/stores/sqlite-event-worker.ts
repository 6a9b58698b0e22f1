/**
 * The worker thread behind `SqliteEventSink`: it owns the better-sqlite3 connection so the gateway's
 * event loop never waits on disk. Messages are handled strictly in order, and every message is
 * answered with an ack carrying its id, so an ack for a `sync` means everything posted before it
 * has been committed (or has failed, which the ack reports).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { mkdirSync } from 'node:fs';
import { insertEvents, openEventDb, pruneEvents } from './sqlite-event-store.ts';
import { EVENT_WIDTH, eventAt } from './event-rows.ts';
import type { GatewayEvent } from '../types.ts';

export type WorkerRequest =
  /** `rows`: events flattened by `pushEvent` (event-rows.ts). */
  | { id: number; type: 'batch'; rows: unknown[] }
  | { id: number; type: 'prune'; olderThanMs: number }
  | { id: number; type: 'sync' }
  | { id: number; type: 'close' };

export interface WorkerAck {
  id: number;
  type: WorkerRequest['type'];
  error?: string;
}

export interface WorkerData {
  dataDir: string;
}

const port = parentPort;
if (!port) throw new Error('sqlite-event-worker must run in a worker thread');

const { dataDir } = workerData as WorkerData;
mkdirSync(dataDir, { recursive: true, mode: 0o700 });
// If opening fails the worker dies with the error; the sink logs it once and drops events.
const db = openEventDb(dataDir);

/** SQLITE_BUSY after the 5 s busy_timeout means heavy contention: retry a couple of times. */
function withRetry<T>(fn: () => T): T {
  for (let attempt = 0; ; attempt++) {
    try {
      return fn();
    } catch (err) {
      const code = (err as { code?: string }).code ?? '';
      if (attempt >= 2 || !code.startsWith('SQLITE_BUSY')) throw err;
    }
  }
}

function eventsOf(rows: readonly unknown[]): GatewayEvent[] {
  const events: GatewayEvent[] = [];
  for (let at = 0; at < rows.length; at += EVENT_WIDTH) events.push(eventAt(rows, at));
  return events;
}

port.on('message', (msg: WorkerRequest) => {
  const ack: WorkerAck = { id: msg.id, type: msg.type };
  try {
    switch (msg.type) {
      case 'batch':
        withRetry(() => insertEvents(db, eventsOf(msg.rows)));
        break;
      case 'prune':
        withRetry(() => pruneEvents(db, msg.olderThanMs));
        break;
      case 'sync':
        break;
      case 'close':
        db.close();
        port.postMessage(ack);
        port.close();
        return;
    }
  } catch (err) {
    ack.error = err instanceof Error ? err.message : String(err);
  }
  port.postMessage(ack);
});

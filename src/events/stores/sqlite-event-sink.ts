/**
 * The gateway's event sink. `record()` only appends to an in-memory buffer; a short unref'd timer
 * (or a full batch) posts the buffer to a worker thread that owns the SQLite connection and inserts
 * each batch in one transaction. No disk I/O happens on the caller's thread.
 *
 * If the worker dies (e.g. the database cannot be opened), the error is logged to stderr once,
 * later events are dropped, `record()` keeps not throwing and `flush()` rejects.
 * The worker is ref'd only while it has work in flight, so an idle sink does not keep the process
 * alive, yet `await sink.flush()` at the end of a script still completes.
 */
import { Worker } from 'node:worker_threads';
import type { EventSink, GatewayEvent } from '../types.ts';
import { pushEvent } from './event-rows.ts';
import type { WorkerAck, WorkerData, WorkerRequest } from './sqlite-event-worker.ts';

export interface SqliteEventSinkOptions {
  /** Post a batch as soon as this many events are buffered (default 2048). */
  batchSize?: number;
  /**
   * Post whatever is buffered this long after the first buffered event (default 100 ms). Each batch
   * is one SQLite transaction, and a commit's cost (the WAL pages it rewrites, the worker waking up)
   * is paid per batch: fewer, larger batches cost less CPU per event (docs/performance.md).
   */
  flushIntervalMs?: number;
  /** Where fatal and write errors are reported (default: process.stderr). */
  log?: (line: string) => void;
}

type DistributeRequest<T> = T extends unknown ? Omit<T, 'id'> : never;
type Request = DistributeRequest<WorkerRequest>;

interface Waiter {
  resolve: () => void;
  reject: (err: Error) => void;
}

/**
 * Compiled by tsc, this module is `.js` next to `sqlite-event-worker.js`. Under tsx (tests,
 * `node --import tsx`) it is `.ts`, and the worker must load tsx itself: on Node 20 loader hooks
 * given through the Worker's `execArgv` do not apply to its entry module, so a tiny eval'd
 * bootstrap registers tsx's ESM hooks first and then imports the `.ts` worker.
 */
function startWorker(data: WorkerData): Worker {
  if (import.meta.url.endsWith('.js')) {
    return new Worker(new URL('./sqlite-event-worker.js', import.meta.url), { workerData: data });
  }
  // Resolved from this package, not from the process's cwd.
  const tsxApi = import.meta.resolve('tsx/esm/api');
  const entry = new URL('./sqlite-event-worker.ts', import.meta.url).href;
  const bootstrap =
    `import(${JSON.stringify(tsxApi)})` +
    `.then(({ register }) => { register(); return import(${JSON.stringify(entry)}); })` +
    `.catch((err) => { setImmediate(() => { throw err; }); });`;
  return new Worker(bootstrap, { eval: true, workerData: data });
}

export class SqliteEventSink implements EventSink {
  private readonly worker: Worker;
  private readonly batchSize: number;
  private readonly flushIntervalMs: number;
  private readonly log: (line: string) => void;
  /**
   * Buffered events, as the flat rows of `event-rows.ts`: cloning them for the worker costs this
   * thread less than cloning event objects, and about a third of what `JSON.stringify` did. The
   * worker rebuilds each event and serialises it for its row.
   */
  private buffer: unknown[] = [];
  private buffered = 0;
  private timer: NodeJS.Timeout | null = null;
  private nextId = 1;
  private inFlight = 0;
  private readonly waiters = new Map<number, Waiter>();
  /** Batch or prune failures acknowledged since the last sync ack. */
  private failuresSinceSync = 0;
  private loggedWriteError = false;
  private dead: Error | null = null;
  private closing: Promise<void> | null = null;
  private exited: Promise<void>;

  constructor(dataDir: string, opts: SqliteEventSinkOptions = {}) {
    this.batchSize = opts.batchSize ?? 2048;
    this.flushIntervalMs = opts.flushIntervalMs ?? 100;
    this.log = opts.log ?? ((line) => process.stderr.write(`${line}\n`));
    this.worker = startWorker({ dataDir });
    this.worker.unref();
    this.worker.on('message', (ack: WorkerAck) => this.onAck(ack));
    this.worker.on('error', (err) => this.onDeath(err));
    this.exited = new Promise((resolve) => {
      this.worker.once('exit', (code) => {
        if (!this.closing) this.onDeath(new Error(`event store worker exited with code ${code}`));
        resolve();
      });
    });
  }

  record(event: GatewayEvent): void {
    if (this.dead || this.closing) return;
    pushEvent(this.buffer, event);
    if (++this.buffered >= this.batchSize) {
      this.sendBuffer();
    } else if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.sendBuffer();
      }, this.flushIntervalMs);
      this.timer.unref();
    }
  }

  /** Resolves once the worker has committed every event recorded before this call. */
  flush(): Promise<void> {
    this.sendBuffer();
    return this.request({ type: 'sync' });
  }

  prune(olderThanMs: number): void {
    if (this.dead || this.closing) return;
    this.post({ type: 'prune', olderThanMs });
  }

  /** Flushes, closes the database and stops the worker. Never rejects; idempotent. */
  close(): Promise<void> {
    if (!this.closing) {
      this.closing = (async () => {
        if (!this.dead) {
          try {
            this.sendBuffer();
            await this.request({ type: 'close' });
          } catch {
            // Already reported through the log.
          }
        }
        const timeout = setTimeout(() => void this.worker.terminate(), 1000);
        await this.exited;
        clearTimeout(timeout);
      })();
    }
    return this.closing;
  }

  private sendBuffer(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (!this.buffered || this.dead) return;
    const rows = this.buffer;
    this.buffer = [];
    this.buffered = 0;
    this.post({ type: 'batch', rows });
  }

  private post(req: Request): number {
    const id = this.nextId++;
    if (this.inFlight++ === 0) this.worker.ref();
    try {
      this.worker.postMessage({ ...req, id } as WorkerRequest);
    } catch (err) {
      // An event the worker cannot receive (a value that cannot be cloned): the batch fails like a
      // failed write, reported through the usual ack path.
      const error = err instanceof Error ? err.message : String(err);
      queueMicrotask(() => this.onAck({ id, type: req.type, error }));
    }
    return id;
  }

  private request(req: Request): Promise<void> {
    if (this.dead) return Promise.reject(this.dead);
    return new Promise((resolve, reject) => {
      const id = this.post(req);
      this.waiters.set(id, { resolve, reject });
    });
  }

  private onAck(ack: WorkerAck): void {
    if (--this.inFlight === 0) this.worker.unref();
    if (ack.error) {
      this.failuresSinceSync++;
      if (!this.loggedWriteError) {
        this.loggedWriteError = true;
        this.log(`kt: event store ${ack.type} failed: ${ack.error} (further write errors are not logged)`);
      }
    }
    const waiter = this.waiters.get(ack.id);
    if (!waiter) return;
    this.waiters.delete(ack.id);
    const failures = this.failuresSinceSync;
    if (ack.type === 'sync' || ack.type === 'close') this.failuresSinceSync = 0;
    if (failures > 0) waiter.reject(new Error(`event store: ${failures} write(s) failed`));
    else waiter.resolve();
  }

  private onDeath(err: Error): void {
    if (this.dead) return;
    this.dead = err;
    this.log(`kt: event store worker failed, events will not be recorded: ${err.message}`);
    this.buffer = [];
    this.buffered = 0;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    for (const w of this.waiters.values()) w.reject(err);
    this.waiters.clear();
    this.inFlight = 0;
    this.worker.unref();
  }
}

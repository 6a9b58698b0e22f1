/**
 * The load generator, in its own process so it never shares an event loop with a server under test.
 * bench/run.ts forks it and sends one `LoadSpec` per phase over IPC; it answers with a `LoadResult`.
 *
 * - closed loop: `connections` workers, each sending its next request as soon as the previous one
 *   has been answered, for `warmupMs` (not measured) then `durationMs` (measured). Throughput is the
 *   responses completed inside the measured window divided by its length.
 * - open loop: requests are sent on a fixed schedule (`rate` per second) whatever the responses do,
 *   over at most `connections` keep-alive connections, so a slow server cannot slow the offered load
 *   down (no coordinated omission). Latency is measured from the moment a request is handed to the
 *   client; the lag of the sender behind its schedule is reported next to it, so a busy generator
 *   shows up instead of hiding.
 *
 * Latency is the time to the last byte of the response body, in ms, from performance.now().
 * Why not autocannon: it records latency in whole milliseconds and its rate limit is a throttled
 * closed loop; the 0.5 ms target needs sub-millisecond resolution and a real open loop.
 */
import { Pool } from 'undici';
import { Samples, summarize, type LatencySummary } from './stats.ts';

export interface LoadSpec {
  /** Origin, e.g. http://127.0.0.1:41002 */
  origin: string;
  path: string;
  /** Header sets, used in turn (request i gets headers[i % length]). */
  headers: Record<string, string>[];
  body: string;
  mode: 'closed' | 'open';
  connections: number;
  warmupMs: number;
  durationMs: number;
  /** Open loop: requests per second. */
  rate?: number;
}

export interface LoadResult {
  mode: 'closed' | 'open';
  /** Length of the measured window, ms. */
  windowMs: number;
  /** Responses (any status) completed inside the measured window. */
  completed: number;
  /** ... of which 2xx. */
  ok: number;
  /** Responses per second inside the window (2xx only). */
  rps: number;
  /** Every response and failure of the phase (warm-up, window and tail) by status; 'error' = no response. */
  statuses: Record<string, number>;
  /** 2xx responses over the whole phase, warm-up included (for per-request accounting of a backend). */
  okTotal: number;
  /** All responses over the whole phase. */
  total: number;
  errorSamples: string[];
  latency: LatencySummary;
  /** Open loop: requests offered per second inside the window. */
  offeredRps?: number;
  /** Open loop: how late requests were sent relative to their schedule, ms. */
  sendLag?: LatencySummary;
  /** Open loop: latency measured from the scheduled send time (includes send lag). */
  latencyFromSchedule?: LatencySummary;
}

type Msg = { type: 'run'; id: number; spec: LoadSpec } | { type: 'jitter'; id: number; durationMs: number } | { type: 'exit' };

/** How late a 1 ms timer fires in this (otherwise idle) process: the resolution of any latency measured here. */
function timerJitter(durationMs: number): Promise<LatencySummary> {
  const late = new Samples();
  return new Promise((resolve) => {
    const end = performance.now() + durationMs;
    let last = performance.now();
    const tick = () => {
      const now = performance.now();
      late.push(Math.max(0, now - last - 1));
      last = now;
      if (now < end) setTimeout(tick, 1);
      else resolve(summarize(late.view()));
    };
    setTimeout(tick, 1);
  });
}

const STATUS_SAMPLE_LIMIT = 5;

class Tally {
  statuses: Record<string, number> = {};
  errorSamples: string[] = [];
  okTotal = 0;
  total = 0;
  count(status: number | 'error', detail?: string): void {
    const k = String(status);
    this.statuses[k] = (this.statuses[k] ?? 0) + 1;
    this.total++;
    if (typeof status === 'number' && status >= 200 && status < 300) this.okTotal++;
    else if (detail && this.errorSamples.length < STATUS_SAMPLE_LIMIT) this.errorSamples.push(`${k}: ${detail.slice(0, 300)}`);
  }
}

/** Sends one request; resolves with the status (or 'error') and the error text if any. */
async function send(pool: Pool, spec: LoadSpec, headers: Record<string, string>): Promise<{ status: number | 'error'; detail?: string }> {
  try {
    const r = await pool.request({ path: spec.path, method: 'POST', headers, body: spec.body });
    if (r.statusCode >= 200 && r.statusCode < 300) {
      await r.body.arrayBuffer();
      return { status: r.statusCode };
    }
    return { status: r.statusCode, detail: await r.body.text() };
  } catch (err) {
    return { status: 'error', detail: (err as Error).message };
  }
}

async function closedLoop(spec: LoadSpec): Promise<LoadResult> {
  const pool = new Pool(spec.origin, { connections: spec.connections, pipelining: 1, keepAliveTimeout: 60_000, headersTimeout: 10_000, bodyTimeout: 10_000 });
  const tally = new Tally();
  const lat = new Samples();
  const t0 = performance.now();
  const windowStart = t0 + spec.warmupMs;
  const windowEnd = windowStart + spec.durationMs;
  let seq = 0;
  let completed = 0;
  let ok = 0;
  const worker = async () => {
    for (;;) {
      const s = performance.now();
      if (s >= windowEnd) return;
      const r = await send(pool, spec, spec.headers[seq++ % spec.headers.length]!);
      const e = performance.now();
      tally.count(r.status, r.detail);
      if (e >= windowStart && e <= windowEnd) {
        completed++;
        if (typeof r.status === 'number' && r.status >= 200 && r.status < 300) {
          ok++;
          lat.push(e - s);
        }
      }
    }
  };
  await Promise.all(Array.from({ length: spec.connections }, worker));
  await pool.close();
  return {
    mode: 'closed',
    windowMs: spec.durationMs,
    completed,
    ok,
    rps: (ok * 1000) / spec.durationMs,
    statuses: tally.statuses,
    okTotal: tally.okTotal,
    total: tally.total,
    errorSamples: tally.errorSamples,
    latency: summarize(lat.view()),
  };
}

async function openLoop(spec: LoadSpec): Promise<LoadResult> {
  const rate = spec.rate ?? 1000;
  const pool = new Pool(spec.origin, { connections: spec.connections, pipelining: 1, keepAliveTimeout: 60_000, headersTimeout: 10_000, bodyTimeout: 10_000 });
  const tally = new Tally();
  const interval = 1000 / rate;
  const warmN = Math.round((spec.warmupMs * rate) / 1000);
  const total = warmN + Math.round((spec.durationMs * rate) / 1000);
  const lat = new Samples();
  const fromSchedule = new Samples();
  const lag = new Samples();
  let ok = 0;
  let completed = 0;
  let pending = 0;
  let i = 0;
  const start = performance.now() + 2;
  await new Promise<void>((resolve) => {
    const fire = (index: number, scheduled: number) => {
      pending++;
      const s = performance.now();
      const measured = index >= warmN;
      if (measured) lag.push(s - scheduled);
      void send(pool, spec, spec.headers[index % spec.headers.length]!).then((r) => {
        const e = performance.now();
        pending--;
        tally.count(r.status, r.detail);
        if (measured) {
          completed++;
          if (typeof r.status === 'number' && r.status >= 200 && r.status < 300) {
            ok++;
            lat.push(e - s);
            fromSchedule.push(e - scheduled);
          }
        }
        if (i >= total && pending === 0) resolve();
      });
    };
    const tick = () => {
      const now = performance.now();
      while (i < total && start + i * interval <= now) {
        fire(i, start + i * interval);
        i++;
      }
      // Timers fire no sooner than 1 ms: requests due in between go out together on the next tick.
      if (i < total) setTimeout(tick, Math.max(0, start + i * interval - performance.now()));
      else if (pending === 0) resolve();
    };
    setTimeout(tick, 2);
  });
  await pool.close();
  return {
    mode: 'open',
    windowMs: spec.durationMs,
    completed,
    ok,
    rps: (ok * 1000) / spec.durationMs,
    offeredRps: ((total - warmN) * 1000) / spec.durationMs,
    statuses: tally.statuses,
    okTotal: tally.okTotal,
    total: tally.total,
    errorSamples: tally.errorSamples,
    latency: summarize(lat.view()),
    sendLag: summarize(lag.view()),
    latencyFromSchedule: summarize(fromSchedule.view()),
  };
}

if (!process.send) {
  process.stderr.write('bench/loadgen.ts is started by bench/run.ts (it needs an IPC channel)\n');
  process.exit(2);
}
// The parent is gone: nothing left to measure for.
process.on('disconnect', () => process.exit(0));
process.on('message', (m: Msg) => {
  if (m.type === 'exit') {
    process.disconnect();
    return;
  }
  const run = m.type === 'jitter' ? timerJitter(m.durationMs) : m.spec.mode === 'open' ? openLoop(m.spec) : closedLoop(m.spec);
  run.then(
    (result) => process.send!({ type: 'result', id: m.id, result }),
    (err: Error) => process.send!({ type: 'error', id: m.id, message: err.stack ?? String(err) }),
  );
});
process.send({ type: 'ready' });

/**
 * `npm run bench:redis-sync`: what one quota-slice sync costs Redis as sliding windows fill up.
 *
 * `npm run bench` runs each target for about 12 s, so a 60 s sliding window there holds at most a
 * dozen of its 60 quanta; a counter busy for a minute or more holds all 60, and the sync script reads
 * every one of them. This benchmark drives the real RedisLimitStore on a manual clock (client time
 * mode) through 70 simulated seconds of the all-tiers benchmark's per-user counters: every 50 ms
 * each of 100 users makes one admission (rpm, tpm and a token limit, sliding 60 s windows, and a
 * concurrency pool), settles it, and the store syncs. Around sampled syncs it reads Redis's own
 * `INFO commandstats` (the script's CPU time in Redis, `usec` of EVALSHA) and reports it per sync
 * and per sync entry against how many quanta the windows hold.
 *
 *   node --import tsx bench/redis-sync.ts [--users 100] [--redis-url redis://127.0.0.1:6379/0]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { ManualClock } from '../src/core/clock.ts';
import type { CounterRequest } from '../src/limits/store.ts';
import { RedisLimitStore } from '../src/limits/stores/redis/redis-limit-store.ts';
import { RedisProbe } from './redis-stats.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const { values } = parseArgs({ options: { users: { type: 'string', default: '100' }, 'redis-url': { type: 'string', default: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379/0' } } });
const USERS = Number(values.users);
const WINDOW_MS = 60_000;
const STEP_MS = 50;
const SECONDS = 70;
/** Simulated seconds after which syncs are sampled: quanta held by each window then. */
const SAMPLE_AT_S = [2, 5, 12, 30, 61, 69];
const SAMPLES_PER_POINT = 5;
const BIG = 1_000_000_000;
const log = (s: string) => process.stderr.write(`${s}\n`);

interface Point {
  simulatedS: number;
  quantaPerWindow: number;
  entries: number;
  redisMsPerSync: number;
  redisUsPerEntry: number;
  /** CPU of this process (the gateway's side: building the call, sending it, applying the answer). */
  clientMsPerSync: number;
}

async function evalshaUsec(probe: RedisProbe): Promise<{ calls: number; usec: number }> {
  const text = await probe.client.info('commandstats');
  const m = /cmdstat_evalsha:calls=(\d+),usec=(\d+)/.exec(text);
  return { calls: Number(m?.[1] ?? 0), usec: Number(m?.[2] ?? 0) };
}

async function main(): Promise<void> {
  const connected = await RedisProbe.connect(values['redis-url']);
  if ('error' in connected) {
    log(`redis-sync benchmark: ${connected.error}`);
    process.exit(2);
  }
  const probe = connected.probe;
  const prefix = `kt:bench-sync:${process.pid}:`;
  const client = new Redis(values['redis-url'], { maxRetriesPerRequest: 0 });
  // A 60 s quantum grid starting on a quantum boundary, so every simulated second is one quantum.
  const clock = new ManualClock(Math.ceil(Date.now() / 1000) * 1000);
  const store = new RedisLimitStore({ client, keyPrefix: prefix, timeMode: 'client', commandTimeoutMs: 5_000, syncIntervalMs: 3_600_000, clock: () => clock.nowMs() });
  const countersOf = (u: number): CounterRequest[] => [
    { key: `user:rpm:sliding_window:${WINDOW_MS}|alice/u${u}`, algorithm: 'sliding_window', limit: BIG, windowMs: WINDOW_MS, cost: 1, shadow: false },
    { key: `user:tpm:sliding_window:${WINDOW_MS}|alice/u${u}`, algorithm: 'sliding_window', limit: BIG, windowMs: WINDOW_MS, cost: 50, shadow: false },
    { key: `named:token_limits.gold-tokens#0:sliding_window:${WINDOW_MS}|alice/u${u}`, algorithm: 'sliding_window', limit: BIG, windowMs: WINDOW_MS, cost: 50, shadow: false },
    { key: `user:max_parallel_requests:concurrency:0|alice/u${u}`, algorithm: 'concurrency', limit: 100_000, windowMs: 0, cost: 1, shadow: false },
  ];
  const users = Array.from({ length: USERS }, (_, u) => countersOf(u));
  const points: Point[] = [];
  let seq = 0;
  let sample: { at: number; usec: number; cpu: number; entries: number; n: number } | null = null;
  const t0 = performance.now();
  try {
    for (let step = 0; step < (SECONDS * 1000) / STEP_MS; step++) {
      for (const counters of users) {
        const leaseId = `L${++seq}`;
        const r = await store.acquire({ nowMs: clock.nowMs(), counters, leaseId, leaseTtlMs: 30_000 });
        if (!r.admitted) throw new Error('refused: the limits are far above what this benchmark sends');
        await store.settle({
          nowMs: clock.nowMs(),
          atMs: r.atMs,
          adjustments: counters.filter((c) => c.cost === 50).map((c) => ({ key: c.key, algorithm: c.algorithm, windowMs: c.windowMs, limit: c.limit, delta: -10 })),
          leaseKeys: [counters[3]!.key],
          leaseId,
        });
      }
      const simulatedS = (step * STEP_MS) / 1000;
      const at = SAMPLE_AT_S.find((s) => simulatedS >= s && simulatedS < s + (SAMPLES_PER_POINT * STEP_MS) / 1000);
      const before = at === undefined ? null : await evalshaUsec(probe);
      const cpu0 = process.cpuUsage();
      await store.sync();
      const cpu = process.cpuUsage(cpu0);
      if (at !== undefined && before) {
        const after = await evalshaUsec(probe);
        if (after.calls - before.calls !== 1) throw new Error(`expected one script call per sync, saw ${after.calls - before.calls}`);
        if (!sample || sample.at !== at) sample = { at, usec: 0, cpu: 0, entries: 0, n: 0 };
        sample.usec += after.usec - before.usec;
        sample.cpu += cpu.user + cpu.system;
        sample.entries += USERS * 4;
        sample.n++;
        if (sample.n === SAMPLES_PER_POINT) {
          const quanta = (await client.hkeys(`${store.keyHead}${users[0]![0]!.key}`)).filter((f) => /^\d+$/.test(f)).length;
          points.push({ simulatedS: at, quantaPerWindow: quanta, entries: USERS * 4, redisMsPerSync: sample.usec / 1000 / sample.n, redisUsPerEntry: sample.usec / sample.entries, clientMsPerSync: sample.cpu / 1000 / sample.n });
          log(`  after ${String(at).padStart(2)} s: ${String(quanta).padStart(2)} quanta per window, ${(sample.usec / 1000 / sample.n).toFixed(2)} ms of Redis per sync (${(sample.usec / sample.entries).toFixed(1)} µs per entry), ${(sample.cpu / 1000 / sample.n).toFixed(2)} ms of client CPU`);
        }
      }
      clock.advance(STEP_MS);
    }
  } finally {
    await store.close();
    await client.quit();
    await probe.deletePrefix(prefix);
    await probe.close();
  }
  const first = points[0]!;
  const last = points[points.length - 1]!;
  const lines = [
    `Redis time per sync, ${USERS} users × 3 sliding 60 s windows + a pool (${USERS * 4} entries), ${SECONDS} simulated s in ${((performance.now() - t0) / 1000).toFixed(0)} s:`,
    ...points.map((p) => `  ${String(p.quantaPerWindow).padStart(2)} quanta per window: ${p.redisMsPerSync.toFixed(2).padStart(6)} ms per sync, ${p.redisUsPerEntry.toFixed(1).padStart(5)} µs per entry; client CPU ${p.clientMsPerSync.toFixed(2)} ms per sync`),
    `  full windows cost ${(last.redisMsPerSync / first.redisMsPerSync).toFixed(1)}× the nearly empty ones; at one sync per 50 ms that is ${((last.redisMsPerSync / STEP_MS) * 100).toFixed(0)}% of a Redis core.`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  const dir = join(ROOT, 'bench/results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `redis-sync-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify({ users: USERS, windowMs: WINDOW_MS, stepMs: STEP_MS, points }, null, 2));
  process.stdout.write(`results: ${file}\n`);
}

main().catch((err: Error) => {
  log(err.stack ?? String(err));
  process.exit(1);
});

/**
 * RedisLimitStore against the shared LimitStore contract (client time mode, driven by a ManualClock),
 * plus what only Redis has: a differential run against MemoryLimitStore (same operations, same
 * answers, to the last bit of a fractional bucket level), NOSCRIPT recovery, server time, and a
 * bounded failure when Redis does not answer.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { createServer as createNetServer, connect, type AddressInfo } from 'node:net';
import { ManualClock } from '../../src/core/clock.ts';
import { MemoryLimitStore } from '../../src/limits/stores/memory/memory-limit-store.ts';
import { RedisLimitStore } from '../../src/limits/stores/redis/redis-limit-store.ts';
import { createRedisClient, waitUntilReady } from '../../src/limits/stores/redis/redis-client.ts';
import { LimitStoreUnavailableError, type CounterRequest, type LimitStore } from '../../src/limits/store.ts';
import type { Algorithm } from '../../src/limits/types.ts';
import { quantumMs } from '../../src/limits/algorithms/sliding-window.ts';
import { limitStoreContract } from './limit-store.contract.ts';
import { REDIS_URL, deleteKeysUnder, freePort, keysUnder, requireRedis, testPrefix } from '../helpers/redis.ts';
import { eventually } from '../helpers/harness.ts';

const haveRedis = await requireRedis('RedisLimitStore (LimitStore contract)');
const prefix = testPrefix('contract');
const slicedPrefix = testPrefix('contract-sliced');
let client: Redis | undefined;

function shared(): Redis {
  client ??= new Redis(REDIS_URL, { enableOfflineQueue: true, maxRetriesPerRequest: 1, commandTimeout: 2_000 });
  return client;
}

after(async () => {
  if (!client) return;
  await deleteKeysUnder(client, prefix);
  await deleteKeysUnder(client, slicedPrefix);
  await client.quit();
});

if (haveRedis) {
  limitStoreContract('RedisLimitStore (LimitStore contract, client time)', async () => ({
    store: new RedisLimitStore({ client: shared(), keyPrefix: prefix, timeMode: 'client', commandTimeoutMs: 2_000 }),
    clock: new ManualClock(),
    cleanup: async () => {},
  }));
  // The same contract with quota slices (sync_interval_ms): the store syncs after every call, so the
  // counters a test uses hold slices from the second call on and most admissions are decided locally.
  // The slice share is raised to a fifth of the limit so that the suite's small limits get slices.
  limitStoreContract('RedisLimitStore with quota slices (LimitStore contract, client time)', async () => {
    const clock = new ManualClock();
    const store = new RedisLimitStore({ client: shared(), keyPrefix: slicedPrefix, timeMode: 'client', commandTimeoutMs: 2_000, syncIntervalMs: 60_000, maxSliceFraction: 1, sliceCeiling: 1, clock: () => clock.nowMs() });
    return { store: syncingAfterEveryCall(store), clock, cleanup: () => store.close() };
  });
} else describe('RedisLimitStore (LimitStore contract, client time)', { skip: 'no Redis' }, () => {});

/**
 * The store, syncing with Redis before and after each acquire and settle (as if sync_interval_ms were
 * ~0: the tests move the clock between calls, and local estimates are as old as the last sync).
 */
function syncingAfterEveryCall(store: RedisLimitStore): LimitStore {
  return {
    kind: store.kind,
    acquire: async (input) => {
      await store.sync();
      const r = await store.acquire(input);
      await store.sync();
      return r;
    },
    settle: async (input) => {
      await store.sync();
      await store.settle(input);
      await store.sync();
    },
    renewLeases: (nowMs, keys, leaseId, ttl) => store.renewLeases(nowMs, keys, leaseId, ttl),
    close: () => store.close(),
  };
}

/** A seeded PRNG (mulberry32), so a failing differential run can be replayed. */
/** A concurrency counter's members in Redis, with their expiry scores. */
async function poolMembers(store: RedisLimitStore, key: string): Promise<Map<string, number>> {
  const flat = await shared().zrange(store.keyHead + key, 0, -1, 'WITHSCORES');
  const out = new Map<string, number>();
  for (let i = 0; i < flat.length; i += 2) out.set(flat[i]!, Number(flat[i + 1]));
  return out;
}

function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('RedisLimitStore specifics', { skip: !haveRedis }, () => {
  let redis: RedisLimitStore;
  let plainStore: RedisLimitStore;
  before(() => {
    redis = plainStore = new RedisLimitStore({ client: shared(), keyPrefix: prefix, timeMode: 'client', commandTimeoutMs: 2_000 });
  });

  for (const [seed, sliced] of [[1, false], [2, false], [3, false], [4, true], [5, true], [6, true]] as const) {
    it(`decides exactly as MemoryLimitStore over a random mix of operations (seed ${seed}${sliced ? ', quota slices' : ''})`, async () => {
      const rand = rng(seed);
      const clock = new ManualClock(1_700_000_000_000 + seed * 7_919);
      // With slices: as large as allowed, and a sync after every call, so most decisions are local.
      const slicedStore = sliced ? new RedisLimitStore({ client: shared(), keyPrefix: slicedPrefix, timeMode: 'client', commandTimeoutMs: 2_000, syncIntervalMs: 60_000, maxSliceFraction: 1, sliceCeiling: 1, clock: () => clock.nowMs() }) : undefined;
      const redis = slicedStore ? syncingAfterEveryCall(slicedStore) : plainStore;
      // A pool member's TTL runs from its grant, not from the admission that borrows it (it is lent
      // with at least half its TTL left, and renewed from then on): leases that are never renewed
      // expire earlier than the memory store's. The sliced runs use leases that never lapse.
      const ttl = sliced ? 100_000_000 : 3_000;
      const memory = new MemoryLimitStore();
      const tag = `diff-${seed}-${Date.now()}`;
      const windows = [1_000, 7_777, 60_000];
      const counters: CounterRequest[] = [];
      for (const algorithm of ['sliding_window', 'fixed_window', 'token_bucket', 'concurrency'] as Algorithm[])
        for (let i = 0; i < 3; i++) {
          const windowMs = algorithm === 'concurrency' ? 0 : windows[i]!;
          counters.push({ key: `named:${tag}-${i}:${algorithm}:${windowMs}|s`, algorithm, limit: (sliced ? [3, 6, 12] : [3, 10, 97])[i]!, windowMs, cost: 1, shadow: i === 2 && algorithm !== 'concurrency' && rand() < 0.3 });
        }
      const admissions: { atMs: number; picked: CounterRequest[]; leaseId: string }[] = [];
      const both = async <T>(f: (s: LimitStore) => Promise<T>): Promise<[T, T]> => [await f(memory), await f(redis)];
      // Time moves by random amounts and, half the time, onto an edge: the instant a quantum is
      // forgotten (k*g + W), a fixed window's boundary (k*W), or one ms either side of it.
      const seen = { admitted: 0, refused: 0 };
      const nextEdge = (now: number): number => {
        const w = windows[Math.floor(rand() * windows.length)]!;
        const step = rand() < 0.5 ? quantumMs(w) : w;
        const offset = step === w ? 0 : w % step;
        const k = Math.floor((now - offset) / step) + 1;
        return k * step + offset + [0, 0, -1, 1][Math.floor(rand() * 4)]!;
      };
      for (let step = 0; step < 500; step++) {
        const target = rand() < 0.5 ? clock.nowMs() + Math.floor(rand() ** 3 * (sliced ? 500 : 5_000)) : nextEdge(clock.nowMs());
        clock.advance(Math.max(0, target - clock.nowMs()));
        const now = clock.nowMs();
        const r = rand();
        if (r < 0.7 || admissions.length === 0) {
          // Slices cover small costs: the sliced runs use 0-2 units per counter, and fewer counters.
          const picked = counters
            .filter(() => rand() < (sliced ? 0.2 : 0.35))
            .map((c) => ({ ...c, cost: c.algorithm === 'concurrency' ? 1 : Math.floor(rand() * (sliced ? 3 : c.limit / 2 + 1)) }));
          const leaseId = `lease-${step}`;
          const [m, x] = await both((s) => s.acquire({ nowMs: now, counters: picked, leaseId, leaseTtlMs: ttl }));
          assert.deepEqual(x, m, `acquire at step ${step}`);
          seen[m.admitted ? 'admitted' : 'refused']++;
          if (m.admitted) admissions.push({ atMs: m.atMs, picked, leaseId });
        } else if (r < 0.9) {
          const a = admissions.splice(Math.floor(rand() * admissions.length), 1)[0]!;
          const adjustments = a.picked
            .filter((c) => c.algorithm !== 'concurrency')
            .map((c) => ({ key: c.key, algorithm: c.algorithm, windowMs: c.windowMs, limit: c.limit, delta: Math.floor(rand() * 2 * c.limit) - 2 * c.cost }));
          const leaseKeys = a.picked.filter((c) => c.algorithm === 'concurrency').map((c) => c.key);
          await both((s) => s.settle({ nowMs: now, atMs: a.atMs, adjustments, leaseKeys, leaseId: a.leaseId }));
        } else {
          const a = admissions[Math.floor(rand() * admissions.length)]!;
          const leaseKeys = a.picked.filter((c) => c.algorithm === 'concurrency').map((c) => c.key);
          await both((s) => s.renewLeases(now, leaseKeys, a.leaseId, ttl));
        }
      }
      assert.ok(seen.admitted > 50 && seen.refused > (sliced ? 15 : 50), `a mix of admissions and refusals: ${JSON.stringify(seen)}`);
      if (slicedStore) {
        assert.ok(slicedStore.admissions.local + slicedStore.admissions.partial > 30, `slices decided admissions: ${JSON.stringify(slicedStore.admissions)}`);
        await slicedStore.close();
      }
    });
  }

  it('reloads its scripts by itself after SCRIPT FLUSH (NOSCRIPT)', async () => {
    const c: CounterRequest = { key: `named:flush-${Date.now()}:sliding_window:60000|s`, algorithm: 'sliding_window', limit: 5, windowMs: 60_000, cost: 1, shadow: false };
    const nowMs = Date.now();
    assert.equal((await redis.acquire({ nowMs, counters: [c], leaseId: '', leaseTtlMs: 1 })).results[0]!.remaining, 4);
    await shared().script('FLUSH');
    assert.equal((await redis.acquire({ nowMs, counters: [c], leaseId: '', leaseTtlMs: 1 })).results[0]!.remaining, 3);
  });

  it('reads a sliding window stored without its kept total (quanta only) and adds the total', async () => {
    const key = `named:legacy-${Date.now()}:sliding_window:60000|s`;
    const nowMs = 1_800_000_030_000; // quanta of 1 s: this is quantum 1_800_000_030
    const full = redis.keyHead + key;
    await shared().hset(full, '1799999960', '3', '1799999990', '4', '1800000029', '2'); // 1799999960 has expired
    await shared().pexpire(full, 60_000);
    const c: CounterRequest = { key, algorithm: 'sliding_window', limit: 10, windowMs: 60_000, cost: 1, shadow: false };
    const r = await redis.acquire({ nowMs, counters: [c], leaseId: '', leaseTtlMs: 1 });
    assert.deepEqual([r.admitted, r.results[0]!.remaining, r.results[0]!.resetAtMs], [true, 3, 1_800_000_091_000]);
    assert.deepEqual(await shared().hgetall(full), { '1799999990': '4', '1800000029': '2', '1800000030': '1', t: '7', o: '1799999970', n: '1800000030' });
    // From then on the kept total decides: three more fit, the fourth is refused until quantum 1799999990 goes.
    for (const admitted of [true, true, true, false]) assert.equal((await redis.acquire({ nowMs, counters: [c], leaseId: '', leaseTtlMs: 1 })).admitted, admitted);
    const refused = await redis.acquire({ nowMs, counters: [c], leaseId: '', leaseTtlMs: 1 });
    assert.equal(refused.results[0]!.retryAfterMs, 1_800_000_051_000 - nowMs);
  });

  it('a sliding window whose oldest-quantum bound lags far behind is read whole, not walked quantum by quantum', async () => {
    const key = `named:lagging-${Date.now()}:sliding_window:60000|s`;
    const nowMs = 1_800_000_030_000;
    const full = redis.keyHead + key;
    // A bound 1.8 billion quanta back (as a skewed client clock could leave): walking it would stall Redis.
    await shared().hset(full, '1799999990', '4', '1800000029', '2', 't', '6', 'o', '1000', 'n', '1800000029');
    await shared().pexpire(full, 60_000);
    const c: CounterRequest = { key, algorithm: 'sliding_window', limit: 10, windowMs: 60_000, cost: 1, shadow: false };
    const r = await redis.acquire({ nowMs, counters: [c], leaseId: '', leaseTtlMs: 1 });
    assert.deepEqual([r.admitted, r.results[0]!.remaining], [true, 3]);
    assert.deepEqual(await shared().hgetall(full), { '1799999990': '4', '1800000029': '2', '1800000030': '1', t: '7', o: '1799999970', n: '1800000030' });
  });

  it("server time mode decides with Redis's clock and reports it as atMs", async () => {
    const server = new RedisLimitStore({ client: shared(), keyPrefix: prefix, timeMode: 'server' });
    const c: CounterRequest = { key: `named:server-${Date.now()}:fixed_window:60000|s`, algorithm: 'fixed_window', limit: 5, windowMs: 60_000, cost: 1, shadow: false };
    const res = await server.acquire({ nowMs: 0, counters: [c], leaseId: '', leaseTtlMs: 1 });
    assert.equal(res.admitted, true);
    assert.ok(Math.abs(res.atMs - Date.now()) < 5_000, `atMs ${res.atMs} is the server's now`);
    await server.settle({ nowMs: 0, atMs: res.atMs, adjustments: [{ key: c.key, algorithm: c.algorithm, windowMs: c.windowMs, limit: c.limit, delta: 2 }], leaseKeys: [], leaseId: '' });
    assert.equal((await server.acquire({ nowMs: 0, counters: [c], leaseId: '', leaseTtlMs: 1 })).results[0]!.remaining, 1);
  });

  it('every key it writes has an expiry; keys share one hash tag', async () => {
    const keys = await keysUnder(shared(), prefix);
    assert.ok(keys.length > 0);
    for (const k of keys) {
      assert.ok(k.startsWith(`${prefix}{kt}`), k);
      const ttl = await shared().pttl(k);
      // -2: the key expired between the listing and this call.
      assert.ok(ttl > 0 || ttl === -2, `${k} has PTTL ${ttl}`);
    }
  });

  it('fails with LimitStoreUnavailableError, fast, when nothing answers', async () => {
    const port = await freePort();
    const dead = new Redis({ port, host: '127.0.0.1', lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null });
    dead.on('error', () => undefined);
    const store = new RedisLimitStore({ client: dead, keyPrefix: prefix, commandTimeoutMs: 100, ownsClient: true });
    const t0 = performance.now();
    await assert.rejects(
      store.acquire({ nowMs: Date.now(), counters: [{ key: 'k', algorithm: 'sliding_window', limit: 1, windowMs: 1_000, cost: 1, shadow: false }], leaseId: '', leaseTtlMs: 1 }),
      LimitStoreUnavailableError,
    );
    await assert.rejects(store.probe(), LimitStoreUnavailableError);
    assert.ok(performance.now() - t0 < 500);
    await store.close();
  });

  it('an event loop held up past command_timeout_ms does not fail calls Redis answered in time', async () => {
    // The gateway's own client settings: the deadline is the store's, not ioredis's.
    const { client: own } = createRedisClient({ enabled: true, redis_url: REDIS_URL, command_timeout_ms: 100 }, {});
    assert.ok(await waitUntilReady(own, 2_000), 'connected');
    const store = new RedisLimitStore({ client: own, keyPrefix: prefix, timeMode: 'client', commandTimeoutMs: 100, ownsClient: true });
    const busy = (ms: number) => {
      // A synchronous stretch, as a long GC pause or a descheduled VM holds the event loop.
      const until = performance.now() + ms;
      while (performance.now() < until);
    };
    try {
      const pinged = store.probe();
      busy(300);
      await pinged;
      const acquired = store.acquire({ nowMs: Date.now(), counters: [{ key: 'held-up', algorithm: 'sliding_window', limit: 5, windowMs: 60_000, cost: 1, shadow: false }], leaseId: '', leaseTtlMs: 1 });
      busy(300);
      const r = await acquired;
      assert.equal(r.admitted, true);
      assert.equal(r.results[0]!.remaining, 4);
    } finally {
      await store.close();
    }
  });
});

describe('RedisLimitStore with batched settlements (sync_interval_ms)', { skip: !haveRedis }, () => {
  it('queues token settlements, sends them together, and applies them exactly as one by one', async () => {
    const clock = new ManualClock();
    const batched = new RedisLimitStore({ client: shared(), keyPrefix: `${prefix}batch:`, timeMode: 'client', commandTimeoutMs: 2_000, syncIntervalMs: 60_000, clock: () => clock.nowMs() });
    const counter = (key: string): CounterRequest => ({ key, algorithm: 'sliding_window', limit: 1000, windowMs: 60_000, cost: 10, shadow: false });
    const now = clock.nowMs();
    const a = await batched.acquire({ nowMs: now, counters: [counter('tpm|u1')], leaseId: '', leaseTtlMs: 1000 });
    assert.equal(a.results[0]!.remaining, 990);
    for (let i = 0; i < 3; i++)
      await batched.settle({ nowMs: now, atMs: a.atMs, adjustments: [{ key: 'tpm|u1', algorithm: 'sliding_window', windowMs: 60_000, limit: 1000, delta: 100 }], leaseKeys: [], leaseId: '' });
    // Queued, not yet written: the counter still shows the reservation only.
    const before = await batched.acquire({ nowMs: now, counters: [{ ...counter('tpm|u1'), cost: 0 }], leaseId: '', leaseTtlMs: 1000 });
    assert.equal(before.results[0]!.remaining, 990);
    await batched.sync();
    const after = await batched.acquire({ nowMs: now, counters: [{ ...counter('tpm|u1'), cost: 0 }], leaseId: '', leaseTtlMs: 1000 });
    assert.equal(after.results[0]!.remaining, 690);
  });

  it('a sync after SCRIPT FLUSH loads its script again and writes keys outside ASCII under their own names', async () => {
    const clock = new ManualClock();
    const batched = new RedisLimitStore({ client: shared(), keyPrefix: `${prefix}batch3:`, timeMode: 'client', commandTimeoutMs: 2_000, syncIntervalMs: 60_000, clock: () => clock.nowMs() });
    const key = `tpm|jürgen/日本-${Date.now()}`;
    const c: CounterRequest = { key, algorithm: 'sliding_window', limit: 1000, windowMs: 60_000, cost: 10, shadow: false };
    const now = clock.nowMs();
    const a = await batched.acquire({ nowMs: now, counters: [c], leaseId: '', leaseTtlMs: 1000 });
    await batched.settle({ nowMs: now, atMs: a.atMs, adjustments: [{ key, algorithm: 'sliding_window', windowMs: 60_000, limit: 1000, delta: 25 }], leaseKeys: [], leaseId: '' });
    await shared().script('FLUSH');
    await batched.sync();
    assert.equal(batched.syncs, 1);
    const { t } = await shared().hgetall(batched.keyHead + key);
    assert.equal(t, '35', 'the reservation and the settlement, under the key as named');
    const after = await batched.acquire({ nowMs: now, counters: [{ ...c, cost: 0 }], leaseId: '', leaseTtlMs: 1000 });
    assert.equal(after.results[0]!.remaining, 965);
    await batched.close();
  });

  it('releases leases at once, never batched', async () => {
    const clock = new ManualClock();
    const batched = new RedisLimitStore({ client: shared(), keyPrefix: `${prefix}batch2:`, timeMode: 'client', commandTimeoutMs: 2_000, syncIntervalMs: 60_000, clock: () => clock.nowMs() });
    const slot: CounterRequest = { key: 'par|u1', algorithm: 'concurrency', limit: 1, windowMs: 0, cost: 1, shadow: false };
    const now = clock.nowMs();
    const a = await batched.acquire({ nowMs: now, counters: [slot], leaseId: 'L1', leaseTtlMs: 30_000 });
    assert.equal(a.admitted, true);
    await batched.settle({ nowMs: now, atMs: a.atMs, adjustments: [], leaseKeys: ['par|u1'], leaseId: 'L1' });
    const b = await batched.acquire({ nowMs: now, counters: [slot], leaseId: 'L2', leaseTtlMs: 30_000 });
    assert.equal(b.admitted, true, 'the slot came back without a flush');
  });
});

describe('RedisLimitStore quota slices across instances', { skip: !haveRedis }, () => {
  /**
   * The units a sliding-window counter holds in Redis (every live quantum), checked against the
   * total the scripts keep beside the quanta.
   */
  async function unitsInRedis(store: RedisLimitStore, key: string): Promise<number> {
    const { t, o, n, ...quanta } = await shared().hgetall(store.keyHead + key);
    const qs = Object.keys(quanta).map(Number);
    const sum = Object.values(quanta).reduce((s, v) => s + Number(v), 0);
    assert.equal(Number(t ?? 0), sum, `the kept total of ${key} is the sum of its quanta`);
    if (qs.length) {
      assert.equal(Number(n), Math.max(...qs), 'n is the newest quantum');
      assert.ok(Number(o) <= Math.min(...qs), 'no quantum is older than o');
    }
    return sum;
  }

  // A 60 s interval: slices live within their one-second quanta. A 200 ms interval: grants in the last
  // 400 ms of a quantum are counted from the next one (the test crosses twenty quantum ends).
  for (const syncIntervalMs of [60_000, 200])
  it(`three instances never admit past the limit, and every unit is accounted for once they sync (sync_interval_ms ${syncIntervalMs})`, async () => {
    const clock = new ManualClock(1_800_000_000_000);
    const stores = [0, 1, 2].map(() => new RedisLimitStore({ client: shared(), keyPrefix: slicedPrefix, timeMode: 'client', commandTimeoutMs: 2_000, syncIntervalMs, clock: () => clock.nowMs() }));
    const key = `named:spread-${Date.now()}:sliding_window:60000|s`;
    const limit = 3_000; // 1 % slices of 30 units, granted while the counter is under 1500
    const c: CounterRequest = { key, algorithm: 'sliding_window', limit, windowMs: 60_000, cost: 1, shadow: false };
    let admitted = 0;
    let refused = 0;
    for (let step = 0; step < 4_000; step++) {
      // Instances take turns unevenly; each syncs every 10 of its own admissions, time moves 5 ms a step.
      const s = stores[step % 7 < 4 ? 0 : step % 7 < 6 ? 1 : 2]!;
      const r = await s.acquire({ nowMs: clock.nowMs(), counters: [c], leaseId: '', leaseTtlMs: 30_000 });
      if (r.admitted) admitted++;
      else refused++;
      if (step % 10 === 0) await s.sync();
      clock.advance(5);
      // Redis counts every admitted unit (plus unspent slices) at every step: never less.
      if (step % 97 === 0) assert.ok((await unitsInRedis(s, key)) >= admitted, `step ${step}: Redis holds at least what was admitted`);
      assert.ok(admitted <= limit, `never more than the limit (step ${step})`);
    }
    const local = stores.reduce((n, s) => n + s.admissions.local, 0);
    assert.equal(admitted, limit, `exactly the limit is admitted (${refused} refused)`);
    assert.ok(local > 1_000, `most of the first half came from slices (${local} local admissions)`);
    for (const s of stores) await s.close(); // gives every unspent unit back
    assert.equal(await unitsInRedis(stores[0]!, key), admitted, 'after the final sync Redis holds exactly what was admitted');
  });

  /** A store syncing only when told, and one sliding-window counter to take from one request at a time. */
  function oneCounter(name: string) {
    const clock = new ManualClock(1_800_000_000_000);
    const store = new RedisLimitStore({ client: shared(), keyPrefix: slicedPrefix, timeMode: 'client', commandTimeoutMs: 2_000, syncIntervalMs: 60_000, clock: () => clock.nowMs() });
    const key = `named:${name}-${Date.now()}:sliding_window:60000|s`;
    const c: CounterRequest = { key, algorithm: 'sliding_window', limit: 100_000, windowMs: 60_000, cost: 1, shadow: false };
    const take = async () => assert.ok((await store.acquire({ nowMs: clock.nowMs(), counters: [c], leaseId: '', leaseTtlMs: 30_000 })).admitted);
    const syncs = async (n: number) => {
      for (let i = 0; i < n; i++) await store.sync();
    };
    return { store, key, take, syncs };
  }

  it('a counter seen in one interval gets no slice; one used every few intervals gets one and keeps it', async () => {
    const { store, key, take, syncs } = oneCounter('sparse');
    await take(); // no slice: Redis decides
    await syncs(1);
    assert.equal(await unitsInRedis(store, key), 1, 'no slice for a counter seen once: nothing is held for it');
    await syncs(4); // four quiet intervals: it is forgotten
    await take();
    await syncs(1);
    assert.equal(await unitsInRedis(store, key), 2, 'forgotten after four quiet intervals: still no slice');
    await take(); // back in the next interval
    await syncs(1); // it came back: a slice
    assert.ok((await unitsInRedis(store, key)) > 3, 'a slice is held');
    assert.deepEqual(store.admissions, { local: 0, redis: 3, partial: 0 });
    await take();
    await syncs(4); // one busy interval, then three quiet ones
    await take();
    assert.deepEqual(store.admissions, { local: 2, redis: 3, partial: 0 }, 'the slice outlived three quiet intervals');
    await store.close();
    assert.equal(await unitsInRedis(store, key), 5);
  });

  it('a counter that keeps coming back keeps its slice through longer quiet stretches, up to twenty intervals', async () => {
    const { store, key, take, syncs } = oneCounter('regular');
    await take(); // Redis decides
    await syncs(1);
    await take(); // Redis again
    await syncs(1); // it came back: a slice
    await take();
    assert.deepEqual(store.admissions, { local: 1, redis: 2, partial: 0 });
    await syncs(12); // busy, then eleven quiet intervals: a counter that comes back keeps its slice
    await take();
    assert.deepEqual(store.admissions, { local: 2, redis: 2, partial: 0 }, 'the slice outlived eleven quiet intervals');
    await syncs(21); // busy, then twenty quiet intervals: the slice goes back
    assert.equal(await unitsInRedis(store, key), 4, 'Redis holds exactly what was admitted');
    await take();
    assert.deepEqual(store.admissions, { local: 2, redis: 3, partial: 0 });
    await store.close();
    assert.equal(await unitsInRedis(store, key), 5);
  });

  it('a slice with units to spare is only read at a sync: it keeps its units, still learns what other instances used, and settlements in its quantum are settled in it', async () => {
    const Q = quantumMs(3_600_000);
    const clock = new ManualClock(Math.ceil(1_800_000_000_000 / Q) * Q + 1_000);
    // Regular syncs 10 s apart (none comes during the test); a one-hour window counts in one-minute
    // quanta, so the slice stays spendable past the next two intervals.
    const a = new RedisLimitStore({ client: shared(), keyPrefix: slicedPrefix, timeMode: 'client', commandTimeoutMs: 2_000, syncIntervalMs: 10_000, clock: () => clock.nowMs() });
    const b = new RedisLimitStore({ client: shared(), keyPrefix: slicedPrefix, timeMode: 'client', commandTimeoutMs: 2_000 }); // no slices
    const key = `named:read-${Date.now()}:sliding_window:3600000|s`;
    const limit = 1_000_000;
    const c: CounterRequest = { key, algorithm: 'sliding_window', limit, windowMs: 3_600_000, cost: 1, shadow: false };
    const take = async (s: RedisLimitStore, cost = 1) => {
      const r = await s.acquire({ nowMs: clock.nowMs(), counters: [{ ...c, cost }], leaseId: '', leaseTtlMs: 30_000 });
      assert.ok(r.admitted);
      return r;
    };
    for (let i = 0; i < 10; i++) await take(a); // no slice yet: Redis decides each
    await a.sync(); // a slice of twice the interval's demand and two costs: 22 units
    assert.equal(await unitsInRedis(a, key), 32);
    await take(a);
    await a.sync(); // 21 units left, about the top-up level: only read
    assert.equal(await unitsInRedis(a, key), 32, 'nothing given back or granted');
    await take(b, 1_000); // another instance uses 1000 units
    const r = await take(a);
    // 5 tokens more than reserved, booked in the slice's quantum: taken from the slice itself.
    await a.settle({ nowMs: clock.nowMs(), atMs: r.atMs, adjustments: [{ key, algorithm: c.algorithm, windowMs: c.windowMs, limit, delta: 5 }], leaseKeys: [], leaseId: '' });
    assert.equal(await unitsInRedis(a, key), 1_032, 'the settlement needed nothing from Redis');
    clock.advance(1_000);
    await a.sync(); // read again: learns of the 1000 units
    const seen = await take(a);
    assert.equal(seen.results[0]!.remaining, limit - (13 + 5 + 1_000), 'remaining after one sync counts every unit used anywhere');
    assert.deepEqual(a.admissions, { local: 3, redis: 10, partial: 0 });
    await take(a);
    await a.sync(); // the fourth in a row: given back and granted again
    assert.ok((await unitsInRedis(a, key)) >= 14 + 5 + 1_000);
    await a.close(); // gives every unspent unit back
    assert.equal(await unitsInRedis(a, key), 14 + 5 + 1_000, 'after the final sync Redis holds exactly what was used');
    await b.close();
  });

  it('a concurrency counter seen in one interval gets no pool; once it comes back it gets one', async () => {
    const clock = new ManualClock(1_800_000_000_000);
    const store = new RedisLimitStore({ client: shared(), keyPrefix: slicedPrefix, timeMode: 'client', commandTimeoutMs: 2_000, syncIntervalMs: 60_000, clock: () => clock.nowMs() });
    const key = `named:pool-once-${Date.now()}:concurrency:0|s`;
    const c: CounterRequest = { key, algorithm: 'concurrency', limit: 400, windowMs: 0, cost: 1, shadow: false };
    let seq = 0;
    const oneRequest = async () => {
      const leaseId = `once-${++seq}`;
      const r = await store.acquire({ nowMs: clock.nowMs(), counters: [c], leaseId, leaseTtlMs: 30_000 });
      assert.ok(r.admitted);
      await store.settle({ nowMs: clock.nowMs(), atMs: r.atMs, adjustments: [], leaseKeys: [key], leaseId });
    };
    const held = () => shared().zcard(store.keyHead + key);
    await oneRequest(); // decided and released in Redis
    await store.sync();
    assert.equal(await held(), 0, 'no pool for a counter seen in one interval');
    await oneRequest(); // back in the next interval
    await store.sync();
    assert.ok((await held()) > 0, 'a pool once it came back');
    await oneRequest();
    assert.deepEqual(store.admissions, { local: 1, redis: 2, partial: 0 });
    await store.close();
    assert.equal(await held(), 0, 'the pool went back at close');
  });

  it('a pool replaces its members before they go back, so its requests never fall back to Redis', async () => {
    const T0 = 1_800_000_000_000;
    const clock = new ManualClock(T0);
    const store = new RedisLimitStore({ client: shared(), keyPrefix: slicedPrefix, timeMode: 'client', commandTimeoutMs: 2_000, syncIntervalMs: 60_000, clock: () => clock.nowMs() });
    const key = `named:pool-rotate-${Date.now()}:concurrency:0|s`;
    const c: CounterRequest = { key, algorithm: 'concurrency', limit: 400, windowMs: 0, cost: 1, shadow: false };
    const ttl = 30_000;
    let seq = 0;
    const oneRequest = async () => {
      const leaseId = `rotate-${++seq}`;
      const r = await store.acquire({ nowMs: clock.nowMs(), counters: [c], leaseId, leaseTtlMs: ttl });
      assert.ok(r.admitted);
      await store.settle({ nowMs: clock.nowMs(), atMs: r.atMs, adjustments: [], leaseKeys: [key], leaseId });
    };
    const members = () => poolMembers(store, key);
    for (let i = 0; i < 2; i++) {
      await oneRequest();
      await store.sync(); // seen in two intervals: a pool, granted at T0
    }
    const first = await members();
    assert.ok(first.size >= 2, `a pool of ${first.size} members`);
    const inRedis = store.admissions.redis;

    clock.advance(13_000); // past 40 % of the members' life, but more than half of it left
    await oneRequest();
    const local = store.admissions.local;
    const syncing = store.sync();
    await oneRequest(); // while the sync that renews the pool is under way
    assert.equal(store.admissions.local, local + 1, 'a request during the renewal took an old member');
    await syncing;
    const both = await members();
    const fresh = [...both.keys()].filter((m) => !first.has(m));
    assert.ok([...first.keys()].every((m) => both.has(m)), 'the old members are kept until their replacements have come');
    assert.equal(fresh.length, first.size, 'as many new members as the pool held');
    for (const m of fresh) assert.equal(both.get(m), T0 + 13_000 + ttl);
    await oneRequest();

    clock.advance(50);
    await store.sync();
    const after = await members();
    assert.deepEqual([...after.keys()].sort(), fresh.sort(), 'the old members went back with the next sync');
    await oneRequest();
    assert.equal(store.admissions.redis, inRedis, 'every request after the pool came was decided from it');
    await store.close();
    assert.equal(await shared().zcard(store.keyHead + key), 0, 'the whole pool went back at close');
  });

  it('a pool of thousands of members is granted in one sync and given back in one', async () => {
    const clock = new ManualClock(1_800_000_000_000);
    const store = new RedisLimitStore({ client: shared(), keyPrefix: slicedPrefix, timeMode: 'client', commandTimeoutMs: 5_000, syncIntervalMs: 60_000, clock: () => clock.nowMs() });
    const key = `named:pool-big-${Date.now()}:concurrency:0|s`;
    const c: CounterRequest = { key, algorithm: 'concurrency', limit: 1_000_000, windowMs: 0, cost: 1, shadow: false };
    const held = () => shared().zcard(store.keyHead + key);
    const leases: { leaseId: string; atMs: number }[] = [];
    // Requests that all stay in flight: each interval uses the whole pool and one more, so the pool
    // doubles with every sync, until one grant names more members (two values each) than one Lua
    // call can unpack (8000).
    let granted = 0;
    for (let round = 0; round < 14 && granted <= 4_000; round++) {
      const redisBefore = store.admissions.redis;
      while (store.admissions.redis === redisBefore) {
        const leaseId = `big-${leases.length}`;
        const r = await store.acquire({ nowMs: clock.nowMs(), counters: [c], leaseId, leaseTtlMs: 30_000 });
        assert.ok(r.admitted);
        leases.push({ leaseId, atMs: r.atMs });
      }
      const before = await held();
      await store.sync();
      granted = (await held()) - before;
    }
    assert.ok(granted > 4_000, `the last sync granted ${granted} members (${leases.length} requests in flight)`);
    assert.equal(await held(), leases.length + granted, 'Redis counts every request in flight and the free members');
    for (const l of leases) await store.settle({ nowMs: clock.nowMs(), atMs: l.atMs, adjustments: [], leaseKeys: [key], leaseId: l.leaseId });
    await store.close();
    assert.equal(await held(), 0, 'every member went back at close, in one sync');
  });

  it("a long request's pool member is renewed in Redis at once and outlives its first expiry", async () => {
    const T0 = 1_800_000_000_000;
    const clock = new ManualClock(T0);
    const store = new RedisLimitStore({ client: shared(), keyPrefix: slicedPrefix, timeMode: 'client', commandTimeoutMs: 2_000, syncIntervalMs: 60_000, clock: () => clock.nowMs() });
    const key = `named:pool-renew-${Date.now()}:concurrency:0|s`;
    const c: CounterRequest = { key, algorithm: 'concurrency', limit: 400, windowMs: 0, cost: 1, shadow: false };
    const ttl = 30_000;
    const admit = async (leaseId: string) => {
      const r = await store.acquire({ nowMs: clock.nowMs(), counters: [c], leaseId, leaseTtlMs: ttl });
      assert.ok(r.admitted);
      return r;
    };
    const members = () => poolMembers(store, key);
    // Seen in two intervals: a pool, granted at T0.
    for (const id of ['first', 'second']) {
      const r = await admit(id);
      await store.settle({ nowMs: clock.nowMs(), atMs: r.atMs, adjustments: [], leaseKeys: [key], leaseId: id });
      await store.sync();
    }
    const granted = await members();
    assert.ok(granted.size >= 2, `a pool of ${granted.size} members`);
    for (const score of granted.values()) assert.equal(score, T0 + ttl);
    const long = await admit('long');
    assert.deepEqual(store.admissions, { local: 1, redis: 2, partial: 0 }, 'the long request holds a pool member');

    clock.advance(20_000);
    await store.renewLeases(clock.nowMs(), [key], 'long', ttl);
    // The renewal went out with a sync, which also gave back the free members past 40 % of their life.
    const kept = [...(await members())].filter(([name]) => granted.has(name));
    assert.equal(kept.length, 1, `of the first grant only the long request's member is left: ${JSON.stringify(kept)}`);
    assert.equal(kept[0]![1], T0 + 20_000 + ttl, 'renewed: it expires one TTL after the renewal');

    clock.advance(15_000); // past the first grant's expiry
    await store.sync();
    assert.equal((await members()).get(kept[0]![0]), T0 + 20_000 + ttl, 'the renewed member outlives its first expiry');
    await store.settle({ nowMs: clock.nowMs(), atMs: long.atMs, adjustments: [], leaseKeys: [key], leaseId: 'long' });
    await store.close();
    assert.equal(await shared().zcard(store.keyHead + key), 0, 'every member went back at close');
  });

  it('concurrency pools: in-flight requests never exceed the limit across instances, and slots all come back', async () => {
    const clock = new ManualClock(1_800_000_000_000);
    const stores = [0, 1].map(() => new RedisLimitStore({ client: shared(), keyPrefix: slicedPrefix, timeMode: 'client', commandTimeoutMs: 2_000, syncIntervalMs: 60_000, clock: () => clock.nowMs() }));
    const key = `named:pool-${Date.now()}:concurrency:0|s`;
    const limit = 400; // pools of up to 4 members, granted while under 200 in flight
    const c: CounterRequest = { key, algorithm: 'concurrency', limit, windowMs: 0, cost: 1, shadow: false };
    const inFlight: { store: RedisLimitStore; leaseId: string; atMs: number }[] = [];
    const rand = rng(42);
    let seq = 0;
    let maxInFlight = 0;
    for (let step = 0; step < 3_000; step++) {
      const store = stores[step % 2]!;
      if (rand() < 0.6 || inFlight.length === 0) {
        const leaseId = `L${++seq}`;
        const r = await store.acquire({ nowMs: clock.nowMs(), counters: [c], leaseId, leaseTtlMs: 30_000 });
        if (r.admitted) inFlight.push({ store, leaseId, atMs: r.atMs });
      } else {
        const t = inFlight.splice(Math.floor(rand() * inFlight.length), 1)[0]!;
        await t.store.settle({ nowMs: clock.nowMs(), atMs: t.atMs, adjustments: [], leaseKeys: [key], leaseId: t.leaseId });
      }
      maxInFlight = Math.max(maxInFlight, inFlight.length);
      assert.ok(inFlight.length <= limit, `never more than ${limit} in flight (step ${step})`);
      if (step % 5 === 0) await store.sync();
      clock.advance(2);
    }
    assert.equal(maxInFlight, limit, 'the limit was reached');
    assert.ok(stores[0]!.admissions.local + stores[1]!.admissions.local > 50, 'pools admitted requests');
    for (const t of inFlight.splice(0)) await t.store.settle({ nowMs: clock.nowMs(), atMs: t.atMs, adjustments: [], leaseKeys: [key], leaseId: t.leaseId });
    for (const s of stores) await s.close();
    assert.equal(await shared().zcard(stores[0]!.keyHead + key), 0, 'every slot and pool member came back');
  });
});

describe('RedisLimitStore quota slices at the end of a window', { skip: !haveRedis }, () => {
  // A one-hour sliding window counts in one-minute quanta: a slice is spendable until its quantum ends.
  const HOUR = 3_600_000;
  const Q = quantumMs(HOUR);

  /**
   * A store whose regular syncs (every 10 s) do not come during a test, with slices of a busy counter
   * whose quantum ends `beforeEndMs` from now. Grants within two intervals (20 s) of their quantum's
   * end are counted from the next quantum, unless `bookAheadMs` says otherwise.
   */
  async function sliced(beforeEndMs: number, client: Redis = shared(), commandTimeoutMs = 2_000, bookAheadMs?: number) {
    const clock = new ManualClock(Math.ceil(1_800_000_000_000 / Q) * Q + 7 * Q - beforeEndMs);
    const store = new RedisLimitStore({ client, keyPrefix: slicedPrefix, timeMode: 'client', commandTimeoutMs, syncIntervalMs: 10_000, bookAheadMs, clock: () => clock.nowMs() });
    const c: CounterRequest = { key: `named:edge-${Date.now()}-${beforeEndMs}:sliding_window:${HOUR}|s`, algorithm: 'sliding_window', limit: 1_000_000, windowMs: HOUR, cost: 1, shadow: false };
    const take = () => store.acquire({ nowMs: clock.nowMs(), counters: [c], leaseId: '', leaseTtlMs: 30_000 });
    for (let i = 0; i < 10; i++) assert.ok((await take()).admitted);
    await store.sync(); // demand seen: a slice is granted, spendable until the quantum ends
    assert.ok((await take()).admitted);
    assert.equal(store.admissions.local, 1, 'the slice covers the next admission');
    return { clock, store, take, key: store.keyHead + c.key };
  }

  it('a slice granted shortly before its quantum ends is counted from the next one: admissions across the end stay local, with no sync', async () => {
    const { clock, store, take, key } = await sliced(20);
    const end = clock.nowMs() + 20; // the current quantum's end
    const qNow = Math.floor(clock.nowMs() / Q);
    const held = await shared().hgetall(key);
    assert.equal(held[String(qNow)], '10', 'the ten admissions Redis decided are counted in this quantum');
    assert.ok(Number(held[String(qNow + 1)]) >= 2, `the slice's units, the one already spent included, are counted in the next quantum: ${JSON.stringify(held)}`);
    const syncs = store.syncs;
    clock.advance(30); // past the end: a slice counted in the quantum just ended could no longer be spent
    const r = await take();
    assert.ok(r.admitted);
    assert.equal(store.admissions.local, 2, 'decided from the slice');
    assert.equal(store.admissions.redis, 10);
    assert.equal(store.syncs, syncs, 'no sync was needed');
    assert.equal(r.results[0]!.resetAtMs, end + Q + HOUR, 'counted in the next quantum: back to the full limit when that quantum leaves the window');
    await store.close();
    const after = await shared().hgetall(key);
    assert.deepEqual(
      { now: after[String(qNow)], next: after[String(qNow + 1)], total: after.t },
      { now: '10', next: '2', total: '12' },
      'unspent units went back to the quantum they were counted in; the two slice admissions stay counted there',
    );
  });

  it('syncs right after a window quantum ends, so slices granted before it are refilled in the new one without waiting an interval', async () => {
    const { clock, store, take } = await sliced(20, shared(), 2_000, 0);
    const syncs = store.syncs;
    clock.advance(30); // the quantum has ended: the slice may no longer be spent
    // The regular sync is 10 s away; the one scheduled for the end of the quantum comes now.
    await eventually(() => store.syncs > syncs, 5_000, 5);
    const redisBefore = store.admissions.redis;
    assert.ok((await take()).admitted);
    assert.equal(store.admissions.redis, redisBefore, 'decided from the refilled slice, not in Redis');
    assert.equal(store.admissions.local, 2);
    await store.close();
  });

  it('an admission that finds its slice just expired waits for the sync under way instead of asking Redis', async () => {
    const { clock, store, take } = await sliced(30_000); // the sync scheduled for the quantum's end is 30 s away
    clock.advance(30_001);
    const syncing = store.sync(); // under way, sent after the quantum ended
    const redisBefore = store.admissions.redis;
    const r = await take();
    assert.ok(r.admitted);
    assert.equal(store.admissions.redis, redisBefore, 'no Redis call of its own');
    assert.equal(store.admissions.local, 2);
    await syncing;
    // Without a sync under way, an expired slice sends the admission to Redis as before.
    clock.advance(Q);
    assert.ok((await take()).admitted);
    assert.equal(store.admissions.redis, redisBefore + 1);
    await store.close();
  });

  it('when the sync under way fails, an admission waiting for it fails with it instead of asking Redis again', async () => {
    // Redis through a relay that can go silent: commands still arrive, answers no longer come back.
    let silent = false;
    let scriptsWhileSilent = 0;
    const relay = createNetServer((sock) => {
      const up = connect(new URL(REDIS_URL).port ? Number(new URL(REDIS_URL).port) : 6379, new URL(REDIS_URL).hostname);
      sock.on('data', (d) => {
        if (silent) scriptsWhileSilent += d.toString('latin1').split(/evalsha/i).length - 1;
        up.write(d);
      });
      up.on('data', (d) => {
        if (!silent) sock.write(d);
      });
      sock.on('error', () => up.destroy());
      up.on('error', () => sock.destroy());
      sock.on('close', () => up.destroy());
    });
    await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
    const own = new Redis({ host: '127.0.0.1', port: (relay.address() as AddressInfo).port, enableOfflineQueue: false, maxRetriesPerRequest: 0 });
    own.on('error', () => undefined);
    await new Promise((r) => own.once('ready', r));
    const { clock, store, take } = await sliced(30_000, own, 200);
    clock.advance(30_001);
    silent = true;
    const syncing = store.sync(); // will get no answer
    await assert.rejects(take(), LimitStoreUnavailableError);
    await syncing;
    assert.equal(scriptsWhileSilent, 1, 'only the sync reached Redis: the admission did not try again');
    own.disconnect();
    await store.close();
    relay.close();
  });
});

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/core/clock.ts';
import { MemoryLimitStore } from '../../src/limits/stores/memory/memory-limit-store.ts';
import type { CounterRequest } from '../../src/limits/store.ts';
import type { Algorithm } from '../../src/limits/types.ts';
import { limitStoreContract } from './limit-store.contract.ts';

limitStoreContract('MemoryLimitStore (LimitStore contract)', async () => ({
  store: new MemoryLimitStore(),
  clock: new ManualClock(),
  cleanup: async () => {},
}));

const W = 60_000;

function c(name: string, algorithm: Algorithm, limit: number, cost = 1, windowMs = W): CounterRequest {
  const w = algorithm === 'concurrency' ? 0 : windowMs;
  return { key: `named:${name}:${algorithm}:${w}|s`, algorithm, limit, windowMs: w, cost, shadow: false };
}

describe('MemoryLimitStore specifics', () => {
  it('sweep() reclaims idle counters of every kind once their windows have passed', () => {
    const clock = new ManualClock();
    const store = new MemoryLimitStore();
    const counters = [c('sw', 'sliding_window', 10), c('fw', 'fixed_window', 10), c('tb', 'token_bucket', 10), c('cc', 'concurrency', 10)];
    for (let i = 0; i < 50; i++) {
      const subject = counters.map((x) => ({ ...x, key: x.key.replace(/\|s$/, `|subject-${i}`) }));
      assert.equal(store.acquireSync({ nowMs: clock.nowMs(), counters: subject, leaseId: `l${i}`, leaseTtlMs: 5_000 }).admitted, true);
    }
    assert.equal(store.size(), 200);
    assert.equal(store.sweep(clock.nowMs()), 0, 'nothing is idle yet');
    assert.equal(store.size(), 200);
    clock.advance(2 * W + 1);
    assert.equal(store.sweep(clock.nowMs()), 200);
    assert.equal(store.size(), 0);
  });

  it('sweep() keeps live counters and reclaims only the idle ones', () => {
    const clock = new ManualClock();
    const store = new MemoryLimitStore();
    const old = [c('old-sw', 'sliding_window', 10), c('old-fw', 'fixed_window', 10), c('old-tb', 'token_bucket', 10)];
    store.acquireSync({ nowMs: clock.nowMs(), counters: old, leaseId: '', leaseTtlMs: 5_000 });
    clock.advance(W / 2);
    const live = [c('live-sw', 'sliding_window', 10), c('live-tb', 'token_bucket', 10, 10), c('live-cc', 'concurrency', 10)];
    store.acquireSync({ nowMs: clock.nowMs(), counters: live, leaseId: 'held', leaseTtlMs: 10 * W });
    // Past the old ones' windows, not the live ones'. The fixed window moved on for sure.
    clock.advance(W / 2 + 1_001);
    assert.equal(store.size(), 6);
    assert.equal(store.sweep(clock.nowMs()), 3);
    assert.equal(store.size(), 3, 'old sliding, fixed and full bucket reclaimed; live ones kept');
    // The live counters still count what they took.
    const one = (x: CounterRequest, leaseId = '') => store.acquireSync({ nowMs: clock.nowMs(), counters: [x], leaseId, leaseTtlMs: 10 * W }).results[0]!;
    assert.equal(one(live[0]!).remaining, 8);
    const bucket = one({ ...live[1]!, cost: 1 }).remaining; // drained, then refilled 31.001 s of 60 s
    assert.ok(bucket > 4.16 && bucket < 4.17, `bucket remaining ${bucket}`);
    assert.equal(one(live[2]!, 'held2').remaining, 8);
    // The old ones start over, with their full limit.
    const fresh = store.acquireSync({ nowMs: clock.nowMs(), counters: old, leaseId: '', leaseTtlMs: 5_000 });
    assert.deepEqual(
      fresh.results.map((r) => r.remaining),
      [9, 9, 9],
    );
  });

  it('sweep() works in batches and continues where it stopped', () => {
    const clock = new ManualClock();
    const store = new MemoryLimitStore({ sweepBatch: 7 });
    for (let i = 0; i < 30; i++) store.acquireSync({ nowMs: clock.nowMs(), counters: [c(`k${i}`, 'sliding_window', 5)], leaseId: '', leaseTtlMs: 1 });
    clock.advance(2 * W);
    let steps = 0;
    while (store.size() > 0 && steps < 20) {
      const removed = store.sweep(clock.nowMs());
      assert.ok(removed <= 7);
      steps++;
    }
    assert.equal(store.size(), 0);
    assert.ok(steps >= 5, `took ${steps} steps`);
  });

  it('sweep() reclaims expired leases but keeps renewed ones', async () => {
    const clock = new ManualClock();
    const store = new MemoryLimitStore();
    const cc = c('cc', 'concurrency', 5);
    store.acquireSync({ nowMs: clock.nowMs(), counters: [cc], leaseId: 'a', leaseTtlMs: 1_000 });
    store.acquireSync({ nowMs: clock.nowMs(), counters: [cc], leaseId: 'b', leaseTtlMs: 1_000 });
    clock.advance(900);
    await store.renewLeases(clock.nowMs(), [cc.key], 'a', 1_000);
    clock.advance(200);
    store.sweep(clock.nowMs());
    assert.equal(store.size(), 1);
    assert.equal(store.acquireSync({ nowMs: clock.nowMs(), counters: [cc], leaseId: 'c', leaseTtlMs: 1_000 }).results[0]!.remaining, 3, 'a and c');
    clock.advance(1_000);
    store.sweep(clock.nowMs());
    assert.equal(store.size(), 0);
  });

  it('a settlement for a reclaimed token bucket is still charged', () => {
    const clock = new ManualClock();
    const store = new MemoryLimitStore();
    const tb = c('tb', 'token_bucket', 100, 10, 1_000);
    const first = store.acquireSync({ nowMs: clock.nowMs(), counters: [tb], leaseId: '', leaseTtlMs: 1 });
    clock.advance(5_000); // a long stream: the bucket is full again and idle
    store.sweep(clock.nowMs());
    assert.equal(store.size(), 0);
    store.settleSync({ nowMs: clock.nowMs(), atMs: first.atMs, adjustments: [{ key: tb.key, algorithm: tb.algorithm, windowMs: tb.windowMs, limit: tb.limit, delta: 60 }], leaseKeys: [], leaseId: '' });
    const next = store.acquireSync({ nowMs: clock.nowMs(), counters: [{ ...tb, cost: 1 }], leaseId: '', leaseTtlMs: 1 });
    assert.equal(next.results[0]!.remaining, 39, 'the usage above the reservation is charged');
  });

  it('a settlement for a zero-cost reservation whose empty counter was reclaimed is still counted', () => {
    const clock = new ManualClock();
    const store = new MemoryLimitStore();
    for (const algorithm of ['sliding_window', 'fixed_window'] as const) {
      const k = c(`zero-${algorithm}`, algorithm, 100, 0);
      const first = store.acquireSync({ nowMs: clock.nowMs(), counters: [k], leaseId: '', leaseTtlMs: 1 });
      store.sweep(clock.nowMs()); // nothing counted yet: reclaimed
      store.settleSync({ nowMs: clock.nowMs(), atMs: first.atMs, adjustments: [{ key: k.key, algorithm, windowMs: k.windowMs, limit: k.limit, delta: 40 }], leaseKeys: [], leaseId: '' });
      const next = store.acquireSync({ nowMs: clock.nowMs(), counters: [k], leaseId: '', leaseTtlMs: 1 });
      assert.equal(next.results[0]!.remaining, 60, algorithm);
    }
  });

  it('sweep() with a metadata lookup handles keys it cannot parse', () => {
    const clock = new ManualClock();
    const store = new MemoryLimitStore();
    const k: CounterRequest = { key: 'opaque-key', algorithm: 'sliding_window', limit: 5, windowMs: 1_000, cost: 1, shadow: false };
    store.acquireSync({ nowMs: clock.nowMs(), counters: [k], leaseId: '', leaseTtlMs: 1 });
    clock.advance(5_000);
    assert.equal(store.sweep(clock.nowMs()), 0, 'unknown shape: kept');
    assert.equal(store.sweep(clock.nowMs(), () => ({ algorithm: 'sliding_window', windowMs: 1_000, limit: 5 })), 1);
    assert.equal(store.size(), 0);
  });
});

it('sweepWithin finishes a whole pass when the budget allows', () => {
  const store = new MemoryLimitStore({ sweepBatch: 100 });
  const t0 = 1_700_000_000_000;
  for (let i = 0; i < 5_000; i++)
    store.acquireSync({ nowMs: t0, leaseId: '', leaseTtlMs: 1000, counters: [{ key: `user:rpm:sliding_window:60000|u${i}`, algorithm: 'sliding_window', limit: 5, windowMs: 60_000, cost: 1, shadow: false }] });
  assert.equal(store.size(), 5_000);
  // 50 batches of 100 in one call, well inside a generous budget.
  assert.equal(store.sweepWithin(t0 + 62_000, 10_000), 5_000);
  assert.equal(store.size(), 0);
});

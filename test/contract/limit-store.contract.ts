/**
 * The LimitStore contract (see the header of src/limits/store.ts), as a node:test suite that every
 * store implementation runs unchanged:
 *
 *   limitStoreContract('memory', async () => ({ store: new MemoryLimitStore(), clock: new ManualClock(), cleanup: async () => {} }));
 *
 * Rules the suite keeps so that it can run against a shared backend (Redis):
 * - it only uses the `LimitStore` interface (and the `LimitEngine` on top of it);
 * - time moves only through the `nowMs` values it passes, taken from the `ManualClock` it is given
 *   and only ever advanced (never set back), so no test sleeps;
 * - every test uses counter keys with a fresh random prefix, so tests never see each other's state;
 * - expectations are relative to the clock's start, whatever it is (windows are aligned explicitly
 *   where a test needs a boundary).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { ManualClock } from '../../src/core/clock.ts';
import type { AcquireResult, CounterRequest, CounterResult, LimitStore } from '../../src/limits/store.ts';
import type { Algorithm, LimitDef, LimitUnit, PlannedLimit } from '../../src/limits/types.ts';
import { LimitEngine } from '../../src/limits/engine.ts';
import { quantumMs } from '../../src/limits/algorithms/sliding-window.ts';

export interface ContractFixture {
  store: LimitStore;
  clock: ManualClock;
  cleanup(): Promise<void>;
}

const MINUTE = 60_000;
const LEASE_TTL = 10_000;

/** Per-test key factory: `named:<prefix>-<name>:<algorithm>:<windowMs>|<subject>` (the shape plan.ts makes). */
function keys() {
  const prefix = `kt-contract-${randomBytes(6).toString('hex')}`;
  return (name: string, algorithm: Algorithm, windowMs: number, subject = 's') =>
    `named:${prefix}-${name}:${algorithm}:${algorithm === 'concurrency' ? 0 : windowMs}|${subject}`;
}

function counter(key: string, algorithm: Algorithm, limit: number, windowMs: number, cost = 1, shadow = false): CounterRequest {
  return { key, algorithm, limit, windowMs: algorithm === 'concurrency' ? 0 : windowMs, cost, shadow };
}

/** Checks the invariants every result must keep, whatever the algorithm. */
function checkSane(res: AcquireResult, counters: readonly CounterRequest[], nowMs: number): void {
  assert.equal(res.results.length, counters.length, 'one result per counter, in order');
  assert.equal(res.atMs, nowMs, 'the store decides at the nowMs it was given');
  let enforcedFit = true;
  for (let i = 0; i < counters.length; i++) {
    const c = counters[i]!;
    const r = res.results[i]!;
    assert.ok(r.remaining >= 0, `remaining never negative (${c.key}: ${r.remaining})`);
    assert.ok(r.remaining <= c.limit, `remaining never above the limit (${c.key}: ${r.remaining})`);
    assert.ok(r.resetAtMs >= nowMs, `resetAtMs >= now (${c.key}: ${r.resetAtMs} < ${nowMs})`);
    if (r.fits) assert.equal(r.retryAfterMs, 0, `a fitting counter has retryAfterMs 0 (${c.key})`);
    else assert.ok(r.retryAfterMs > 0, `a refusing counter has retryAfterMs > 0 (${c.key})`);
    if (!c.shadow && !r.fits) enforcedFit = false;
  }
  assert.equal(res.admitted, enforcedFit, 'admitted exactly when every enforced counter fits');
}

function def(prefix: string, name: string, unit: LimitUnit, limit: number, windowMs: number, algorithm: Algorithm, shadow = false): LimitDef {
  const w = algorithm === 'concurrency' ? 0 : windowMs;
  return { id: `named:${prefix}-${name}:${algorithm}:${w}`, scope: 'named', name, unit, limit, windowMs: w, algorithm, shadow };
}

function planned(d: LimitDef, subject = 's'): PlannedLimit {
  return { def: d, subject, key: `${d.id}|${subject}` };
}

export function limitStoreContract(name: string, makeStore: () => Promise<ContractFixture>): void {
  /** Runs `fn` with a fresh fixture, a fresh key prefix and sanity-checked acquire/settle helpers. */
  async function withStore(
    fn: (t: {
      store: LimitStore;
      clock: ManualClock;
      key: ReturnType<typeof keys>;
      prefix: string;
      acquire(counters: CounterRequest[], leaseId?: string, leaseTtlMs?: number): Promise<AcquireResult>;
      /** Acquires one counter alone and returns its result. */
      one(c: CounterRequest, leaseId?: string, leaseTtlMs?: number): Promise<CounterResult & { admitted: boolean; atMs: number }>;
      settle(atMs: number, adjustments: { c: CounterRequest; delta: number }[], leaseKeys?: string[], leaseId?: string): Promise<void>;
    }) => Promise<void>,
  ): Promise<void> {
    const fx = await makeStore();
    const { store, clock } = fx;
    const key = keys();
    const prefix = `kt-contract-${randomBytes(6).toString('hex')}`;
    let leaseSeq = 0;
    const acquire = async (counters: CounterRequest[], leaseId?: string, leaseTtlMs = LEASE_TTL) => {
      const nowMs = clock.nowMs();
      const res = await store.acquire({ nowMs, counters, leaseId: leaseId ?? `lease-${++leaseSeq}`, leaseTtlMs });
      checkSane(res, counters, nowMs);
      return res;
    };
    try {
      await fn({
        store,
        clock,
        key,
        prefix,
        acquire,
        async one(c, leaseId, leaseTtlMs) {
          const res = await acquire([c], leaseId, leaseTtlMs);
          return { ...res.results[0]!, admitted: res.admitted, atMs: res.atMs };
        },
        settle(atMs, adjustments, leaseKeys = [], leaseId = '') {
          return store.settle({
            nowMs: clock.nowMs(),
            atMs,
            adjustments: adjustments.map(({ c, delta }) => ({ key: c.key, algorithm: c.algorithm, windowMs: c.windowMs, limit: c.limit, delta })),
            leaseKeys,
            leaseId,
          });
        },
      });
    } finally {
      await fx.cleanup();
    }
  }

  /** Advances the clock to the next multiple of `windowMs` plus `offsetMs` (always forward). */
  function alignTo(clock: ManualClock, windowMs: number, offsetMs = 0): number {
    const now = clock.nowMs();
    let target = Math.floor(now / windowMs) * windowMs + windowMs + offsetMs;
    while (target <= now) target += windowMs;
    clock.advance(target - now);
    return target;
  }

  describe(name, () => {
    describe('request limits', () => {
      for (const algorithm of ['sliding_window', 'fixed_window', 'token_bucket'] as const) {
        it(`${algorithm}: admits exactly limit in a window, then refuses with a bounded retryAfterMs`, async () => {
          await withStore(async ({ clock, key, one }) => {
            const W = MINUTE;
            // Start a window well inside a fixed window, so the burst is not split by a boundary.
            alignTo(clock, W, 1_000);
            const c = counter(key('rpm', algorithm, W), algorithm, 5, W);
            for (let i = 0; i < 5; i++) {
              const r = await one(c);
              assert.equal(r.admitted, true, `request ${i + 1} of 5`);
              assert.equal(r.remaining, 4 - i);
            }
            for (let i = 0; i < 3; i++) {
              const r = await one(c);
              assert.equal(r.admitted, false, 'over the limit');
              assert.equal(r.fits, false);
              assert.equal(r.remaining, 0);
              assert.ok(r.retryAfterMs > 0 && r.retryAfterMs <= W + quantumMs(W), `retryAfterMs ${r.retryAfterMs}`);
            }
          });
        });
      }

      it('sliding_window: never forgets before the window has passed; retryAfterMs is honest', async () => {
        await withStore(async ({ clock, key, one }) => {
          for (const W of [MINUTE, 1_000, 7_777]) {
            const c = counter(key(`roll-${W}`, 'sliding_window', W), 'sliding_window', 3, W);
            const t0 = clock.nowMs();
            for (let i = 0; i < 3; i++) assert.equal((await one(c)).admitted, true);
            const refused = await one(c);
            assert.equal(refused.admitted, false);
            assert.ok(refused.retryAfterMs >= W, `retryAfterMs ${refused.retryAfterMs} must cover the whole window ${W}`);
            assert.ok(refused.retryAfterMs <= W + quantumMs(W), `retryAfterMs ${refused.retryAfterMs} at most one quantum late`);
            // Still refused at the last instant of the window, and just before the advertised retry.
            clock.advance(W - 1);
            assert.equal((await one(c)).admitted, false, 'refused inside the window');
            clock.advance(t0 + refused.retryAfterMs - 1 - clock.nowMs());
            if (clock.nowMs() > t0 + W - 1) assert.equal((await one(c)).admitted, false, 'refused until retryAfterMs');
            // At the advertised retry, the whole burst is forgotten.
            clock.advance(t0 + refused.retryAfterMs - clock.nowMs());
            for (let i = 0; i < 3; i++) assert.equal((await one(c)).admitted, true, `after retryAfterMs, request ${i + 1}`);
            assert.equal((await one(c)).admitted, false);
            clock.advance(2 * W + 1);
          }
        });
      });

      it('sliding_window: capacity comes back as old requests leave the window, not all at once', async () => {
        await withStore(async ({ clock, key, one }) => {
          const W = MINUTE;
          alignTo(clock, quantumMs(W));
          const c = counter(key('spread', 'sliding_window', W), 'sliding_window', 4, W);
          // Two requests at t0, two at t0 + W/2.
          const t0 = clock.nowMs();
          await one(c);
          await one(c);
          clock.advance(W / 2);
          await one(c);
          await one(c);
          assert.equal((await one(c)).admitted, false);
          // Once the first two have left (W + one quantum after t0), exactly two fit again.
          clock.advance(t0 + W + quantumMs(W) - clock.nowMs());
          assert.equal((await one(c)).admitted, true);
          const last = await one(c);
          assert.equal(last.admitted, true);
          assert.equal(last.remaining, 0);
          const refused = await one(c);
          assert.equal(refused.admitted, false);
          assert.ok(refused.retryAfterMs <= W / 2, `the next slot frees when the t0+W/2 pair leaves (${refused.retryAfterMs})`);
        });
      });

      it('fixed_window: resets at the aligned boundary, not before', async () => {
        await withStore(async ({ clock, key, one }) => {
          const W = MINUTE;
          const boundary = alignTo(clock, W, W - 10) + 10; // 10 ms before a boundary
          const c = counter(key('fixed', 'fixed_window', W), 'fixed_window', 3, W);
          for (let i = 0; i < 3; i++) assert.equal((await one(c)).admitted, true);
          const refused = await one(c);
          assert.equal(refused.admitted, false);
          assert.equal(refused.retryAfterMs, 10, 'retry at the boundary');
          assert.equal(refused.resetAtMs, boundary);
          clock.advance(9);
          assert.equal((await one(c)).admitted, false, 'last ms of the window');
          clock.advance(1);
          for (let i = 0; i < 3; i++) {
            const r = await one(c);
            assert.equal(r.admitted, true, `new window, request ${i + 1}`);
            assert.equal(r.resetAtMs, boundary + W);
          }
          const again = await one(c);
          assert.equal(again.admitted, false);
          assert.equal(again.retryAfterMs, W);
        });
      });

      it('token_bucket: allows a burst of limit, then refills gradually at limit per window', async () => {
        await withStore(async ({ clock, key, one }) => {
          const W = 1_000;
          const c = counter(key('bucket', 'token_bucket', W), 'token_bucket', 10, W); // one unit per 100 ms
          for (let i = 0; i < 10; i++) assert.equal((await one(c)).admitted, true);
          const refused = await one(c);
          assert.equal(refused.admitted, false);
          assert.equal(refused.retryAfterMs, 100, 'one unit refills in W / limit');
          assert.equal(refused.resetAtMs, clock.nowMs() + W, 'full again after a whole window');
          clock.advance(99);
          assert.equal((await one(c)).admitted, false, 'not yet one unit');
          clock.advance(1);
          assert.equal((await one(c)).admitted, true, 'one unit after 100 ms');
          assert.equal((await one(c)).admitted, false, 'and only one');
          clock.advance(500);
          for (let i = 0; i < 5; i++) assert.equal((await one(c)).admitted, true, `refilled unit ${i + 1} of 5`);
          assert.equal((await one(c)).admitted, false);
          // A long idle period fills the bucket only up to its limit.
          clock.advance(10 * W);
          for (let i = 0; i < 10; i++) assert.equal((await one(c)).admitted, true);
          assert.equal((await one(c)).admitted, false);
        });
      });

      for (const algorithm of ['sliding_window', 'fixed_window', 'token_bucket', 'concurrency'] as const) {
        it(`${algorithm}: a cost above the limit is refused with retryAfterMs = Infinity and takes nothing`, async () => {
          await withStore(async ({ clock, key, acquire, one }) => {
            const big = counter(key('big', algorithm, MINUTE), algorithm, 1, MINUTE, 2);
            const other = counter(key('other', 'sliding_window', MINUTE), 'sliding_window', 10, MINUTE);
            for (let round = 0; round < 3; round++) {
              const res = await acquire([other, big]);
              assert.equal(res.admitted, false);
              assert.equal(res.results[1]!.fits, false);
              assert.equal(res.results[1]!.retryAfterMs, Infinity);
              assert.equal(res.results[0]!.fits, true);
              clock.advance(5 * MINUTE);
            }
            assert.equal((await one(other)).remaining, 9, 'the fitting counter was never charged');
            assert.equal((await one({ ...big, cost: 1 })).remaining, 0, 'the refused counter was never charged either');
          });
        });
      }

      it('an untouched counter reports its full limit and resetAtMs = now', async () => {
        await withStore(async ({ clock, key, acquire }) => {
          const fresh = counter(key('fresh', 'sliding_window', MINUTE), 'sliding_window', 7, MINUTE);
          const full = counter(key('full', 'fixed_window', MINUTE), 'fixed_window', 1, MINUTE, 2);
          const res = await acquire([fresh, full]);
          assert.equal(res.admitted, false);
          assert.equal(res.results[0]!.remaining, 7);
          assert.equal(res.results[0]!.resetAtMs, clock.nowMs());
        });
      });
    });

    describe('all-or-nothing', () => {
      it('a counter that fits is not charged when another one refuses', async () => {
        await withStore(async ({ key, acquire, one }) => {
          const a = counter(key('a', 'sliding_window', MINUTE), 'sliding_window', 5, MINUTE);
          const b = counter(key('b', 'fixed_window', MINUTE), 'fixed_window', 1, MINUTE);
          const t = counter(key('t', 'token_bucket', MINUTE), 'token_bucket', 100, MINUTE, 30);
          const conc = counter(key('c', 'concurrency', 0), 'concurrency', 1, 0);
          assert.equal((await one(b)).admitted, true); // b is now full
          for (let i = 0; i < 3; i++) {
            const res = await acquire([a, t, conc, b], `refused-${i}`);
            assert.equal(res.admitted, false);
            assert.deepEqual(
              res.results.map((r) => r.fits),
              [true, true, true, false],
            );
            assert.equal(res.results[0]!.remaining, 5, 'refused: remaining is the current level');
            assert.equal(res.results[1]!.remaining, 100);
          }
          assert.equal((await one(a)).remaining, 4, 'a was never charged by the refused admissions');
          assert.equal((await one(t)).remaining, 70, 't was never charged by the refused admissions');
          const lease = await one(conc, 'mine');
          assert.equal(lease.admitted, true, 'no lease was recorded for the refused admissions');
          assert.equal(lease.remaining, 0);
        });
      });

      it('an admission charges every counter it names', async () => {
        await withStore(async ({ key, acquire }) => {
          const a = counter(key('a', 'sliding_window', MINUTE), 'sliding_window', 5, MINUTE);
          const b = counter(key('b', 'fixed_window', MINUTE), 'fixed_window', 100, MINUTE, 40);
          const t = counter(key('t', 'token_bucket', MINUTE), 'token_bucket', 100, MINUTE, 30);
          const conc = counter(key('c', 'concurrency', 0), 'concurrency', 2, 0);
          const first = await acquire([a, b, t, conc]);
          assert.equal(first.admitted, true);
          assert.deepEqual(
            first.results.map((r) => r.remaining),
            [4, 60, 70, 1],
          );
          const second = await acquire([a, b, t, conc]);
          assert.deepEqual(
            second.results.map((r) => r.remaining),
            [3, 20, 40, 0],
          );
          const third = await acquire([a, b, t, conc]);
          assert.equal(third.admitted, false);
          assert.deepEqual(
            third.results.map((r) => r.fits),
            [true, false, true, false],
          );
          assert.deepEqual(
            third.results.map((r) => r.remaining),
            [3, 20, 40, 0],
          );
        });
      });
    });

    describe('shadow counters', () => {
      it('never block, always count on admission, and report fits:false once over', async () => {
        await withStore(async ({ key, acquire }) => {
          const enforced = counter(key('enf', 'sliding_window', MINUTE), 'sliding_window', 10, MINUTE);
          const shadow = counter(key('shadow', 'sliding_window', MINUTE), 'sliding_window', 2, MINUTE, 1, true);
          const shadowBig = counter(key('shadow-big', 'token_bucket', MINUTE), 'token_bucket', 1, MINUTE, 5, true);
          const fits: boolean[] = [];
          for (let i = 0; i < 4; i++) {
            const res = await acquire([enforced, shadow, shadowBig]);
            assert.equal(res.admitted, true, `shadow limits never block (request ${i + 1})`);
            assert.equal(res.results[0]!.remaining, 9 - i);
            fits.push(res.results[1]!.fits);
            assert.equal(res.results[2]!.fits, false, 'a shadow cost above its limit is reported');
            assert.equal(res.results[2]!.remaining, 0);
          }
          assert.deepEqual(fits, [true, true, false, false], 'the shadow counter counts every admission');
        });
      });

      it('a shadow counter alone is always admitted', async () => {
        await withStore(async ({ key, one }) => {
          const shadow = counter(key('shadow', 'fixed_window', MINUTE), 'fixed_window', 1, MINUTE, 1, true);
          assert.equal((await one(shadow)).fits, true);
          const over = await one(shadow);
          assert.equal(over.admitted, true);
          assert.equal(over.fits, false);
          assert.equal(over.remaining, 0);
        });
      });

      it('a refused admission charges no shadow counter either', async () => {
        await withStore(async ({ key, acquire, one }) => {
          const shadow = counter(key('shadow', 'sliding_window', MINUTE), 'sliding_window', 5, MINUTE, 1, true);
          const full = counter(key('full', 'sliding_window', MINUTE), 'sliding_window', 1, MINUTE, 2);
          for (let i = 0; i < 3; i++) assert.equal((await acquire([shadow, full])).admitted, false);
          assert.equal((await one(shadow)).remaining, 4);
        });
      });
    });

    describe('token reservations and settlement', () => {
      for (const algorithm of ['sliding_window', 'fixed_window', 'token_bucket'] as const) {
        it(`${algorithm}: settle replaces the reservation by the actual usage`, async () => {
          await withStore(async ({ clock, key, one, settle }) => {
            alignTo(clock, MINUTE, 1_000);
            const c = counter(key('tpm', algorithm, MINUTE), algorithm, 1000, MINUTE, 300);
            const first = await one(c);
            assert.equal(first.admitted, true);
            assert.equal(first.remaining, 700);
            await settle(first.atMs, [{ c, delta: +200 }]); // used 500
            const second = await one({ ...c, cost: 100 });
            assert.equal(second.remaining, 400, 'a larger actual usage takes more');
            await settle(second.atMs, [{ c, delta: -100 }]); // used 0 of its 100: back to 500 in all
            const third = await one({ ...c, cost: 1 });
            assert.equal(third.remaining, 499, 'a smaller actual usage gives back');
            // Giving back more than was ever taken (the engine never does) must not push usage below zero.
            await settle(third.atMs, [{ c, delta: -1000 }]);
            const fourth = await one({ ...c, cost: 0 });
            assert.ok(fourth.remaining >= 499 && fourth.remaining <= 1000, `remaining ${fourth.remaining}`);
          });
        });
      }

      it('sliding_window: a settlement is counted at the admission time, so it leaves with it', async () => {
        await withStore(async ({ clock, key, one, settle }) => {
          const W = MINUTE;
          const c = counter(key('tpm', 'sliding_window', W), 'sliding_window', 1000, W, 300);
          const first = await one(c);
          clock.advance(W / 2);
          await settle(first.atMs, [{ c, delta: +200 }]);
          assert.equal((await one({ ...c, cost: 0 })).remaining, 500);
          // When the admission leaves the window, so does its settlement (it was not booked at settle time).
          clock.advance(first.atMs + W + quantumMs(W) - clock.nowMs());
          assert.equal((await one({ ...c, cost: 0 })).remaining, 1000);
        });
      });

      it('sliding_window: a settlement after the window moved on neither resurrects nor steals usage', async () => {
        await withStore(async ({ clock, key, one, settle }) => {
          const W = MINUTE;
          const c = counter(key('tpm', 'sliding_window', W), 'sliding_window', 1000, W, 300);
          const old1 = await one(c);
          const old2 = await one(c);
          clock.advance(W / 2);
          const recent = await one({ ...c, cost: 100 });
          assert.equal(recent.remaining, 300);
          clock.advance(old1.atMs + W + quantumMs(W) - clock.nowMs()); // the old ones have left, `recent` has not
          assert.equal((await one({ ...c, cost: 0 })).remaining, 900);
          await settle(old1.atMs, [{ c, delta: +500 }]);
          assert.equal((await one({ ...c, cost: 0 })).remaining, 900, 'late usage of an expired admission is not resurrected');
          await settle(old2.atMs, [{ c, delta: -300 }]);
          assert.equal((await one({ ...c, cost: 0 })).remaining, 900, 'a give-back of an expired admission does not reduce later usage');
          clock.advance(W);
          assert.equal((await one({ ...c, cost: 0 })).remaining, 1000);
        });
      });

      it('fixed_window: a settlement after the boundary does not touch the new window', async () => {
        await withStore(async ({ clock, key, one, settle }) => {
          const W = MINUTE;
          alignTo(clock, W, 1_000);
          const c = counter(key('tpm', 'fixed_window', W), 'fixed_window', 1000, W, 300);
          const a = await one(c);
          const b = await one(c);
          clock.advance(W); // next window
          const n = await one({ ...c, cost: 100 });
          assert.equal(n.remaining, 900);
          await settle(a.atMs, [{ c, delta: +500 }]);
          await settle(b.atMs, [{ c, delta: -300 }]);
          assert.equal((await one({ ...c, cost: 0 })).remaining, 900);
          // And a settlement within the window applies to it.
          await settle(n.atMs, [{ c, delta: +50 }]);
          assert.equal((await one({ ...c, cost: 0 })).remaining, 850);
        });
      });

      it('token_bucket: a settlement is charged when it arrives, after the refill so far', async () => {
        await withStore(async ({ clock, key, one, settle }) => {
          const W = 1_000;
          const c = counter(key('tpm', 'token_bucket', W), 'token_bucket', 100, W, 10);
          const first = await one(c);
          assert.equal(first.remaining, 90);
          clock.advance(W); // full again
          await settle(first.atMs, [{ c, delta: +50 }]);
          assert.equal((await one({ ...c, cost: 1 })).remaining, 49, 'the extra usage is not lost to the refill cap');
          // Debt: more usage than the bucket holds is repaid by refill before anything fits.
          const t = clock.nowMs();
          await settle(t, [{ c, delta: +149 }]); // level now -100
          const refused = await one({ ...c, cost: 1 });
          assert.equal(refused.admitted, false);
          assert.equal(refused.remaining, 0);
          assert.equal(refused.retryAfterMs, 1_010, '101 units at 0.1 per ms');
          clock.advance(1_010);
          assert.equal((await one({ ...c, cost: 1 })).admitted, true);
        });
      });
    });

    describe('concurrency', () => {
      it('admits limit leases, refuses the next, and a release frees one', async () => {
        await withStore(async ({ key, one, settle }) => {
          const c = counter(key('inflight', 'concurrency', 0), 'concurrency', 2, 0);
          const l1 = await one(c, 'l1');
          assert.equal(l1.admitted, true);
          assert.equal(l1.remaining, 1);
          assert.equal((await one(c, 'l2')).remaining, 0);
          const refused = await one(c, 'l3');
          assert.equal(refused.admitted, false);
          assert.ok(refused.retryAfterMs > 0 && Number.isFinite(refused.retryAfterMs));
          await settle(l1.atMs, [], [c.key], 'l1');
          const l3 = await one(c, 'l3');
          assert.equal(l3.admitted, true, 'released slot is free');
          assert.equal(l3.remaining, 0);
          assert.equal((await one(c, 'l4')).admitted, false);
          // Releasing twice, or releasing a lease that was never admitted, frees nothing more.
          await settle(l1.atMs, [], [c.key], 'l1');
          await settle(l1.atMs, [], [c.key], 'l4');
          assert.equal((await one(c, 'l5')).admitted, false);
        });
      });

      it('a lease that is not renewed expires after leaseTtlMs', async () => {
        await withStore(async ({ clock, key, one }) => {
          const c = counter(key('inflight', 'concurrency', 0), 'concurrency', 1, 0);
          assert.equal((await one(c, 'crashed', 1_000)).admitted, true);
          clock.advance(999);
          assert.equal((await one(c, 'next', 1_000)).admitted, false, 'still alive before its TTL');
          clock.advance(1);
          const next = await one(c, 'next', 1_000);
          assert.equal(next.admitted, true, 'expired at its TTL');
          assert.equal(next.remaining, 0);
        });
      });

      it('renewLeases keeps a lease alive; only the renewed lease', async () => {
        await withStore(async ({ store, clock, key, one }) => {
          const c = counter(key('inflight', 'concurrency', 0), 'concurrency', 2, 0);
          assert.equal((await one(c, 'long', 1_000)).admitted, true);
          assert.equal((await one(c, 'short', 1_000)).admitted, true);
          for (let i = 0; i < 5; i++) {
            clock.advance(800);
            await store.renewLeases(clock.nowMs(), [c.key], 'long', 1_000);
          }
          // `short` expired long ago; `long` is alive: exactly one slot is free.
          const T = clock.nowMs();
          assert.equal((await one(c, 'other', 60_000)).admitted, true);
          assert.equal((await one(c, 'other2', 60_000)).admitted, false);
          // Renewing a lease that does not exist does not create one.
          await store.renewLeases(T, [c.key], 'ghost', 60_000);
          clock.advance(999);
          assert.equal((await one(c, 'other2', 60_000)).admitted, false, '`long`, renewed 999 ms ago, still holds its slot');
          clock.advance(1);
          assert.equal((await one(c, 'other2', 60_000)).admitted, true, '`long` stopped being renewed and expired');
          assert.equal((await one(c, 'other3', 60_000)).admitted, false);
        });
      });

      it('leases of different counters are independent', async () => {
        await withStore(async ({ key, acquire, one, settle }) => {
          const a = counter(key('a', 'concurrency', 0), 'concurrency', 1, 0);
          const b = counter(key('b', 'concurrency', 0), 'concurrency', 2, 0);
          const both = await acquire([a, b], 'both');
          assert.equal(both.admitted, true);
          assert.equal((await one(b, 'b-only')).admitted, true);
          assert.equal((await one(a, 'a-only')).admitted, false);
          await settle(both.atMs, [], [a.key, b.key], 'both');
          assert.equal((await one(a, 'a-only')).admitted, true);
          assert.equal((await one(b, 'b-two')).admitted, true);
          assert.equal((await one(b, 'b-three')).admitted, false);
        });
      });
    });

    describe('through the engine', () => {
      it('tokens: reserve prompt + completion, settle to actual usage, requests stay counted', async () => {
        await withStore(async ({ store, clock, prefix }) => {
          const engine = new LimitEngine({ store, clock });
          const rpm = planned(def(prefix, 'rpm', 'requests', 3, MINUTE, 'sliding_window'));
          const tpm = planned(def(prefix, 'tpm', 'total_tokens', 1000, MINUTE, 'sliding_window'));
          const ptpm = planned(def(prefix, 'ptpm', 'prompt_tokens', 500, MINUTE, 'fixed_window'));
          const ctpm = planned(def(prefix, 'ctpm', 'completion_tokens', 600, MINUTE, 'token_bucket'));
          const all = [rpm, tpm, ptpm, ctpm];
          alignTo(clock, MINUTE, 1_000);
          const a = await engine.admit({ planned: all, reservation: { prompt_tokens: 100, completion_tokens: 300 } });
          assert.ok(a.admitted);
          assert.deepEqual(
            a.statuses.map((s) => [s.cost, s.remaining]),
            [
              [1, 2],
              [400, 600],
              [100, 400],
              [300, 300],
            ],
          );
          assert.equal(await engine.settle(a.ticket, { prompt_tokens: 100, completion_tokens: 50, total_tokens: 150 }), true);
          const b = await engine.admit({ planned: all, reservation: { prompt_tokens: 10, completion_tokens: 20 } });
          assert.ok(b.admitted);
          assert.deepEqual(
            b.statuses.map((s) => s.remaining),
            [1, 1000 - 150 - 30, 500 - 100 - 10, 600 - 50 - 20],
          );
          assert.equal(await engine.settle(b.ticket, { prompt_tokens: 10, completion_tokens: 20, total_tokens: 30 }), true);
          assert.equal(await engine.settle(b.ticket, { prompt_tokens: 999, completion_tokens: 999, total_tokens: 1998 }), false);
          // A reservation that does not fit the prompt limit is refused and charges nothing.
          const c = await engine.admit({ planned: all, reservation: { prompt_tokens: 391, completion_tokens: 0 } });
          assert.equal(c.admitted, false);
          if (!c.admitted) {
            assert.equal(c.denial.planned, ptpm);
            assert.equal(c.denial.cost, 391);
            assert.ok(c.statuses.every((s) => s.cost === 0));
          }
          const d = await engine.admit({ planned: all, reservation: { prompt_tokens: 0, completion_tokens: 0 } });
          assert.ok(d.admitted);
          assert.deepEqual(
            d.statuses.map((s) => s.remaining),
            [0, 820, 390, 530],
          );
          await engine.settle(d.ticket, { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 });
          const e = await engine.admit({ planned: all, reservation: { prompt_tokens: 0, completion_tokens: 0 } });
          assert.equal(e.admitted, false);
          if (!e.admitted) assert.equal(e.denial.planned, rpm);
        });
      });

      it('concurrency: the lease is held until settle, then released once', async () => {
        await withStore(async ({ store, clock, prefix }) => {
          const engine = new LimitEngine({ store, clock, leaseTtlMs: 60_000 });
          const conc = planned(def(prefix, 'inflight', 'concurrent_requests', 1, 0, 'concurrency'));
          const rpm = planned(def(prefix, 'rpm', 'requests', 10, MINUTE, 'sliding_window'));
          const first = await engine.admit({ planned: [rpm, conc], reservation: { prompt_tokens: 0, completion_tokens: 0 } });
          assert.ok(first.admitted);
          assert.equal(engine.liveLeases(), 1);
          const second = await engine.admit({ planned: [rpm, conc], reservation: { prompt_tokens: 0, completion_tokens: 0 } });
          assert.equal(second.admitted, false);
          if (!second.admitted) {
            assert.equal(second.denial.planned, conc);
            assert.ok(second.denial.retryAfterMs > 0);
          }
          await engine.settle(first.ticket, { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 });
          assert.equal(engine.liveLeases(), 0);
          const third = await engine.admit({ planned: [rpm, conc], reservation: { prompt_tokens: 0, completion_tokens: 0 } });
          assert.ok(third.admitted);
          assert.equal(third.statuses[0]!.remaining, 8, 'the refused admission took no request');
          await engine.settle(third.ticket, { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 });
        });
      });
    });
  });
}

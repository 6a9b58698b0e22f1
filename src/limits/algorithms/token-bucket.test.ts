import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { add, prune, resetAtMs, retryAfterMs } from './token-bucket.ts';

const T0 = 1_700_000_000_000;
const W = 1_000;
const L = 10; // one unit per 100 ms

describe('token bucket: prune', () => {
  it('a missing state is a full bucket', () => {
    const s: number[] = [];
    assert.equal(prune(s, T0, W, L), 0);
    assert.deepEqual(s, [L, T0, L]);
  });

  it('refills linearly at limit per window, capped at the limit', () => {
    const s = [0, T0, L];
    assert.equal(prune(s, T0 + 250, W, L), L - 2.5);
    assert.equal(prune(s, T0 + 500, W, L), L - 5);
    assert.equal(prune(s, T0 + 10 * W, W, L), 0);
    assert.deepEqual(s, [L, T0 + 10 * W, L]);
  });

  it('does not refill, nor move its clock back, when time steps back', () => {
    const s = [2, T0, L];
    assert.equal(prune(s, T0 - 500, W, L), L - 2);
    assert.deepEqual(s, [2, T0, L]);
  });

  it('uses the limit it is given (a reload) and remembers it', () => {
    const s = [8, T0, L];
    assert.equal(prune(s, T0, W, 5), 0);
    assert.deepEqual(s, [5, T0, 5]);
  });
});

describe('token bucket: add', () => {
  it('takes units from the level; a missing state starts full', () => {
    const s: number[] = [];
    add(s, T0, W, 3, L);
    assert.deepEqual(s, [7, T0, L]);
  });

  it('refills up to atMs before charging, so a late charge is not lost to the cap', () => {
    const s: number[] = [];
    add(s, T0, W, 1, L); // level 9
    add(s, T0 + 10 * W, W, 5, L); // full again by then: 10 - 5
    assert.deepEqual(s, [5, T0 + 10 * W, L]);
    assert.equal(prune(s, T0 + 10 * W, W, L), 5);
  });

  it('may go into debt; a give-back is capped at the limit', () => {
    const s: number[] = [];
    add(s, T0, W, 25, L);
    assert.equal(s[0], -15);
    assert.equal(prune(s, T0 + W, W, L), 15, 'one window of refill repays 10 of the 25');
    add(s, T0 + W, W, -100, L);
    assert.equal(s[0], L);
  });

  it('a charge dated before the last refill applies now, without refill', () => {
    const s = [6, T0, L];
    add(s, T0 - 300, W, 2, L);
    assert.deepEqual(s, [4, T0, L]);
  });
});

describe('token bucket: retryAfterMs and resetAtMs', () => {
  it('retryAfterMs is 0 when the level covers the cost', () => {
    assert.equal(retryAfterMs([L, T0, L], T0, W, L, L), 0);
    assert.equal(retryAfterMs([], T0, W, L, 1), 0);
  });

  it('retryAfterMs is the refill time of the missing units, at least 1 ms', () => {
    assert.equal(retryAfterMs([0, T0, L], T0, W, L, 1), 100);
    assert.equal(retryAfterMs([0, T0, L], T0, W, L, 3), 300);
    assert.equal(retryAfterMs([2.5, T0, L], T0, W, L, 3), 50);
    assert.equal(retryAfterMs([2.999, T0, L], T0, W, L, 3), 1);
    assert.equal(retryAfterMs([-10, T0, L], T0, W, L, 1), 1_100, 'debt is repaid first');
    assert.equal(retryAfterMs([0, T0, L], T0, W, L, 0), 100, 'an empty bucket holds even a free request');
  });

  it('retryAfterMs is Infinity for a cost above the limit', () => {
    assert.equal(retryAfterMs([L, T0, L], T0, W, L, L + 1), Infinity);
  });

  it('is honest: the cost fits exactly at the advertised time', () => {
    for (const [level, cost] of [
      [0, 1],
      [0.3, 1],
      [-7.25, 4],
      [4, 9],
    ] as const) {
      const s = [level, T0, L];
      const r = retryAfterMs(s, T0, W, L, cost);
      const before = s.slice();
      prune(before, T0 + r - 1, W, L);
      assert.ok(before[0]! < cost, `level ${level} cost ${cost}: not yet at ${r - 1} ms`);
      const at = s.slice();
      prune(at, T0 + r, W, L);
      assert.ok(at[0]! >= cost, `level ${level} cost ${cost}: fits at ${r} ms`);
    }
  });

  it('resetAtMs is when the bucket is full again (now when full)', () => {
    assert.equal(resetAtMs([L, T0, L], T0, W, L), T0);
    assert.equal(resetAtMs([], T0, W, L), T0);
    assert.equal(resetAtMs([0, T0, L], T0, W, L), T0 + W);
    assert.equal(resetAtMs([7.5, T0, L], T0, W, L), T0 + 250);
    assert.equal(resetAtMs([-10, T0, L], T0, W, L), T0 + 2 * W);
  });
});

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SLOTS, add, prune, quantumMs, resetAtMs, retryAfterMs } from './sliding-window.ts';

const T0 = 1_700_000_000_000; // a multiple of 1000
const W = 60_000;

/** Sum of the units in a state, without pruning. */
function total(state: number[]): number {
  let s = 0;
  for (let i = 1; i < state.length; i += 2) s += state[i]!;
  return s;
}

describe('sliding window: quantumMs', () => {
  it('is windowMs / SLOTS, rounded up, at least 1 ms', () => {
    assert.equal(SLOTS, 60);
    assert.equal(quantumMs(60_000), 1_000);
    assert.equal(quantumMs(86_400_000), 1_440_000);
    assert.equal(quantumMs(1_000), 17);
    assert.equal(quantumMs(59), 1);
    assert.equal(quantumMs(1), 1);
  });
});

describe('sliding window: prune and add', () => {
  it('an empty state counts nothing', () => {
    const s: number[] = [];
    assert.equal(prune(s, T0, W), 0);
    assert.deepEqual(s, []);
  });

  it('counts units until every instant of their quantum is a full window old', () => {
    for (const windowMs of [60_000, 1_000, 7_777, 61, 3]) {
      const g = quantumMs(windowMs);
      for (const offset of [0, 1, Math.floor(g / 2), g - 1]) {
        const t = T0 + 13 * g + offset - (T0 % g); // inside some quantum, at `offset`
        const s: number[] = [];
        add(s, t, windowMs, 5);
        assert.equal(prune(s.slice(), t + windowMs - 1, windowMs), 5, `W=${windowMs} offset=${offset}: counted for the whole window`);
        const q = Math.floor(t / g);
        const expiry = (q + 1) * g + windowMs;
        assert.ok(expiry > t + windowMs - 1 && expiry <= t + windowMs + g, `W=${windowMs}: forgotten at most one quantum late`);
        assert.equal(prune(s.slice(), expiry - 1, windowMs), 5);
        assert.equal(prune(s, expiry, windowMs), 0);
        assert.deepEqual(s, [], 'expired quanta are dropped from the state');
      }
    }
  });

  it('merges units of one quantum and keeps quanta in ascending order', () => {
    const s: number[] = [];
    add(s, T0, W, 1);
    add(s, T0 + 999, W, 2); // same quantum
    add(s, T0 + 5_000, W, 3);
    add(s, T0 + 2_000, W, 4); // out of order (a settlement)
    add(s, T0 - 3_000, W, 5); // older than every quantum
    const q = T0 / 1_000;
    assert.deepEqual(s, [q - 3, 5, q, 3, q + 2, 4, q + 5, 3]);
    assert.equal(prune(s, T0 + 5_000, W), 15);
  });

  it('a give-back never goes below zero and drops an emptied quantum', () => {
    const s: number[] = [];
    add(s, T0, W, 10);
    add(s, T0 + 1_000, W, 7);
    add(s, T0, W, -4);
    assert.equal(prune(s, T0 + 1_000, W), 13);
    add(s, T0, W, -100);
    assert.deepEqual(s, [T0 / 1_000 + 1, 7]);
    add(s, T0 + 500, W, -3); // a quantum with nothing in it: nothing to give back
    add(s, T0 + 30_000, W, -3);
    assert.deepEqual(s, [T0 / 1_000 + 1, 7]);
    add(s, T0 + 1_000, W, 0);
    assert.deepEqual(s, [T0 / 1_000 + 1, 7]);
  });

  it('usage added for an expired quantum is dropped at the next prune', () => {
    const s: number[] = [];
    add(s, T0 + 2 * W, W, 1);
    add(s, T0, W, 50); // a late settlement of an admission long gone
    assert.equal(prune(s, T0 + 2 * W, W), 1);
  });

  it('memory stays bounded by SLOTS + 1 quanta however many requests it sees', () => {
    for (const windowMs of [60_000, 1_000, 7_777]) {
      const s: number[] = [];
      let max = 0;
      for (let t = T0; t < T0 + 3 * windowMs; t += 7) {
        prune(s, t, windowMs);
        add(s, t, windowMs, 1);
        max = Math.max(max, s.length / 2);
      }
      assert.ok(max <= SLOTS + 1, `W=${windowMs}: ${max} quanta`);
    }
  });
});

describe('sliding window: retryAfterMs', () => {
  it('is 0 when the cost fits with room to spare', () => {
    const s: number[] = [];
    add(s, T0, W, 3);
    assert.equal(retryAfterMs(s, T0, W, 5, 2), 0);
    assert.equal(retryAfterMs(s, T0, W, 5, 0), 0);
  });

  it('is Infinity when the cost is above the limit, whatever the state', () => {
    assert.equal(retryAfterMs([], T0, W, 5, 6), Infinity);
    const s: number[] = [];
    add(s, T0, W, 5);
    assert.equal(retryAfterMs(s, T0, W, 5, 6), Infinity);
  });

  it('waits for just enough old quanta to leave', () => {
    const s: number[] = [];
    add(s, T0, W, 2);
    add(s, T0 + 10_000, W, 2);
    add(s, T0 + 20_000, W, 1);
    const now = T0 + 30_000;
    prune(s, now, W);
    // limit 5, full: one unit needs the first quantum to leave at T0 + 1000 + W.
    assert.equal(retryAfterMs(s, now, W, 5, 1), T0 + 1_000 + W - now);
    // three units need the first two quanta gone.
    assert.equal(retryAfterMs(s, now, W, 5, 3), T0 + 11_000 + W - now);
    // five units need all three.
    assert.equal(retryAfterMs(s, now, W, 5, 5), T0 + 21_000 + W - now);
  });

  it('is honest: refused just before it, admitted at it', () => {
    const fits = (s: number[], now: number, limit: number, cost: number) => {
      const used = prune(s, now, W);
      return used + cost <= limit && used < limit;
    };
    for (const cost of [1, 2, 3]) {
      const s: number[] = [];
      for (let i = 0; i < 6; i++) add(s, T0 + i * 7_003, W, 1);
      const now = T0 + 6 * 7_003;
      prune(s, now, W);
      const r = retryAfterMs(s, now, W, 6, cost);
      assert.ok(r > 0);
      assert.equal(fits(s.slice(), now + r - 1, 6, cost), false, `cost ${cost}: refused before`);
      assert.equal(fits(s.slice(), now + r, 6, cost), true, `cost ${cost}: admitted at retryAfterMs`);
    }
  });

  it('is never more than a window and a quantum', () => {
    for (const windowMs of [60_000, 1_000, 7_777, 61]) {
      const s: number[] = [];
      add(s, T0, windowMs, 3);
      const r = retryAfterMs(s, T0, windowMs, 3, 1);
      assert.ok(r >= windowMs - quantumMs(windowMs) && r <= windowMs + quantumMs(windowMs), `W=${windowMs}: ${r}`);
    }
  });
});

describe('sliding window: resetAtMs', () => {
  it('is now when nothing is counted', () => {
    assert.equal(resetAtMs([], T0, W), T0);
  });

  it('is when the newest quantum leaves', () => {
    const s: number[] = [];
    add(s, T0, W, 1);
    add(s, T0 + 5_500, W, 1);
    assert.equal(resetAtMs(s, T0 + 6_000, W), T0 + 6_000 + W);
    assert.equal(prune(s, T0 + 6_000 + W, W), 0);
  });

  it('ignores usage that was given back', () => {
    const s: number[] = [];
    add(s, T0, W, 1);
    add(s, T0 + 5_500, W, 4);
    add(s, T0 + 5_500, W, -4);
    assert.equal(resetAtMs(s, T0 + 6_000, W), T0 + 1_000 + W);
    assert.equal(total(s), 1);
  });
});

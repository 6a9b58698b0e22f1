import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { add, prune, resetAtMs, retryAfterMs } from './fixed-window.ts';

const W = 60_000;
const START = 28_333_333 * W; // an aligned window start near 1.7e12

describe('fixed window: prune', () => {
  it('an empty state starts the window containing now', () => {
    const s: number[] = [];
    assert.equal(prune(s, START + 123, W), 0);
    assert.deepEqual(s, [START, 0]);
  });

  it('keeps the count until the aligned boundary, then starts over', () => {
    const s: number[] = [];
    add(s, START + 10, W, 4);
    assert.equal(prune(s, START + W - 1, W), 4);
    assert.equal(prune(s, START + W, W), 0);
    assert.deepEqual(s, [START + W, 0]);
  });

  it('does not wipe the count when the clock steps back into an earlier window', () => {
    const s: number[] = [];
    add(s, START + W + 5, W, 3);
    assert.equal(prune(s, START + W - 100, W), 3);
    assert.deepEqual(s, [START + W, 3]);
  });
});

describe('fixed window: add', () => {
  it('adds to the window containing atMs and never goes below zero', () => {
    const s: number[] = [];
    add(s, START + 1, W, 5);
    add(s, START + 2, W, 2);
    assert.deepEqual(s, [START, 7]);
    add(s, START + 3, W, -10);
    assert.deepEqual(s, [START, 0]);
  });

  it('a later window replaces an earlier one; usage for an ended window is moot', () => {
    const s: number[] = [];
    add(s, START, W, 5);
    add(s, START + W, W, 2);
    assert.deepEqual(s, [START + W, 2]);
    add(s, START + 10, W, 50); // late settlement of the previous window
    add(s, START + 10, W, -50);
    assert.deepEqual(s, [START + W, 2]);
  });

  it('a give-back to an empty or newer window does nothing', () => {
    const s: number[] = [];
    add(s, START, W, -3);
    assert.deepEqual(s, []);
    add(s, START, W, 1);
    add(s, START + W, W, -1); // the window it refers to never counted anything
    assert.deepEqual(s, [START, 1]);
  });
});

describe('fixed window: retryAfterMs and resetAtMs', () => {
  it('retryAfterMs is 0 when the cost fits, the time to the boundary when not', () => {
    const s: number[] = [];
    add(s, START, W, 4);
    prune(s, START + 1_000, W);
    assert.equal(retryAfterMs(s, START + 1_000, W, 5, 1), 0);
    assert.equal(retryAfterMs(s, START + 1_000, W, 5, 2), W - 1_000);
    add(s, START, W, 1);
    assert.equal(retryAfterMs(s, START + 1_000, W, 5, 0), W - 1_000, 'full: even a free request waits');
    assert.equal(retryAfterMs(s, START + W - 1, W, 5, 1), 1);
  });

  it('retryAfterMs is Infinity for a cost above the limit', () => {
    assert.equal(retryAfterMs([], START, W, 5, 6), Infinity);
    assert.equal(retryAfterMs([START, 0], START, W, 5, 6), Infinity);
  });

  it('resetAtMs is the window end while something is counted, now otherwise', () => {
    const s: number[] = [];
    assert.equal(resetAtMs(s, START + 5, W), START + 5);
    add(s, START + 5, W, 1);
    assert.equal(resetAtMs(s, START + 5, W), START + W);
    prune(s, START + W + 5, W);
    assert.equal(resetAtMs(s, START + W + 5, W), START + W + 5);
  });
});

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { formatReset } from './rate-limit-headers.ts';

describe('formatReset', () => {
  it('formats every reset as its own ISO-8601 second, however many seconds alternate', () => {
    const now = Date.UTC(2026, 10, 21, 14, 12, 0, 250);
    // More distinct seconds than the formatter remembers, visited in turn and out of order.
    const resets = [now + 750, now + 60_000, now + 86_400_000, now + 1_500, now + 30_000, now + 3_600_000];
    const order = [0, 1, 2, 0, 1, 2, 3, 4, 5, 0, 5, 1, 4, 2, 3, 3, 0];
    for (const i of order) {
      const at = resets[i]!;
      const expected = new Date(Math.ceil(at / 1000) * 1000).toISOString().replace('.000Z', 'Z');
      assert.equal(formatReset(at, now, 'iso8601'), expected, `reset ${i}`);
    }
    assert.equal(formatReset(now + 750, now, 'iso8601'), '2026-11-21T14:12:01Z');
    assert.equal(formatReset(now + 86_400_000, now, 'iso8601'), '2026-11-22T14:12:01Z');
  });

  it('never names a reset in the past, and formats epoch and seconds-from-now', () => {
    const now = Date.UTC(2026, 10, 21, 14, 12, 0, 250);
    assert.equal(formatReset(now - 5_000, now, 'iso8601'), '2026-11-21T14:12:01Z');
    assert.equal(formatReset(now + 750, now, 'epoch'), String(Math.ceil((now + 750) / 1000)));
    assert.equal(formatReset(now + 59_750, now, 'seconds'), '60');
    assert.equal(formatReset(now - 5_000, now, 'seconds'), '0');
  });
});

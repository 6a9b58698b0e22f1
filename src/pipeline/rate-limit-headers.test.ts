import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { formatReset, settledViewOf, viewOf, type HeaderView } from './rate-limit-headers.ts';
import type { LimitStatus, Usage } from '../limits/types.ts';

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

describe('settledViewOf', () => {
  const units = ['requests', 'concurrent_requests', 'total_tokens', 'prompt_tokens', 'completion_tokens'] as const;
  const usageOf = (unit: string, u: Usage) => (unit === 'total_tokens' ? u.total_tokens : unit === 'prompt_tokens' ? u.prompt_tokens : unit === 'completion_tokens' ? u.completion_tokens : 0);
  /** The view as defined: every token status settled (reservation replaced by usage), then `viewOf`. */
  function reference(statuses: LimitStatus[], u: Usage): HeaderView {
    return viewOf(
      statuses.map((s) => {
        const unit = s.planned.def.unit;
        if (unit === 'requests' || unit === 'concurrent_requests') return s;
        const used = usageOf(unit, u);
        return { ...s, remaining: Math.max(0, s.remaining + s.cost - used), cost: used };
      }),
    );
  }

  it('names the same statuses, with the same settled numbers, as settling every status first', () => {
    let seed = 7;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2147483648), seed % n);
    for (let round = 0; round < 500; round++) {
      const n = 1 + rand(12);
      const statuses: LimitStatus[] = Array.from({ length: n }, (_, i) => {
        const limit = [10, 100, 1000, 5000][rand(4)]!;
        const cost = rand(3) === 0 ? 0 : rand(200);
        return {
          planned: { def: { name: `l${i}`, scope: 'user', unit: units[rand(units.length)]!, limit }, subject: 'u', key: `k${i}` },
          remaining: rand(limit + 1),
          resetAtMs: 1_000 * rand(100),
          cost,
        } as unknown as LimitStatus;
      });
      const prompt = rand(300);
      const completion = rand(300);
      const u: Usage = { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
      assert.deepEqual(settledViewOf(statuses, u), reference(statuses, u), `round ${round}`);
    }
  });

  it('leaves request and concurrency statuses as they were admitted', () => {
    const s = (unit: string, limit: number, remaining: number, cost: number) =>
      ({ planned: { def: { name: unit, scope: 'user', unit, limit }, subject: 'u', key: unit }, remaining, resetAtMs: 0, cost }) as unknown as LimitStatus;
    const rpm = s('requests', 10, 3, 1);
    const tpm = s('total_tokens', 1000, 400, 500);
    const view = settledViewOf([rpm, tpm, s('concurrent_requests', 2, 1, 1)], { prompt_tokens: 20, completion_tokens: 30, total_tokens: 50 });
    assert.equal(view.requests, rpm);
    assert.deepEqual({ remaining: view.tokens?.remaining, cost: view.tokens?.cost }, { remaining: 850, cost: 50 });
    assert.equal(tpm.remaining, 400, 'the admitted status is not changed');
    assert.equal(view.binding, rpm, 'requests: 3 of 10 left is closer to the limit than 850 of 1000');
  });
});

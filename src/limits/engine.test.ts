import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../core/clock.ts';
import { LimitEngine } from './engine.ts';
import { MemoryLimitStore } from './stores/memory/memory-limit-store.ts';
import type { AcquireInput, AcquireResult, CounterResult, LimitStore, SettleInput } from './store.ts';
import type { Algorithm, LimitDef, LimitUnit, PlannedLimit, Usage } from './types.ts';

function def(name: string, unit: LimitUnit, limit: number, opts: { algorithm?: Algorithm; windowMs?: number; shadow?: boolean } = {}): LimitDef {
  const algorithm = opts.algorithm ?? (unit === 'concurrent_requests' ? 'concurrency' : 'sliding_window');
  const windowMs = algorithm === 'concurrency' ? 0 : (opts.windowMs ?? 60_000);
  return { id: `named:${name}:${algorithm}:${windowMs}`, scope: 'named', name, unit, limit, windowMs, algorithm, shadow: opts.shadow ?? false };
}

function plan(d: LimitDef, subject = 'alice'): PlannedLimit {
  return { def: d, subject, key: `${d.id}|${subject}` };
}

const fit: CounterResult = { remaining: 5, resetAtMs: 0, retryAfterMs: 0, fits: true };
const refuse = (retryAfterMs: number): CounterResult => ({ remaining: 0, resetAtMs: 0, retryAfterMs, fits: false });

/** A store that records its calls and answers with scripted per-counter results. */
class ScriptedStore implements LimitStore {
  readonly kind = 'scripted';
  acquires: AcquireInput[] = [];
  settles: SettleInput[] = [];
  renewals: { nowMs: number; leaseKeys: readonly string[]; leaseId: string }[] = [];
  closed = false;
  constructor(private readonly script: (input: AcquireInput) => readonly CounterResult[] = (i) => i.counters.map(() => fit)) {}
  async acquire(input: AcquireInput): Promise<AcquireResult> {
    this.acquires.push(input);
    const results = this.script(input);
    const admitted = results.every((r, i) => r.fits || input.counters[i]!.shadow);
    return { admitted, atMs: input.nowMs, results };
  }
  async settle(input: SettleInput): Promise<void> {
    this.settles.push(input);
  }
  async renewLeases(nowMs: number, leaseKeys: readonly string[], leaseId: string): Promise<void> {
    this.renewals.push({ nowMs, leaseKeys, leaseId });
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

const usage = (prompt: number, completion: number): Usage => ({ prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion });

const rpm = plan(def('rpm', 'requests', 100));
const tpm = plan(def('tpm', 'total_tokens', 10_000));
const ptpm = plan(def('ptpm', 'prompt_tokens', 5_000, { algorithm: 'fixed_window' }));
const ctpm = plan(def('ctpm', 'completion_tokens', 5_000, { algorithm: 'token_bucket' }));
const conc = plan(def('inflight', 'concurrent_requests', 2));

describe('LimitEngine: costs', () => {
  it('charges 1 per request, prompt + completion for total tokens, each part for its own unit', async () => {
    const store = new ScriptedStore();
    const clock = new ManualClock();
    const engine = new LimitEngine({ store, clock });
    const a = await engine.admit({ planned: [rpm, tpm, ptpm, ctpm, conc], reservation: { prompt_tokens: 120, completion_tokens: 380 } });
    assert.ok(a.admitted);
    const input = store.acquires[0]!;
    assert.equal(input.nowMs, clock.nowMs());
    assert.deepEqual(
      input.counters.map((c) => [c.key, c.algorithm, c.limit, c.windowMs, c.cost, c.shadow]),
      [
        [rpm.key, 'sliding_window', 100, 60_000, 1, false],
        [tpm.key, 'sliding_window', 10_000, 60_000, 500, false],
        [ptpm.key, 'fixed_window', 5_000, 60_000, 120, false],
        [ctpm.key, 'token_bucket', 5_000, 60_000, 380, false],
        [conc.key, 'concurrency', 2, 0, 1, false],
      ],
    );
    assert.deepEqual(
      a.statuses.map((s) => s.cost),
      [1, 500, 120, 380, 1],
    );
    assert.ok(a.statuses.every((s, i) => s.planned === [rpm, tpm, ptpm, ctpm, conc][i]));
    assert.equal(input.leaseTtlMs, 30_000, 'default lease TTL');
    assert.ok(input.leaseId.length > 0, 'a concurrency limit gets a lease id');
    assert.deepEqual(a.ticket.leaseKeys, [conc.key]);
    assert.equal(a.ticket.atMs, clock.nowMs());
    await engine.settle(a.ticket, usage(0, 0));
    await engine.close();
  });

  it('no lease id without a concurrency limit, and distinct lease ids per admission', async () => {
    const store = new ScriptedStore();
    const engine = new LimitEngine({ store, clock: new ManualClock(), leaseTtlMs: 5_000 });
    const a = await engine.admit({ planned: [rpm], reservation: usage(1, 1) });
    const b = await engine.admit({ planned: [rpm, conc], reservation: usage(1, 1) });
    const c = await engine.admit({ planned: [conc], reservation: usage(1, 1) });
    assert.equal(store.acquires[0]!.leaseId, '');
    assert.notEqual(store.acquires[1]!.leaseId, '');
    assert.notEqual(store.acquires[1]!.leaseId, store.acquires[2]!.leaseId);
    assert.equal(store.acquires[1]!.leaseTtlMs, 5_000);
    assert.equal(engine.liveLeases(), 2);
    for (const x of [a, b, c]) if (x.admitted) await engine.settle(x.ticket, usage(1, 1));
    assert.equal(engine.liveLeases(), 0);
    await engine.close();
  });
});

describe('LimitEngine: settle', () => {
  it('replaces each token reservation by the actual usage of its unit; requests are not adjusted', async () => {
    const store = new ScriptedStore();
    const clock = new ManualClock();
    const engine = new LimitEngine({ store, clock });
    const a = await engine.admit({ planned: [rpm, tpm, ptpm, ctpm], reservation: { prompt_tokens: 100, completion_tokens: 400 } });
    assert.ok(a.admitted);
    clock.advance(7_000);
    assert.equal(await engine.settle(a.ticket, { prompt_tokens: 130, completion_tokens: 50, total_tokens: 185 }), true);
    assert.equal(store.settles.length, 1);
    const s = store.settles[0]!;
    assert.equal(s.atMs, a.ticket.atMs, 'refers to the admission time');
    assert.equal(s.nowMs, a.ticket.atMs + 7_000);
    assert.deepEqual(
      s.adjustments.map((x) => [x.key, x.algorithm, x.windowMs, x.limit, x.delta]),
      [
        [tpm.key, 'sliding_window', 60_000, 10_000, 185 - 500], // total_tokens as reported, not prompt + completion
        [ptpm.key, 'fixed_window', 60_000, 5_000, 30],
        [ctpm.key, 'token_bucket', 60_000, 5_000, -350],
      ],
    );
    assert.deepEqual(s.leaseKeys, []);
    await engine.close();
  });

  it('is idempotent: a second settle returns false and changes nothing', async () => {
    const store = new ScriptedStore();
    const engine = new LimitEngine({ store, clock: new ManualClock() });
    const a = await engine.admit({ planned: [tpm, conc], reservation: usage(10, 10) });
    assert.ok(a.admitted);
    assert.equal(engine.liveLeases(), 1);
    assert.equal(await engine.settle(a.ticket, usage(5, 5)), true);
    assert.equal(a.ticket.settled, true);
    assert.equal(await engine.settle(a.ticket, usage(500, 500)), false);
    assert.equal(await engine.settle(a.ticket, usage(0, 0)), false);
    assert.equal(store.settles.length, 1);
    assert.deepEqual(store.settles[0]!.leaseKeys, [conc.key]);
    assert.equal(store.settles[0]!.leaseId, store.acquires[0]!.leaseId);
    assert.equal(engine.liveLeases(), 0);
    await engine.close();
  });

  it('skips the store when there is nothing to adjust or release', async () => {
    const store = new ScriptedStore();
    const engine = new LimitEngine({ store, clock: new ManualClock() });
    const a = await engine.admit({ planned: [rpm, tpm], reservation: usage(10, 20) });
    assert.ok(a.admitted);
    assert.equal(await engine.settle(a.ticket, usage(10, 20)), true);
    assert.equal(store.settles.length, 0);
    assert.equal(await engine.settle(a.ticket, usage(10, 20)), false);
    await engine.close();
  });

  it('with a real store, the counters end at the actual usage, once', async () => {
    const clock = new ManualClock();
    const store = new MemoryLimitStore();
    const engine = new LimitEngine({ store, clock });
    const small = plan(def('small-tpm', 'total_tokens', 1_000));
    const a = await engine.admit({ planned: [small], reservation: usage(100, 200) });
    assert.ok(a.admitted);
    assert.equal(a.statuses[0]!.remaining, 700);
    await engine.settle(a.ticket, usage(100, 500));
    await engine.settle(a.ticket, usage(100, 500));
    const b = await engine.admit({ planned: [small], reservation: usage(0, 0) });
    assert.ok(b.admitted);
    assert.equal(b.statuses[0]!.remaining, 400);
    await engine.close();
  });
});

describe('LimitEngine: denials', () => {
  it('names the refusing limit with the longest wait; fitting and shadow limits are never named', async () => {
    const shadow = plan(def('shadow', 'requests', 1, { shadow: true }));
    const store = new ScriptedStore(() => [fit, refuse(100), refuse(5_000), refuse(10_000_000), refuse(300)]);
    const engine = new LimitEngine({ store, clock: new ManualClock() });
    const planned = [rpm, tpm, ptpm, shadow, ctpm];
    const a = await engine.admit({ planned, reservation: usage(10, 20) });
    assert.equal(a.admitted, false);
    if (a.admitted) return;
    assert.equal(a.denial.planned, ptpm);
    assert.equal(a.denial.retryAfterMs, 5_000);
    assert.equal(a.denial.cost, 10, 'the cost that did not fit');
    assert.ok(a.statuses.every((s) => s.cost === 0), 'a refused admission took nothing');
    assert.equal(a.statuses.length, planned.length);
    await engine.close();
  });

  it('ties go to evaluation order; a cost that can never fit (Infinity) wins', async () => {
    const tie = new LimitEngine({ store: new ScriptedStore(() => [refuse(700), refuse(700)]), clock: new ManualClock() });
    const a = await tie.admit({ planned: [tpm, ptpm], reservation: usage(1, 1) });
    assert.ok(!a.admitted && a.denial.planned === tpm);
    const inf = new LimitEngine({ store: new ScriptedStore(() => [refuse(700), refuse(Infinity), refuse(900)]), clock: new ManualClock() });
    const b = await inf.admit({ planned: [rpm, tpm, ptpm], reservation: usage(1, 1) });
    assert.ok(!b.admitted && b.denial.planned === tpm && b.denial.retryAfterMs === Infinity);
    await tie.close();
    await inf.close();
  });

  it('with a real store: the binding limit is the one that frees last', async () => {
    const clock = new ManualClock();
    const store = new MemoryLimitStore();
    const engine = new LimitEngine({ store, clock });
    const perSecond = plan(def('rps', 'requests', 1, { windowMs: 1_000 }));
    const perMinute = plan(def('rpm2', 'requests', 2, { windowMs: 60_000 }));
    const perHour = plan(def('rph', 'requests', 100, { windowMs: 3_600_000, algorithm: 'fixed_window' }));
    const all = [perSecond, perMinute, perHour];
    const r = usage(0, 0);
    const first = await engine.admit({ planned: all, reservation: r });
    assert.ok(first.admitted);
    const second = await engine.admit({ planned: all, reservation: r });
    assert.ok(!second.admitted && second.denial.planned === perSecond, 'only the per-second limit refuses');
    clock.advance(2_000);
    assert.ok((await engine.admit({ planned: all, reservation: r })).admitted);
    const fourth = await engine.admit({ planned: all, reservation: r });
    assert.ok(!fourth.admitted);
    assert.equal(fourth.denial.planned, perMinute, 'both refuse: the per-minute one waits longer');
    assert.ok(fourth.denial.retryAfterMs > 50_000);
    assert.equal(fourth.denial.remaining, 0);
    assert.ok(fourth.denial.resetAtMs >= clock.nowMs());
    await engine.close();
  });

  it('a cost above the limit is refused with retryAfterMs Infinity and cost > limit', async () => {
    const engine = new LimitEngine({ store: new MemoryLimitStore(), clock: new ManualClock() });
    const small = plan(def('small', 'prompt_tokens', 50));
    const a = await engine.admit({ planned: [rpm, small], reservation: usage(51, 0) });
    assert.ok(!a.admitted);
    assert.equal(a.denial.planned, small);
    assert.equal(a.denial.retryAfterMs, Infinity);
    assert.ok(a.denial.cost > a.denial.planned.def.limit);
    const b = await engine.admit({ planned: [rpm], reservation: usage(0, 0) });
    assert.ok(b.admitted);
    assert.equal(b.statuses[0]!.remaining, 99, 'the refused request took nothing from rpm');
    await engine.close();
  });
});

describe('LimitEngine: shadow limits', () => {
  it('shadowExceeded lists the shadow limits that did not fit, and only those', async () => {
    const s1 = plan(def('s1', 'requests', 1, { shadow: true }));
    const s2 = plan(def('s2', 'total_tokens', 10, { shadow: true }));
    const s3 = plan(def('s3', 'requests', 100, { shadow: true }));
    const store = new ScriptedStore(() => [fit, refuse(100), refuse(200), fit]);
    const engine = new LimitEngine({ store, clock: new ManualClock() });
    const a = await engine.admit({ planned: [rpm, s1, s2, s3], reservation: usage(10, 10) });
    assert.ok(a.admitted);
    assert.deepEqual(
      a.shadowExceeded.map((s) => s.planned),
      [s1, s2],
    );
    assert.deepEqual(
      a.shadowExceeded.map((s) => s.cost),
      [1, 20],
    );
    await engine.close();
  });

  it('with a real store: shadow limits count every admission and never block', async () => {
    const engine = new LimitEngine({ store: new MemoryLimitStore(), clock: new ManualClock() });
    const shadow = plan(def('shadow-rpm', 'requests', 2, { shadow: true }));
    const exceeded: number[] = [];
    for (let i = 0; i < 5; i++) {
      const a = await engine.admit({ planned: [rpm, shadow], reservation: usage(0, 0) });
      assert.ok(a.admitted);
      exceeded.push(a.shadowExceeded.length);
      assert.equal(a.statuses[1]!.remaining, Math.max(0, 2 - (i + 1)));
    }
    assert.deepEqual(exceeded, [0, 0, 1, 1, 1]);
    await engine.close();
  });
});

describe('LimitEngine: leases', () => {
  it('renews the leases of live tickets until they are settled', async (t) => {
    t.mock.timers.enable({ apis: ['setInterval'] });
    const store = new ScriptedStore();
    const clock = new ManualClock();
    const engine = new LimitEngine({ store, clock, leaseTtlMs: 3_000 });
    const a = await engine.admit({ planned: [conc], reservation: usage(0, 0) });
    assert.ok(a.admitted);
    clock.advance(1_000);
    t.mock.timers.tick(1_000);
    assert.equal(store.renewals.length, 1);
    assert.deepEqual(store.renewals[0], { nowMs: clock.nowMs(), leaseKeys: [conc.key], leaseId: a.ticket.leaseId });
    await engine.settle(a.ticket, usage(0, 0));
    t.mock.timers.tick(1_000);
    t.mock.timers.tick(1_000);
    assert.equal(store.renewals.length, 1, 'a settled ticket is no longer renewed');
    await engine.close();
    assert.equal(store.closed, true);
  });
});

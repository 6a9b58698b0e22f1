import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../core/clock.ts';
import { Metrics } from '../../core/metrics.ts';
import { LimitEngine } from '../engine.ts';
import { LimitStoreUnavailableError, type AcquireInput, type AcquireResult, type SettleInput } from '../store.ts';
import type { PlannedLimit } from '../types.ts';
import { FallbackLimitStore, LOCAL_FALLBACK, type ProbedLimitStore } from './fallback-limit-store.ts';
import { MemoryLimitStore } from './memory/memory-limit-store.ts';

/** A primary that can be switched off: calls then throw LimitStoreUnavailableError. */
class SwitchablePrimary implements ProbedLimitStore {
  readonly kind = 'redis';
  up = true;
  readonly inner = new MemoryLimitStore();
  calls = { acquire: 0, settle: 0, renew: 0, probe: 0 };
  settles: SettleInput[] = [];
  constructor(readonly withProbe = true) {
    if (!withProbe) this.probe = undefined;
  }
  private check(): void {
    if (!this.up) throw new LimitStoreUnavailableError('connection refused');
  }
  async acquire(input: AcquireInput): Promise<AcquireResult> {
    this.calls.acquire++;
    this.check();
    return this.inner.acquire(input);
  }
  async settle(input: SettleInput): Promise<void> {
    this.calls.settle++;
    this.check();
    this.settles.push(input);
    return this.inner.settle(input);
  }
  async renewLeases(nowMs: number, keys: readonly string[], id: string, ttl: number): Promise<void> {
    this.calls.renew++;
    this.check();
    return this.inner.renewLeases(nowMs, keys, id, ttl);
  }
  probe?: () => Promise<void> = async () => {
    this.calls.probe++;
    this.check();
  };
  async close(): Promise<void> {}
}

function setup(localFallback: boolean, withProbe = true) {
  const primary = new SwitchablePrimary(withProbe);
  const metrics = new Metrics();
  const lines: { level: string; msg: string }[] = [];
  const log = { warn: (msg: unknown) => void lines.push({ level: 'warn', msg: String(msg) }), info: (msg: unknown) => void lines.push({ level: 'info', msg: String(msg) }) };
  let mono = 0;
  const clock = new ManualClock();
  const store = new FallbackLimitStore({ primary, localFallback, metrics, log: log as never, clock, monotonicMs: () => mono, sweepIntervalMs: 0 });
  const engine = new LimitEngine({ store, clock, leaseTtlMs: 60_000 });
  const gauge = async () => (await metrics.limiterFallback.get()).values[0]?.value;
  const errors = async () => (await metrics.limiterFailures.get()).values[0]?.value ?? 0;
  return { primary, store, engine, lines, gauge, errors, advance: (ms: number) => (mono += ms) };
}

const rpm: PlannedLimit = {
  def: { id: 'named:rpm:sliding_window:60000', scope: 'named', name: 'rpm', unit: 'requests', limit: 100, windowMs: 60_000, algorithm: 'sliding_window', shadow: false },
  subject: 's',
  key: 'named:rpm:sliding_window:60000|s',
};
const tpm: PlannedLimit = { ...rpm, def: { ...rpm.def, id: 'named:tpm:sliding_window:60000', name: 'tpm', unit: 'total_tokens', limit: 10_000 }, key: 'named:tpm:sliding_window:60000|s' };
const conc: PlannedLimit = {
  def: { id: 'named:conc:concurrency:0', scope: 'named', name: 'conc', unit: 'concurrent_requests', limit: 5, windowMs: 0, algorithm: 'concurrency', shadow: false },
  subject: 's',
  key: 'named:conc:concurrency:0|s',
};
const reservation = { prompt_tokens: 10, completion_tokens: 0 };
const usage = { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 };
const flush = () => new Promise((r) => setImmediate(r));

describe('FallbackLimitStore', () => {
  it('local_fallback: serves locally while the primary is down, says so once, and goes back by itself', async () => {
    const { primary, store, engine, lines, gauge, errors, advance } = setup(true);
    const a = await engine.admit({ planned: [rpm, tpm, conc], reservation });
    assert.ok(a.admitted);
    assert.equal(a.decidedBy, 'redis');
    assert.equal(store.kind, 'redis');
    assert.equal(await gauge(), 0);

    primary.up = false;
    const b = await engine.admit({ planned: [rpm, tpm, conc], reservation });
    assert.ok(b.admitted);
    assert.equal(b.decidedBy, LOCAL_FALLBACK);
    assert.equal(store.kind, LOCAL_FALLBACK);
    assert.equal(store.mode, 'fallback');
    assert.equal(await gauge(), 1);
    assert.equal(await errors(), 1);
    const before = primary.calls.acquire;
    for (let i = 0; i < 5; i++) assert.equal((await engine.admit({ planned: [rpm], reservation })).decidedBy, LOCAL_FALLBACK);
    assert.equal(primary.calls.acquire, before, 'degraded requests do not wait on the primary');
    assert.equal(primary.calls.probe, 0, 'no retry within the interval');
    assert.deepEqual(lines.map((l) => l.level), ['warn']);
    assert.match(lines[0]!.msg, /unreachable.*connection refused.*local in-process counters/);

    // The local admission is settled locally, the Redis one (which fails) is counted and dropped.
    await engine.settle(b.ticket, usage);
    assert.equal(primary.calls.settle, 0, 'a local admission is never settled on the primary');
    await engine.settle(a.ticket, usage);
    assert.equal(primary.calls.settle, 1);
    assert.equal(await errors(), 2);

    // At most one probe per interval, in the background; the first answer switches back.
    advance(1_000);
    assert.equal((await engine.admit({ planned: [rpm], reservation })).decidedBy, LOCAL_FALLBACK);
    await flush();
    assert.equal(primary.calls.probe, 1);
    assert.equal(await errors(), 3, 'a failed probe counts as a store error');
    primary.up = true;
    assert.equal((await engine.admit({ planned: [rpm], reservation })).decidedBy, LOCAL_FALLBACK, 'still within the interval');
    advance(1_000);
    await engine.admit({ planned: [rpm], reservation });
    await flush();
    assert.equal(primary.calls.probe, 2);
    assert.equal(store.mode, 'primary');
    assert.equal(await gauge(), 0);
    const c = await engine.admit({ planned: [rpm, conc], reservation });
    assert.equal(c.decidedBy, 'redis');
    assert.deepEqual(lines.map((l) => l.level), ['warn', 'info']);
    assert.match(lines[1]!.msg, /answers again/);
    if (c.admitted) await engine.settle(c.ticket, usage);
    assert.equal(primary.settles.at(-1)!.decidedBy, 'redis');
  });

  it('fail closed: rethrows LimitStoreUnavailableError, fast, until the primary answers again', async () => {
    const { primary, store, engine, lines, gauge, advance } = setup(false);
    primary.up = false;
    await assert.rejects(engine.admit({ planned: [rpm], reservation }), LimitStoreUnavailableError);
    assert.equal(store.mode, 'unavailable');
    assert.equal(store.kind, 'redis');
    await assert.rejects(engine.admit({ planned: [rpm], reservation }), /connection refused/);
    assert.equal(primary.calls.acquire, 1, 'refused without another round trip within the interval');
    assert.equal(await gauge(), 0);
    assert.equal((await store.check()).ok, false);
    primary.up = true;
    advance(1_000);
    await assert.rejects(engine.admit({ planned: [rpm], reservation }), LimitStoreUnavailableError);
    await flush();
    const ok = await engine.admit({ planned: [rpm], reservation });
    assert.equal(ok.admitted, true);
    assert.equal(ok.decidedBy, 'redis');
    assert.deepEqual(lines.map((l) => l.level), ['warn', 'info']);
    assert.match(lines[0]!.msg, /Refusing requests with 503/);
  });

  it('without probe(), the next real call after the interval is the retry', async () => {
    const { primary, store, engine, advance } = setup(true, false);
    primary.up = false;
    assert.equal((await engine.admit({ planned: [rpm], reservation })).decidedBy, LOCAL_FALLBACK);
    primary.up = true;
    assert.equal((await engine.admit({ planned: [rpm], reservation })).decidedBy, LOCAL_FALLBACK);
    advance(1_000);
    assert.equal((await engine.admit({ planned: [rpm], reservation })).decidedBy, 'redis');
    assert.equal(store.mode, 'primary');
  });

  it('check() probes the primary and reports the mode (for /readyz)', async () => {
    const { primary, store, lines } = setup(true);
    assert.deepEqual(await store.check(), { ok: true, mode: 'primary', limiter: 'redis' });
    primary.up = false;
    assert.deepEqual(await store.check(), { ok: true, mode: 'fallback', limiter: LOCAL_FALLBACK });
    primary.up = true;
    assert.deepEqual(await store.check(), { ok: true, mode: 'primary', limiter: 'redis' });
    assert.equal(lines.length, 2);
  });

  it('renewals go to the backend that admitted', async () => {
    const { primary, store } = setup(true);
    await store.renewLeases(0, ['k'], 'l', 1_000, LOCAL_FALLBACK);
    assert.equal(primary.calls.renew, 0);
    await store.renewLeases(0, ['k'], 'l', 1_000, 'redis');
    assert.equal(primary.calls.renew, 1);
    primary.up = false;
    await store.renewLeases(0, ['k'], 'l', 1_000, 'redis'); // counted, not thrown
    assert.equal(store.mode, 'fallback');
  });
});

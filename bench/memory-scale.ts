/**
 * `npm run bench:memory` (or `npm run bench -- --memory`): one million distinct users in the
 * in-process limit store. The limit engine and MemoryLimitStore run in this process on a
 * ManualClock; each user makes one request that is admitted against a per-user rpm and tpm limit
 * (the per_user tier as the config compiles it) and settled with its real usage. Reports the heap
 * that holds them (after a full GC), then moves the clock past the windows and sweeps until every
 * idle counter is reclaimed, and reports the heap again.
 *
 *   node --expose-gc --import tsx bench/memory-scale.ts [--users 1000000] [--target-mb 300]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ManualClock } from '../src/core/clock.ts';
import { LimitEngine } from '../src/limits/engine.ts';
import { MemoryLimitStore } from '../src/limits/stores/memory/memory-limit-store.ts';
import { tierDefs } from '../src/config/compile-limits.ts';
import { plan } from '../src/limits/plan.ts';
import { quantumMs } from '../src/limits/algorithms/sliding-window.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const { values } = parseArgs({ options: { users: { type: 'string', default: '1000000' }, 'target-mb': { type: 'string', default: '300' } } });
const USERS = Number(values.users);
const TARGET_MB = Number(values['target-mb']);
/** Users arriving per simulated millisecond: a million users arrive over 50 s, all inside one 60 s window. */
const USERS_PER_MS = 20;
/** The gateway's sweep: every second, batches of 10 000 counters within 5 ms of CPU (src/server/limit-store.ts). */
const GATEWAY_SWEEP_BUDGET_MS_PER_S = 5;
const DEADLINE_MS = 120_000;

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) {
  process.stderr.write('run with --expose-gc: node --expose-gc --import tsx bench/memory-scale.ts\n');
  process.exit(2);
}
setTimeout(() => {
  process.stderr.write(`memory benchmark: still running after ${DEADLINE_MS / 1000} s; stopped\n`);
  process.exit(1);
}, DEADLINE_MS).unref();

const mb = (bytes: number) => bytes / 2 ** 20;
function heap(): { heapUsedMb: number; rssMb: number } {
  gc!();
  gc!();
  const m = process.memoryUsage();
  return { heapUsedMb: mb(m.heapUsed), rssMb: mb(m.rss) };
}
const log = (s: string) => process.stderr.write(`${s}\n`);

async function main(): Promise<void> {
  const clock = new ManualClock();
  const store = new MemoryLimitStore();
  const engine = new LimitEngine({ store, clock });
  // The per_user tier exactly as `rate_limits.per_user: {rpm, tpm}` compiles (sliding window, 60 s).
  const defs = tierDefs('user', { rpm: 600, tpm: 200_000 });
  const windowMs = Math.max(...defs.map((d) => d.windowMs));
  const reservation = { prompt_tokens: 24, completion_tokens: 0 };
  const usage = { prompt_tokens: 24, completion_tokens: 96, total_tokens: 120 };

  const baseline = heap();
  log(`baseline heap ${baseline.heapUsedMb.toFixed(1)} MB; admitting ${USERS.toLocaleString('en-US')} distinct users (per-user rpm + tpm) ...`);
  const t0 = performance.now();
  for (let i = 0; i < USERS; i++) {
    const subject = `user-${i.toString().padStart(7, '0')}`;
    const admission = await engine.admit({ planned: defs.map((d) => plan(d, subject)), reservation });
    if (!admission.admitted) throw new Error(`user ${subject} was refused`);
    await engine.settle(admission.ticket, usage);
    if (i % USERS_PER_MS === USERS_PER_MS - 1) clock.advance(1);
  }
  const fillMs = performance.now() - t0;
  const counters = store.size();
  const full = heap();
  // Still counted: the first user's second request sees its first one.
  const again = await engine.admit({ planned: defs.map((d) => plan(d, 'user-0000000')), reservation });
  if (!again.admitted || again.statuses[0]!.remaining !== 600 - 2) throw new Error('the first user is no longer counted');
  await engine.settle(again.ticket, usage);
  log(`held ${counters.toLocaleString('en-US')} counters: heap ${full.heapUsedMb.toFixed(1)} MB (${(((full.heapUsedMb - baseline.heapUsedMb) * 2 ** 20) / USERS).toFixed(0)} B per user), filled in ${(fillMs / 1000).toFixed(1)} s`);

  // Past every window (plus the quantum a sliding window keeps longest): everything is idle.
  clock.advance(windowMs + quantumMs(windowMs) + 1);
  const t1 = performance.now();
  let calls = 0;
  let removed = 0;
  while (store.size() > 0 && calls < 100_000) {
    removed += store.sweep(clock.nowMs());
    calls++;
  }
  const sweepMs = performance.now() - t1;
  const swept = heap();
  log(`swept ${removed.toLocaleString('en-US')} counters in ${calls} sweep() calls (${sweepMs.toFixed(0)} ms): ${store.size()} left, heap ${swept.heapUsedMb.toFixed(1)} MB`);

  const result = {
    date: new Date().toISOString(),
    node: process.version,
    users: USERS,
    countersPerUser: defs.length,
    limits: defs.map((d) => d.id),
    baseline,
    full: { ...full, counters, bytesPerUser: ((full.heapUsedMb - baseline.heapUsedMb) * 2 ** 20) / USERS, fillSeconds: fillMs / 1000, admissionsPerSecond: USERS / (fillMs / 1000) },
    afterSweep: { ...swept, counters: store.size(), sweepCalls: calls, removed, sweepMs, gatewaySweepSeconds: Math.ceil(sweepMs / GATEWAY_SWEEP_BUDGET_MS_PER_S) },
    target: { heapUsedMb: TARGET_MB, pass: full.heapUsedMb <= TARGET_MB },
  };

  const out: string[] = [];
  out.push('');
  out.push(`memory: ${USERS.toLocaleString('en-US')} distinct users in MemoryLimitStore (per-user rpm + tpm, sliding window 60 s), ${process.version}`);
  out.push(`  heap used (after GC), users held    ${full.heapUsedMb.toFixed(1)} MB   (${result.full.bytesPerUser.toFixed(0)} B per user over a ${baseline.heapUsedMb.toFixed(1)} MB baseline; ${counters.toLocaleString('en-US')} counters)   target <= ${TARGET_MB} MB: ${result.target.pass ? 'PASS' : 'MISS'}`);
  out.push(`  rss                                 ${full.rssMb.toFixed(1)} MB`);
  out.push(`  admissions                          ${Math.round(result.full.admissionsPerSecond).toLocaleString('en-US')} per second (engine + store, one core, no HTTP)`);
  out.push(`  after the windows pass + sweep()    ${store.size()} counters, heap ${swept.heapUsedMb.toFixed(1)} MB (rss ${swept.rssMb.toFixed(1)} MB): ${store.size() === 0 ? 'idle keys reclaimed' : 'NOT all reclaimed'}`);
  out.push(`  sweep                               ${calls} calls of ${(10_000).toLocaleString('en-US')} counters, ${sweepMs.toFixed(0)} ms in total; at the gateway's pace (${GATEWAY_SWEEP_BUDGET_MS_PER_S} ms of sweeping per second) that is ${(sweepMs / GATEWAY_SWEEP_BUDGET_MS_PER_S / 60).toFixed(1)} min`);
  process.stdout.write(`${out.join('\n')}\n`);

  const dir = join(ROOT, 'bench/results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `memory-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`\nresults: ${file}\n`);
  if (store.size() !== 0) process.exitCode = 1;
}

main().catch((err: Error) => {
  process.stderr.write(`${err.stack ?? String(err)}\n`);
  process.exit(1);
});

/**
 * The benchmark's report: per-round results reduced to one row per target (medians over rounds,
 * ratios taken within each round, so slow drifts of the machine cancel out), the targets checked,
 * and the text table printed to stdout.
 */
import type { LoadResult } from './loadgen.ts';
import type { LatencySummary } from './stats.ts';
import type { RedisCost } from './redis-stats.ts';

export type TargetId = 'direct' | 'bare' | 'groups' | 'tiers' | 'redis-groups' | 'redis-tiers';

export interface PhaseCpu {
  /** CPU of the server under test (the upstream for `direct`) per response, µs. */
  serverUsPerRequest: number;
  /** Share of one core each of the benchmark's processes used during the phase, %. */
  utilisation: Record<string, number>;
  /** Share of the whole machine (all cores) used by anything that is not the benchmark (other processes, hypervisor steal), %. */
  otherLoadPct: number;
}

export interface TargetResult {
  id: TargetId;
  label: string;
  status: 'ok' | 'not available' | 'failed';
  reason?: string;
  limiter?: string;
  closed?: LoadResult & { cpu: PhaseCpu };
  open?: LoadResult & { cpu: PhaseCpu };
  redis?: RedisCost;
}

/** One target in one round, flattened to the numbers the table shows. */
export interface Row {
  rps: number;
  p50: number;
  p99: number;
  openP50: number;
  openP99: number;
  cpuUs: number;
  otherLoadPct: number;
  throughputVsBare?: number;
  addedP99VsBareMs?: number;
  addedP99VsDirectMs?: number;
  redisCommandsPerRequest?: number;
  redisRoundTripsPerRequest?: number;
}

export interface TargetSummary {
  id: TargetId;
  label: string;
  status: TargetResult['status'];
  reason?: string;
  /** Rounds in which the target ran. */
  rounds: number;
  /** Medians over the rounds. */
  median?: Row;
  /** Smallest and largest throughput ratio over the rounds. */
  throughputVsBareRange?: [number, number];
  addedP99VsBareRange?: [number, number];
}

export interface Check {
  target: string;
  metric: string;
  goal: string;
  value: string;
  pass: boolean | null;
}

export interface Report {
  date: string;
  machine: { cores: number; cpu: string; memoryGb: number; os: string; node: string; redis: string | null; loadAverageAtStart: number[]; timerJitterMs: LatencySummary | null };
  settings: { rounds: number; connections: number; warmupS: number; durationS: number; openLoopRate: number; request: string };
  durationS: number;
  summary: TargetSummary[];
  checks: Check[];
  notes: string[];
  rounds: TargetResult[][];
}

function median(xs: number[]): number {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (!s.length) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function rowsOf(round: TargetResult[]): Map<TargetId, Row> {
  const byId = new Map(round.map((r) => [r.id, r]));
  const bare = byId.get('bare');
  const direct = byId.get('direct');
  const ok = (r: TargetResult | undefined): r is TargetResult & Required<Pick<TargetResult, 'closed' | 'open'>> => r?.status === 'ok';
  const rows = new Map<TargetId, Row>();
  for (const r of round) {
    if (!ok(r)) continue;
    const row: Row = {
      rps: r.closed.rps,
      p50: r.closed.latency.p50,
      p99: r.closed.latency.p99,
      openP50: r.open.latency.p50,
      openP99: r.open.latency.p99,
      cpuUs: r.closed.cpu.serverUsPerRequest,
      otherLoadPct: Math.max(r.closed.cpu.otherLoadPct, r.open.cpu.otherLoadPct),
    };
    const proxied = r.id !== 'bare' && r.id !== 'direct';
    if (proxied && ok(bare)) {
      row.throughputVsBare = r.closed.rps / bare.closed.rps;
      row.addedP99VsBareMs = r.open.latency.p99 - bare.open.latency.p99;
    }
    if (r.id !== 'direct' && ok(direct)) row.addedP99VsDirectMs = r.open.latency.p99 - direct.open.latency.p99;
    if (r.redis) {
      row.redisCommandsPerRequest = r.redis.commandsPerRequest;
      row.redisRoundTripsPerRequest = r.redis.roundTripsPerRequest;
    }
    rows.set(r.id, row);
  }
  return rows;
}

export function summarizeRounds(rounds: TargetResult[][]): TargetSummary[] {
  const perRound = rounds.map(rowsOf);
  const order: TargetResult[] = [];
  for (const round of rounds) for (const r of round) if (!order.some((o) => o.id === r.id)) order.push(r);
  return order.map((first) => {
    const rows = perRound.map((m) => m.get(first.id)).filter((x): x is Row => !!x);
    if (!rows.length) {
      const any = rounds.flat().find((r) => r.id === first.id)!;
      return { id: first.id, label: first.label, status: any.status, reason: any.reason, rounds: 0 };
    }
    const keys = Object.keys(rows[0]!) as (keyof Row)[];
    const med = Object.fromEntries(keys.map((k) => [k, median(rows.map((r) => r[k] ?? NaN))])) as unknown as Row;
    const range = (k: keyof Row): [number, number] | undefined => {
      const v = rows.map((r) => r[k]).filter((x): x is number => x !== undefined);
      return v.length ? [Math.min(...v), Math.max(...v)] : undefined;
    };
    const failed = rounds.flat().find((r) => r.id === first.id && r.status !== 'ok');
    return {
      id: first.id,
      label: first.label,
      status: 'ok',
      reason: failed ? `${failed.status} in a round: ${failed.reason}` : undefined,
      rounds: rows.length,
      median: med,
      throughputVsBareRange: range('throughputVsBare'),
      addedP99VsBareRange: range('addedP99VsBareMs'),
    };
  });
}

export function checksOf(summary: TargetSummary[], rate: number): Check[] {
  const t = new Map(summary.map((s) => [s.id, s]));
  const checks: Check[] = [];
  const value = (s: TargetSummary | undefined, v: number | undefined, unit: string, range?: [number, number]) =>
    v === undefined || Number.isNaN(v) ? (s?.status === 'ok' ? 'no bare-proxy run' : (s?.status ?? 'not run')) : `${v.toFixed(2)}${unit}${range && s!.rounds > 1 ? ` (rounds: ${range[0].toFixed(2)}..${range[1].toFixed(2)})` : ''}`;
  const ratio = (id: TargetId, goal: number) => {
    const s = t.get(id);
    const v = s?.median?.throughputVsBare;
    checks.push({ target: s?.label ?? id, metric: 'throughput vs bare proxy', goal: `>= ${goal}x`, value: value(s, v, 'x', s?.throughputVsBareRange), pass: v === undefined || Number.isNaN(v) ? null : v >= goal });
  };
  ratio('groups', 0.8);
  const g = t.get('groups');
  const added = g?.median?.addedP99VsBareMs;
  checks.push({ target: g?.label ?? 'groups', metric: `added p99 at ${rate} req/s vs bare proxy`, goal: '<= 0.5 ms', value: value(g, added, ' ms', g?.addedP99VsBareRange), pass: added === undefined || Number.isNaN(added) ? null : added <= 0.5 });
  ratio('tiers', 0.8);
  ratio('redis-groups', 0.6);
  ratio('redis-tiers', 0.6);
  return checks;
}

function pad(s: string, n: number, right = false): string {
  return right ? s.padStart(n) : s.padEnd(n);
}

const f = (v: number | undefined, d = 2) => (v === undefined || Number.isNaN(v) ? '' : v.toFixed(d));

export function render(r: Report): string {
  const lines: string[] = [];
  const m = r.machine;
  lines.push('');
  lines.push(`kt benchmark — ${m.cores} cores (${m.cpu}), ${m.node}${m.redis ? `, Redis ${m.redis}` : ''}; ${r.settings.rounds} round(s) in ${r.durationS} s`);
  lines.push(`closed loop: ${r.settings.connections} connections, ${r.settings.durationS} s measured; open loop: ${r.settings.openLoopRate} req/s, ${r.settings.durationS} s measured`);
  if (m.timerJitterMs) lines.push(`noise floor: a 1 ms timer in an idle process fires late by p50 ${m.timerJitterMs.p50.toFixed(2)} ms, p99 ${m.timerJitterMs.p99.toFixed(2)} ms, max ${m.timerJitterMs.max.toFixed(2)} ms`);
  lines.push('');
  const rate = r.settings.openLoopRate;
  const head = ['target', 'req/s', 'p50', 'p99', `p50@${rate}`, `p99@${rate}`, 'vs bare', '+p99 bare', '+p99 direct', 'µs CPU/req', 'other load', 'redis cmd/req'];
  const w = [34, 7, 6, 6, 9, 9, 7, 9, 11, 10, 10, 13];
  lines.push(head.map((h, i) => pad(h, w[i]!, i > 0)).join(' '));
  lines.push(w.map((n) => '-'.repeat(n)).join(' '));
  for (const s of r.summary) {
    if (!s.median) {
      lines.push(`${pad(s.label, w[0]!)} ${s.status}: ${s.reason ?? ''}`);
      continue;
    }
    const x = s.median;
    const redis = x.redisCommandsPerRequest === undefined ? '' : `${f(x.redisCommandsPerRequest, 1)} / ${f(x.redisRoundTripsPerRequest, 1)} rt`;
    const cells = [s.label, f(x.rps, 0), f(x.p50), f(x.p99), f(x.openP50), f(x.openP99), x.throughputVsBare === undefined ? '' : `${f(x.throughputVsBare)}x`, f(x.addedP99VsBareMs), f(x.addedP99VsDirectMs), f(x.cpuUs, 0), `${f(x.otherLoadPct, 0)}%`, redis];
    lines.push(cells.map((c, i) => pad(c, w[i]!, i > 0)).join(' '));
  }
  lines.push(`latencies in ms${r.settings.rounds > 1 ? '; every number is the median over the rounds' : ''}. req/s, p50, p99: closed loop. p50@/p99@: open loop at the`);
  lines.push('fixed rate. +p99: p99 at the fixed rate minus the bare proxy\'s / the upstream\'s. µs CPU/req: CPU of the server process per');
  lines.push('response (closed loop, all threads). other load: share of the machine used by anything outside the benchmark (other');
  lines.push('processes, hypervisor steal) during the run; near 0% or the numbers are disturbed. redis: commands Redis ran per');
  lines.push('admitted request (scripts\' inner commands included) / round trips the gateway made.');

  const last = r.rounds.at(-1) ?? [];
  if (last.some((x) => x.status === 'ok')) {
    lines.push('');
    lines.push(`CPU use during the closed loop${r.settings.rounds > 1 ? ' (last round)' : ''}, % of one core:`);
    for (const x of last) {
      if (x.status !== 'ok') continue;
      const u = Object.entries(x.closed!.cpu.utilisation)
        .map(([k, v]) => `${k} ${v.toFixed(0)}%`)
        .join(', ');
      lines.push(`  ${pad(x.label, 34)} ${u}`);
    }
  }
  const redisRows = last.filter((x) => x.redis);
  if (redisRows.length) {
    lines.push('');
    lines.push(`Redis commands per admitted request, from INFO commandstats${r.settings.rounds > 1 ? ' (last round)' : ''}:`);
    for (const x of redisRows) {
      const c = x.redis!;
      const rare = Object.entries(c.commands).filter(([, v]) => v / c.admitted < 0.01);
      const top = Object.entries(c.commands)
        .filter(([, v]) => v / c.admitted >= 0.01)
        .sort((a, b) => b[1] - a[1])
        .map(([k, v]) => `${k} ${(v / c.admitted).toFixed(2)}`)
        .concat(rare.length ? [`(+${rare.reduce((a, [, v]) => a + v, 0)} calls of ${rare.map(([k]) => k).join(', ')})`] : [])
        .join(', ');
      lines.push(`  ${x.label}: ${c.commandsPerRequest.toFixed(2)} commands in ${c.roundTripsPerRequest.toFixed(2)} round trips (${c.scriptCallsPerRequest.toFixed(2)} script calls; ${c.admitted} admitted)`);
      lines.push(`    ${top}`);
      const a = c.admissions;
      if (a) lines.push(`    admissions decided from local quota slices ${((100 * a.local) / (a.local + a.redis)).toFixed(1)}%, with a script call ${((100 * a.redis) / (a.local + a.redis)).toFixed(1)}% (${a.redis} of ${a.local + a.redis}); ${a.syncs} syncs`);
    }
  }
  lines.push('');
  lines.push('targets:');
  for (const c of r.checks) lines.push(`  ${c.pass === null ? 'n/a ' : c.pass ? 'PASS' : 'MISS'}  ${pad(c.target, 34)} ${pad(c.metric, 38)} ${pad(c.goal, 9)} ${c.value}`);
  lines.push('');
  for (const n of r.notes) lines.push(`note: ${n}`);
  return `${lines.join('\n')}\n`;
}

/** Warnings worth printing under the table. */
export function notesOf(rounds: TargetResult[][], cores: number, redisUsed: boolean): string[] {
  const notes = [
    `Every process (load generator, server under test, mock upstream${redisUsed ? ', Redis' : ''}) runs on the same ${cores} cores: a server's throughput is what the others leave it, so the ratios understate the gateway's own cost difference; µs CPU/req compares the servers alone.`,
  ];
  rounds.forEach((round, i) => {
    const tag = rounds.length > 1 ? `round ${i + 1}, ` : '';
    for (const r of round) {
      if (r.status !== 'ok') continue;
      for (const p of [r.closed!, r.open!]) {
        const bad = Object.entries(p.statuses).filter(([k]) => !k.startsWith('2'));
        if (bad.length) notes.push(`${tag}${r.label}: non-2xx answers in the ${p.mode} loop: ${bad.map(([k, v]) => `${k}×${v}`).join(', ')} (${p.errorSamples[0] ?? ''})`);
      }
      const other = Math.max(r.closed!.cpu.otherLoadPct, r.open!.cpu.otherLoadPct);
      if (other > 10) notes.push(`${tag}${r.label}: something outside the benchmark used ${other.toFixed(0)}% of the machine meanwhile: disturbed.`);
      const lag = r.open!.sendLag;
      if (lag && lag.p99 > 5) notes.push(`${tag}${r.label}: the open-loop sender ran late (p99 ${lag.p99.toFixed(1)} ms behind schedule): the machine was saturated at ${r.open!.offeredRps?.toFixed(0)} req/s.`);
      if (r.redis && r.redis.otherClientsActive > 0) notes.push(`${tag}${r.label}: other Redis clients were active during the run (${r.redis.otherClientsActive} connection(s)); their commands are in the Redis counts.`);
    }
  });
  return notes;
}

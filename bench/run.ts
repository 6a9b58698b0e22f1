/**
 * `npm run bench`: throughput and latency of the gateway against the upstream alone and a bare
 * pass-through proxy, in one run, each server in its own process, the load generator in another.
 * `npm run bench -- --memory` runs the memory benchmark instead (bench/memory-scale.ts).
 * What is measured and how to read it: docs/performance.md.
 *
 * Options: --connections N (closed loop, default 32), --duration S (measured seconds per phase,
 * default 5), --warmup S (default 1), --rate N (open loop req/s, default 1000), --rounds N (run every
 * target N times, in turn, and report medians; default 1), --only a,b (targets: direct, bare, groups,
 * tiers, redis-groups, redis-tiers), --no-build, --no-redis,
 * --redis-url URL (default redis://127.0.0.1:6379/0), --cpu-prof DIR (write V8 CPU profiles of the
 * bare proxy and gateway processes to DIR; profiling slows them down, so the numbers of such a run
 * are not comparable).
 */
import { fork, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem, type as osType, release } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { request } from 'undici';
import type { LoadResult, LoadSpec } from './loadgen.ts';
import { cpuMs, envWithoutDev, killAll, machineBusyMs, start, tail, type Proc } from './procs.ts';
import { ACQUIRE_LUA, RENEW_LUA, SETTLE_LUA, SYNC_LUA } from '../src/limits/stores/redis/scripts.ts';
import { diffCommands, redisCost, RedisProbe, type RedisCost } from './redis-stats.ts';
import { plainHeaders, REQUEST_BODY, REQUEST_PATH, SCENARIOS, type GatewayScenario } from './scenarios.ts';
import { checksOf, notesOf, render, summarizeRounds, type PhaseCpu, type Report, type TargetId, type TargetResult } from './report.ts';
import type { LatencySummary } from './stats.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(ROOT, 'bin/kt.js');
/** A default run (one round) takes about 90 s; past this everything is stopped. */
const WATCHDOG_PER_ROUND_MS = 150_000;
/** A target measured while others used more than this share of the machine (%) is measured again... */
const DISTURBED_PCT = 10;
/** ...as long as the round has not run longer than this. */
const RETRY_BUDGET_MS = 110_000;

const { values: opt } = parseArgs({
  options: {
    memory: { type: 'boolean', default: false },
    rounds: { type: 'string', default: '1' },
    connections: { type: 'string', default: '32' },
    duration: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
    rate: { type: 'string', default: '1000' },
    only: { type: 'string' },
    'no-build': { type: 'boolean', default: false },
    'no-redis': { type: 'boolean', default: false },
    'redis-url': { type: 'string', default: 'redis://127.0.0.1:6379/0' },
    'cpu-prof': { type: 'string' },
  },
  allowPositionals: false,
});

if (opt.memory) {
  const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', join(ROOT, 'bench/memory-scale.ts')], { stdio: 'inherit', cwd: ROOT });
  process.exit(r.status ?? 1);
}

const CONNECTIONS = positive('connections', opt.connections);
const DURATION_MS = positive('duration', opt.duration) * 1000;
const WARMUP_MS = Number(opt.warmup) * 1000;
const RATE = positive('rate', opt.rate);
const ROUNDS = Math.round(positive('rounds', opt.rounds));
const REDIS_URL = opt['redis-url'];
/** Node flags for the servers under test (profiling only). */
const SERVER_NODE_ARGS = opt['cpu-prof'] ? ['--cpu-prof', '--cpu-prof-dir', opt['cpu-prof']] : [];
const STOP_GRACE_MS = opt['cpu-prof'] ? 20_000 : 3_000;
const redisHost = new URL(REDIS_URL).hostname;
if (redisHost !== '127.0.0.1' && redisHost !== 'localhost') fail(`--redis-url must point at 127.0.0.1 (got ${REDIS_URL})`);

function positive(name: string, v: string | undefined): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) fail(`--${name} must be a positive number (got ${v})`);
  return n;
}

function fail(message: string): never {
  process.stderr.write(`bench: ${message}\n`);
  killAll();
  process.exit(1);
}

const WATCHDOG_MS = 30_000 + ROUNDS * WATCHDOG_PER_ROUND_MS;
const watchdog = setTimeout(() => fail(`the benchmark took longer than ${WATCHDOG_MS / 1000} s; stopped`), WATCHDOG_MS);
watchdog.unref();

const LOAD_AT_START = loadavg().map((x) => Math.round(x * 100) / 100);
const scratch = mkdtempSync(join(tmpdir(), 'kt-bench-'));
process.once('exit', () => rmSync(scratch, { recursive: true, force: true }));

// ---------------------------------------------------------------------------------------------
// Build: the gateway and the upstream run from dist/ (compiled JS), as users run them.

function newestMtime(dir: string): number {
  let newest = 0;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const s = statSync(p);
    newest = Math.max(newest, s.isDirectory() ? newestMtime(p) : s.mtimeMs);
  }
  return newest;
}

function ensureBuilt(): void {
  const distMain = join(ROOT, 'dist/cli/main.js');
  // tsc leaves an output file alone when its content did not change, so the newest file in dist/
  // can be older than a source edited since; a stamp written after each build here covers that.
  const stamp = join(ROOT, 'dist/.bench-build-stamp');
  const built = existsSync(distMain) ? newestMtime(join(ROOT, 'dist')) : 0;
  const stale = !built || newestMtime(join(ROOT, 'src')) > built;
  if (opt['no-build']) {
    if (!existsSync(distMain)) fail('dist/ is missing; run `npm run build` or drop --no-build');
    if (stale) log('note: dist/ is older than src/ (--no-build given; running the old build)');
    return;
  }
  if (!stale) return log('dist/ is up to date');
  log('building dist/ (npm run build) ...');
  const t = performance.now();
  const r = spawnSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0) fail(`the build failed:\n${tail(`${r.stdout}${r.stderr}`, 30)}`);
  writeFileSync(stamp, `${new Date().toISOString()}\n`);
  log(`built in ${((performance.now() - t) / 1000).toFixed(1)} s`);
}

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

// ---------------------------------------------------------------------------------------------
// Load generator (own process, IPC).

class LoadGen {
  private seq = 0;
  private readonly waiting = new Map<number, { resolve(r: LoadResult): void; reject(e: Error): void }>();
  private constructor(readonly child: ChildProcess) {
    child.on('message', (m: { type: string; id: number; result?: LoadResult; message?: string }) => {
      const w = this.waiting.get(m.id);
      if (!w) return;
      this.waiting.delete(m.id);
      if (m.type === 'result') w.resolve(m.result!);
      else w.reject(new Error(`load generator: ${m.message}`));
    });
    child.once('exit', (code) => {
      for (const w of this.waiting.values()) w.reject(new Error(`load generator exited (${code})`));
      this.waiting.clear();
    });
  }

  static async start(): Promise<LoadGen> {
    // A larger young generation: fewer scavenges in the generator, so fewer of its own pauses in the latencies.
    const child = fork(join(ROOT, 'bench/loadgen.ts'), [], { execArgv: ['--max-semi-space-size=32', '--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'], cwd: ROOT });
    process.once('exit', () => child.exitCode === null && child.kill('SIGKILL'));
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('the load generator did not start within 15 s')), 15_000);
      child.once('message', () => {
        clearTimeout(t);
        resolve();
      });
      child.once('exit', (code) => reject(new Error(`the load generator exited (${code})`)));
    });
    return new LoadGen(child);
  }

  run(spec: LoadSpec): Promise<LoadResult> {
    return this.ask({ type: 'run', spec }, spec.warmupMs + spec.durationMs + 30_000);
  }

  jitter(durationMs: number): Promise<LatencySummary> {
    return this.ask({ type: 'jitter', durationMs }, durationMs + 10_000) as Promise<unknown> as Promise<LatencySummary>;
  }

  private ask(message: Record<string, unknown>, limitMs: number): Promise<LoadResult> {
    const id = ++this.seq;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`the load generator did not answer within ${limitMs} ms`));
      }, limitMs);
      this.waiting.set(id, {
        resolve: (r) => (clearTimeout(t), resolve(r)),
        reject: (e) => (clearTimeout(t), reject(e)),
      });
      this.child.send({ ...message, id });
    });
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.send({ type: 'exit' });
    const t = setTimeout(() => this.child.kill('SIGKILL'), 3_000);
    await exited;
    clearTimeout(t);
  }
}

// ---------------------------------------------------------------------------------------------
// Servers.

async function startUpstream(): Promise<{ proc: Proc; origin: string }> {
  const proc = start('mock upstream', process.execPath, [BIN, 'mock-upstream', '--port', '0'], { cwd: ROOT, env: envWithoutDev() });
  const m = await proc.waitFor(/mock upstream listening on (http:\/\/[^\s/]+)\/v1/);
  return { proc, origin: m[1]! };
}

async function startBare(upstreamOrigin: string): Promise<{ proc: Proc; origin: string }> {
  const proc = start('bare proxy', process.execPath, [...SERVER_NODE_ARGS, '--import', 'tsx', join(ROOT, 'bench/bare-proxy.ts'), '--upstream', upstreamOrigin], { cwd: ROOT });
  const m = await proc.waitFor(/bare proxy listening on (http:\/\/[^\s]+)/);
  return { proc, origin: m[1]! };
}

let gatewaySeq = 0;
async function startGateway(s: GatewayScenario, upstreamOrigin: string, redisPrefix: string | null): Promise<{ proc: Proc; origin: string }> {
  const n = ++gatewaySeq;
  const cfg = join(scratch, `gateway-${n}.yaml`);
  writeFileSync(cfg, s.config(`${upstreamOrigin}/v1`, redisPrefix ? { urlEnv: 'KT_BENCH_REDIS_URL', keyPrefix: redisPrefix } : null));
  const dataDir = join(scratch, `data-${n}`);
  mkdirSync(dataDir);
  // --log-level info only for the startup lines (the port); the gateway logs nothing per request.
  const proc = start(`gateway (${s.label})`, process.execPath, [...SERVER_NODE_ARGS, BIN, 'gateway', 'run', '--policy-config', cfg, '--listen', '127.0.0.1:0', '--log-level', 'info', '--log-format', 'text'], {
    cwd: scratch,
    env: envWithoutDev({ KT_DATA_DIR: dataDir, KT_BENCH_REDIS_URL: REDIS_URL }),
  });
  const m = await proc.waitFor(/Listening on [^\s]+:(\d+)/);
  await proc.waitFor(/Gateway ready/);
  return { proc, origin: `http://127.0.0.1:${m[1]}` };
}

async function readyLimiter(origin: string): Promise<string> {
  const r = await request(`${origin}/readyz`, { headersTimeout: 5_000, bodyTimeout: 5_000 });
  const body = (await r.body.json()) as { limiter?: string };
  return String(body.limiter ?? 'unknown');
}

/** One request before measuring: the target must answer it with 200. */
async function smoke(origin: string, headers: Record<string, string>): Promise<void> {
  const r = await request(`${origin}${REQUEST_PATH}`, { method: 'POST', headers, body: REQUEST_BODY, headersTimeout: 10_000, bodyTimeout: 10_000 });
  const text = await r.body.text();
  if (r.statusCode !== 200) throw new Error(`a test request got ${r.statusCode}: ${text.slice(0, 500)}`);
}

// ---------------------------------------------------------------------------------------------
// One target: closed loop then open loop.

async function measure(gen: LoadGen, origin: string, headers: Record<string, string>[], pids: Record<string, number>, server: string): Promise<{ closed: LoadResult & { cpu: PhaseCpu }; open: LoadResult & { cpu: PhaseCpu } }> {
  const base = { origin, path: REQUEST_PATH, headers, body: REQUEST_BODY, connections: CONNECTIONS, warmupMs: WARMUP_MS, durationMs: DURATION_MS };
  const closed = await withCpu(pids, server, () => gen.run({ ...base, mode: 'closed' }));
  const open = await withCpu(pids, server, () => gen.run({ ...base, mode: 'open', rate: RATE, connections: Math.max(CONNECTIONS, 64) }));
  return { closed, open };
}

/** Runs a phase and measures the CPU every process (ours and everyone else's) used meanwhile. */
async function withCpu(pids: Record<string, number>, server: string, phase: () => Promise<LoadResult>): Promise<LoadResult & { cpu: PhaseCpu }> {
  pids = { ...pids, bench: process.pid };
  const sample = () => Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuMs(pid)]));
  const cpu0 = sample();
  const machine0 = machineBusyMs();
  const t0 = performance.now();
  const result = await phase();
  const wall = performance.now() - t0;
  const cpu1 = sample();
  const used = Object.fromEntries(Object.keys(pids).map((k) => [k, cpu1[k]! - cpu0[k]!]));
  const ours = Object.values(used).reduce((a, b) => a + b, 0);
  const machine = machineBusyMs() - machine0;
  return {
    ...result,
    cpu: {
      serverUsPerRequest: result.total ? (used[server]! * 1000) / result.total : NaN,
      utilisation: Object.fromEntries(Object.entries(used).map(([k, ms]) => [k, (100 * ms) / wall])),
      otherLoadPct: Math.max(0, (100 * (machine - ours)) / (wall * cpus().length)),
    },
  };
}

/** The Redis limit store's counts from the gateway's /metrics (null when it exports none). */
async function limiterCounts(origin: string): Promise<{ local: number; redis: number; syncs: number } | null> {
  const res = await request(`${origin}/metrics`);
  const text = await res.body.text();
  const value = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
  const c = { local: value(/^kt_limiter_admissions_total\{decided="local"\} (\S+)$/m), redis: value(/^kt_limiter_admissions_total\{decided="redis"\} (\S+)$/m), syncs: value(/^kt_limiter_syncs_total (\S+)$/m) };
  return Number.isFinite(c.local + c.redis + c.syncs) ? c : null;
}

/** Every command a kt script runs (from the script texts themselves, whichever file holds their Lua). */
function scriptCommands(): Set<string> {
  const out = new Set<string>();
  for (const lua of [ACQUIRE_LUA, SETTLE_LUA, RENEW_LUA, SYNC_LUA]) {
    for (const m of lua.matchAll(/redis\.p?call\(\s*['"]([A-Za-z]+)['"]/g)) out.add(m[1]!.toLowerCase());
  }
  return out;
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const ids: TargetId[] = ['direct', 'bare', 'groups', 'tiers', 'redis-groups', 'redis-tiers'];
  const only = opt.only ? new Set(opt.only.split(',').map((s) => s.trim())) : null;
  if (only) for (const id of only) if (!ids.includes(id as TargetId)) fail(`--only: unknown target "${id}" (${ids.join(', ')})`);
  const wanted = (id: TargetId) => !only || only.has(id);

  ensureBuilt();
  log(`machine: ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), node ${process.version}, load average ${LOAD_AT_START.join(' ')}`);
  log(`load: closed loop ${CONNECTIONS} connections, ${WARMUP_MS / 1000} s warm-up + ${DURATION_MS / 1000} s; open loop ${RATE} req/s, ${WARMUP_MS / 1000} s + ${DURATION_MS / 1000} s; ${ROUNDS} round(s)`);

  const upstream = await startUpstream();
  const gen = await LoadGen.start();
  const rounds: TargetResult[][] = [];
  let redis: RedisProbe | null = null;
  let redisVersion: string | null = null;
  let redisPid = -1;
  let redisMissing: string | null = opt['no-redis'] ? 'skipped (--no-redis)' : null;
  let jitter: LatencySummary | null = null;
  try {
    if (!redisMissing && (wanted('redis-groups') || wanted('redis-tiers'))) {
      const c = await RedisProbe.connect(REDIS_URL);
      if ('error' in c) redisMissing = c.error;
      else {
        redis = c.probe;
        const info = await redis.client.info('server');
        redisVersion = /redis_version:(\S+)/.exec(info)?.[1] ?? null;
        redisPid = Number(/process_id:(\d+)/.exec(info)?.[1] ?? -1);
      }
    }
    jitter = await gen.jitter(2_000);
    log(`timer jitter (1 ms timer, idle): p50 ${jitter.p50.toFixed(2)} ms, p99 ${jitter.p99.toFixed(2)} ms, max ${jitter.max.toFixed(2)} ms`);
    const basePids = { upstream: upstream.proc.pid, loadgen: gen.child.pid ?? -1 };
    const runTarget = async (id: TargetId, round: number): Promise<TargetResult> => {
      if (id === 'direct') {
        const headers = plainHeaders();
        await smoke(upstream.origin, headers[0]!);
        return { id, label: 'upstream directly', status: 'ok', ...(await measure(gen, upstream.origin, headers, basePids, 'upstream')) };
      }
      if (id === 'bare') {
        const bare = await startBare(upstream.origin);
        try {
          const headers = plainHeaders();
          await smoke(bare.origin, headers[0]!);
          return { id, label: 'bare proxy', status: 'ok', ...(await measure(gen, bare.origin, headers, { ...basePids, server: bare.proc.pid }, 'server')) };
        } finally {
          await bare.proc.stop(STOP_GRACE_MS);
        }
      }
      const s = SCENARIOS.find((x) => (x.redis ? `redis-${x.id}` : x.id) === id)!;
      if (s.redis && (redisMissing || !redis)) return { id, label: s.label, status: 'not available', reason: redisMissing ?? 'no Redis' };
      const pids = s.redis && redisPid > 0 ? { ...basePids, redis: redisPid } : basePids;
      return runGateway(s, id, upstream.origin, gen, pids, redis, round);
    };
    const labels: Record<TargetId, string> = {
      direct: 'the upstream alone',
      bare: 'bare pass-through proxy',
      ...(Object.fromEntries(SCENARIOS.map((x) => [x.redis ? `redis-${x.id}` : x.id, x.label])) as Record<'groups' | 'tiers' | 'redis-groups' | 'redis-tiers', string>),
    };
    for (let round = 1; round <= ROUNDS; round++) {
      if (ROUNDS > 1) log(`\n=== round ${round} of ${ROUNDS}`);
      const results: TargetResult[] = [];
      rounds.push(results);
      for (const id of ids) {
        if (!wanted(id)) continue;
        log(`\n[${id}] ${labels[id]}`);
        let result = await runTarget(id, round);
        // Another process took a share of the machine meanwhile: measure again while time allows,
        // and keep the least disturbed measurement.
        for (let retry = 0; retry < 2 && disturbance(result) > DISTURBED_PCT && performance.now() - t0 < RETRY_BUDGET_MS * round; retry++) {
          log(`  disturbed (${disturbance(result).toFixed(0)}% of the machine used by others); measuring again`);
          const again = await runTarget(id, round);
          if (disturbance(again) < disturbance(result)) result = again;
        }
        results.push(result);
        progress(result);
      }
    }
  } finally {
    await gen.stop();
    await upstream.proc.stop();
    await redis?.close();
  }

  const summary = summarizeRounds(rounds);
  const report: Report = {
    date: new Date().toISOString(),
    machine: { cores: cpus().length, cpu: cpus()[0]?.model ?? '?', memoryGb: Math.round(totalmem() / 2 ** 30), os: `${osType()} ${release()}`, node: process.version, redis: redisVersion, loadAverageAtStart: LOAD_AT_START, timerJitterMs: jitter },
    settings: { rounds: ROUNDS, connections: CONNECTIONS, warmupS: WARMUP_MS / 1000, durationS: DURATION_MS / 1000, openLoopRate: RATE, request: `POST ${REQUEST_PATH} ${REQUEST_BODY}` },
    durationS: Math.round((performance.now() - t0) / 1000),
    summary,
    checks: checksOf(summary, RATE),
    notes: notesOf(rounds, cpus().length, rounds.flat().some((r) => r.id.startsWith('redis') && r.status === 'ok')),
    rounds,
  };
  process.stdout.write(render(report));
  const dir = join(ROOT, 'bench/results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`\nresults: ${file}\n`);
  if (rounds.flat().some((r) => r.status === 'failed')) process.exitCode = 1;
}

async function runGateway(s: GatewayScenario, id: TargetId, upstreamOrigin: string, gen: LoadGen, basePids: Record<string, number>, redis: RedisProbe | null, round: number): Promise<TargetResult> {
  const prefix = s.redis ? `kt:bench:${process.pid}:${id}:r${round}:` : null;
  let gw: { proc: Proc; origin: string } | null = null;
  const before = s.redis && redis ? await redis.clientIds() : null;
  try {
    try {
      gw = await startGateway(s, upstreamOrigin, prefix);
    } catch (err) {
      const why = (err as Error).message;
      if (s.redis) return { id, label: s.label, status: 'not available', reason: `the gateway did not start with distributed_rate_limit: ${why.split('\n').slice(0, 4).join(' | ')}` };
      throw err;
    }
    const limiter = await readyLimiter(gw.origin);
    if (s.redis && limiter !== 'redis')
      return { id, label: s.label, status: 'not available', limiter, reason: `with distributed_rate_limit.enabled the gateway reports limiter "${limiter}" on /readyz (no Redis limit store wired in)` };
    const headers = s.headers();
    await smoke(gw.origin, headers[0]!);
    const gatewayConns = before && redis ? new Set([...(await redis.clientIds())].filter((x) => !before.has(x))) : null;
    const stats0 = redis && s.redis ? await redis.commandStats() : null;
    const conns0 = redis && s.redis ? await redis.connectionsReceived() : 0;
    const limiter0 = s.redis ? await limiterCounts(gw.origin) : null;
    const phaseStart = performance.now();
    const m = await measure(gen, gw.origin, headers, { ...basePids, server: gw.proc.pid }, 'server');
    let cost: RedisCost | undefined;
    if (redis && stats0 && gatewayConns) {
      const commands = diffCommands(stats0, await redis.commandStats());
      // Someone else's commands would be in the counts: connections still open that ran something
      // meanwhile, and connections opened (and maybe closed again) during the run.
      const opened = (await redis.connectionsReceived()) - conns0;
      const others = (await redis.othersActive(gatewayConns, Math.ceil((performance.now() - phaseStart) / 1000))) + Math.max(0, opened);
      cost = redisCost(commands, m.closed.okTotal + m.open.okTotal, others, scriptCommands());
      const limiter1 = limiter0 ? await limiterCounts(gw.origin) : null;
      if (limiter0 && limiter1) cost.admissions = { local: limiter1.local - limiter0.local, redis: limiter1.redis - limiter0.redis, syncs: limiter1.syncs - limiter0.syncs };
    }
    return { id, label: s.label, status: 'ok', limiter, ...m, redis: cost };
  } catch (err) {
    const out = gw ? `\n${tail(gw.proc.output())}` : '';
    return { id, label: s.label, status: 'failed', reason: `${(err as Error).message}${out}` };
  } finally {
    await gw?.proc.stop(STOP_GRACE_MS);
    if (prefix && redis) await redis.deletePrefix(prefix).catch(() => undefined);
  }
}

/** Share of the machine (%) used by others while a target was measured; 0 when it did not run. */
function disturbance(r: TargetResult): number {
  return r.status === 'ok' ? Math.max(r.closed!.cpu.otherLoadPct, r.open!.cpu.otherLoadPct) : 0;
}

function progress(r: TargetResult): void {
  if (r.status !== 'ok') return log(`  ${r.status}: ${r.reason}`);
  const c = r.closed!;
  const o = r.open!;
  log(`  closed: ${c.rps.toFixed(0)} req/s, p50 ${ms(c.latency.p50)}, p99 ${ms(c.latency.p99)}${errors(c)}`);
  log(`  open ${RATE}/s: p50 ${ms(o.latency.p50)}, p99 ${ms(o.latency.p99)}${errors(o)}`);
}

function errors(r: LoadResult): string {
  const bad = Object.entries(r.statuses).filter(([k]) => !k.startsWith('2'));
  return bad.length ? `  NON-2xx: ${bad.map(([k, v]) => `${k}×${v}`).join(', ')} ${r.errorSamples[0] ?? ''}` : '';
}

function ms(v: number | undefined): string {
  return v === undefined || Number.isNaN(v) ? '—' : `${v.toFixed(2)} ms`;
}

main().catch((err: Error) => fail(err.stack ?? String(err)));

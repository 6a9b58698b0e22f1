/**
 * `npm run bench:ab`: two builds of the gateway side by side, to measure a change smaller than the
 * drift between runs of `npm run bench` on a shared VM.
 *
 * Both gateways run at the same time against one mock upstream, each under its own closed loop of
 * `--connections` from this process, so whatever else the machine does slows both alike. For each
 * round it reports, per build, the responses per second and the CPU per response of the whole process
 * (every thread) and of its main thread alone (the event loop, which is what caps a gateway's
 * throughput). Rounds alternate which build starts first; the summary is the median over rounds of
 * B minus A, with how many rounds B came out lower.
 *
 *   npm run bench:ab -- --a DIR --b DIR [--target redis-tiers] [--rounds 6] [--duration 8] [--warmup 2]
 *                       [--a-node-args="FLAGS"] [--b-node-args="FLAGS"]
 *
 * `--a-node-args` / `--b-node-args` pass Node.js or V8 flags to one build's gateway process (e.g.
 * `--max-semi-space-size=64`); the same directory may then be given as both builds.
 *
 * A build is a directory holding `bin/kt.js`, `dist/`, `package.json` and `node_modules`, e.g. a copy
 * of this checkout's build with its node_modules linked:
 *
 *   npm run build && mkdir /tmp/kt-a && cp -r bin dist package.json /tmp/kt-a/ && ln -s "$PWD/node_modules" /tmp/kt-a/
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { cpuMs, envWithoutDev, start, killAll, type Proc } from './procs.ts';
import { RedisProbe } from './redis-stats.ts';
import { REQUEST_BODY, REQUEST_PATH, SCENARIOS, type GatewayScenario } from './scenarios.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const { values: opt } = parseArgs({
  options: {
    a: { type: 'string' },
    b: { type: 'string' },
    target: { type: 'string', default: 'redis-tiers' },
    rounds: { type: 'string', default: '6' },
    duration: { type: 'string', default: '8' },
    warmup: { type: 'string', default: '2' },
    connections: { type: 'string', default: '16' },
    'redis-url': { type: 'string', default: 'redis://127.0.0.1:6379/0' },
    'a-node-args': { type: 'string', default: '' },
    'b-node-args': { type: 'string', default: '' },
  },
});
const log = (s: string) => process.stderr.write(`${s}\n`);
function fail(msg: string): never {
  log(`bench:ab: ${msg}`);
  process.exit(2);
}

const builds = [opt.a, opt.b].map((d, i) => {
  if (!d) fail('give both builds: --a DIR --b DIR (see the header of bench/ab.ts)');
  const dir = resolve(d);
  if (!existsSync(join(dir, 'bin/kt.js')) || !existsSync(join(dir, 'dist/cli/main.js'))) fail(`${dir} holds no kt build (bin/kt.js and dist/)`);
  const nodeArgs = (i === 0 ? opt['a-node-args'] : opt['b-node-args']).split(' ').filter(Boolean);
  return { name: i === 0 ? 'A' : 'B', dir, nodeArgs };
});
const scenario = SCENARIOS.find((s) => (s.redis ? 'redis-' : '') + s.id === opt.target) ?? fail(`unknown --target ${opt.target}: groups, tiers, redis-groups, redis-tiers`);
const ROUNDS = Number(opt.rounds);
const DURATION_MS = Number(opt.duration) * 1000;
const WARMUP_MS = Number(opt.warmup) * 1000;
const CONNECTIONS = Number(opt.connections);

interface Gateway {
  build: (typeof builds)[number];
  proc: Proc;
  pool: Pool;
  done: number;
  prefix: string | null;
}

async function startGateway(build: (typeof builds)[number], s: GatewayScenario, upstreamV1: string, scratch: string, round: number): Promise<Gateway> {
  const dir = join(scratch, `${build.name}-${round}`);
  mkdirSync(dir);
  const prefix = s.redis ? `kt:bench-ab:${process.pid}:${build.name}${round}:` : null;
  const cfg = join(dir, 'gateway.yaml');
  writeFileSync(cfg, s.config(upstreamV1, prefix ? { urlEnv: 'KT_BENCH_REDIS_URL', keyPrefix: prefix } : null));
  const env = envWithoutDev({ KT_DATA_DIR: dir, KT_BENCH_REDIS_URL: opt['redis-url'] });
  const proc = start(`gateway ${build.name}`, process.execPath, [...build.nodeArgs, join(build.dir, 'bin/kt.js'), 'gateway', 'run', '--policy-config', cfg, '--listen', '127.0.0.1:0', '--log-level', 'info', '--log-format', 'text'], { cwd: dir, env });
  const m = await proc.waitFor(/Listening on [^\s]+:(\d+)/);
  await proc.waitFor(/Gateway ready/);
  return { build, proc, pool: new Pool(`http://127.0.0.1:${m[1]}`, { connections: CONNECTIONS, pipelining: 1 }), done: 0, prefix };
}

interface Sample {
  rps: number;
  processUs: number;
  mainUs: number;
}

async function round(r: number, upstreamV1: string, scratch: string): Promise<Record<string, Sample>> {
  const order = r % 2 === 0 ? builds : [...builds].reverse();
  const gws: Gateway[] = [];
  for (const b of order) gws.push(await startGateway(b, scenario, upstreamV1, scratch, r));
  const headers = scenario.headers();
  let stop = false;
  let seq = 0;
  let failure: Error | null = null;
  const loops = gws.flatMap((g) =>
    Array.from({ length: CONNECTIONS }, async () => {
      while (!stop) {
        const res = await g.pool.request({ method: 'POST', path: REQUEST_PATH, headers: headers[seq++ % headers.length], body: REQUEST_BODY });
        const text = await res.body.text();
        if (res.statusCode !== 200) throw new Error(`gateway ${g.build.name} answered ${res.statusCode}: ${text.slice(0, 300)}`);
        g.done++;
      }
    }),
  );
  const watched = Promise.all(loops).catch((err: Error) => {
    failure = err;
    stop = true;
  });
  const snap = () => gws.map((g) => ({ done: g.done, cpu: cpuMs(g.proc.pid), main: cpuMs(g.proc.pid, g.proc.pid), at: performance.now() }));
  await new Promise((res) => setTimeout(res, WARMUP_MS));
  const before = snap();
  await new Promise((res) => setTimeout(res, DURATION_MS));
  const after = snap();
  stop = true;
  await watched;
  for (const g of gws) {
    await g.pool.close();
    await g.proc.stop();
  }
  if (failure) throw failure;
  const out: Record<string, Sample> = {};
  gws.forEach((g, i) => {
    const n = after[i]!.done - before[i]!.done;
    out[g.build.name] = {
      rps: (n * 1000) / (after[i]!.at - before[i]!.at),
      processUs: ((after[i]!.cpu - before[i]!.cpu) * 1000) / n,
      mainUs: ((after[i]!.main - before[i]!.main) * 1000) / n,
    };
  });
  return out;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function main(): Promise<void> {
  let probe: RedisProbe | null = null;
  if (scenario.redis) {
    const c = await RedisProbe.connect(opt['redis-url']);
    if ('error' in c) fail(c.error);
    probe = c.probe;
  }
  const scratch = mkdtempSync(join(tmpdir(), 'kt-bench-ab-'));
  const upstream = start('mock upstream', process.execPath, [join(ROOT, 'bin/kt.js'), 'mock-upstream', '--port', '0'], { cwd: ROOT, env: envWithoutDev() });
  const upstreamV1 = (await upstream.waitFor(/mock upstream listening on (http:\/\/\S+\/v1)/))[1]!;
  log(`A: ${builds[0]!.dir}\nB: ${builds[1]!.dir}\ntarget: ${scenario.label}; ${ROUNDS} rounds of ${DURATION_MS / 1000} s, ${CONNECTIONS} connections per gateway\n`);
  log('round  build    req/s   µs CPU/req (process)   µs CPU/req (main thread)');
  const samples: Record<string, Sample>[] = [];
  try {
    for (let r = 0; r < ROUNDS; r++) {
      const s = await round(r, upstreamV1, scratch);
      samples.push(s);
      for (const b of ['A', 'B']) log(`${String(r + 1).padStart(5)}  ${b.padEnd(5)} ${s[b]!.rps.toFixed(0).padStart(8)} ${s[b]!.processUs.toFixed(1).padStart(22)} ${s[b]!.mainUs.toFixed(1).padStart(26)}`);
      if (probe) await probe.deletePrefix(`kt:bench-ab:${process.pid}:`);
    }
  } finally {
    await upstream.stop();
    if (probe) {
      await probe.deletePrefix(`kt:bench-ab:${process.pid}:`);
      await probe.close();
    }
    rmSync(scratch, { recursive: true, force: true });
  }
  const diff = (f: (s: Sample) => number) => samples.map((s) => f(s.B!) - f(s.A!));
  const lower = (xs: number[]) => xs.filter((x) => x < 0).length;
  const main = diff((s) => s.mainUs);
  const proc = diff((s) => s.processUs);
  const rps = samples.map((s) => s.B!.rps / s.A!.rps - 1);
  log('');
  log(`B - A, median over ${ROUNDS} rounds:`);
  log(`  main thread  ${median(main) >= 0 ? '+' : ''}${median(main).toFixed(1)} µs CPU per response (B lower in ${lower(main)} of ${ROUNDS})`);
  log(`  process      ${median(proc) >= 0 ? '+' : ''}${median(proc).toFixed(1)} µs CPU per response (B lower in ${lower(proc)} of ${ROUNDS})`);
  log(`  throughput   ${median(rps) >= 0 ? '+' : ''}${(100 * median(rps)).toFixed(1)}% (B higher in ${rps.filter((x) => x > 0).length} of ${ROUNDS})`);
}

main().catch((err: Error) => {
  killAll();
  log(`bench:ab failed: ${err.stack ?? err.message}`);
  process.exit(1);
});

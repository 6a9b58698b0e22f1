/**
 * Child processes of the benchmark: spawned, watched for a line, measured (CPU time from /proc) and
 * always stopped, also when the benchmark fails or is interrupted. Only processes started here are
 * ever signalled, by their own pid.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  output(): string;
  /** Resolves with the first match of `re` in stdout + stderr; rejects on exit or timeout. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  alive(): boolean;
  /** SIGTERM, then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

/** USER_HZ: 100 on every Linux this runs on (`getconf CLK_TCK`). */
const CLOCK_TICKS = 100;

const live = new Set<Proc>();
let hooked = false;

/** Kills every child still running (SIGKILL); safe to call more than once. */
export function killAll(): void {
  for (const p of live) {
    if (p.alive()) {
      try {
        p.child.kill('SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
  live.clear();
}

function hook(): void {
  if (hooked) return;
  hooked = true;
  process.once('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      process.stderr.write(`\nbench: ${sig}, stopping child processes\n`);
      killAll();
      process.exit(130);
    });
  }
}

export function start(name: string, command: string, args: string[], options: SpawnOptions = {}): Proc {
  hook();
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  let out = '';
  const waiters = new Set<() => void>();
  const onData = (d: Buffer) => {
    out += d.toString();
    if (out.length > 200_000) out = out.slice(-100_000);
    for (const w of [...waiters]) w();
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.once('exit', () => {
    for (const w of [...waiters]) w();
  });
  const alive = () => child.exitCode === null && child.signalCode === null;
  const proc: Proc = {
    name,
    child,
    pid: child.pid ?? -1,
    output: () => out,
    alive,
    waitFor(re, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = out.match(re);
          if (m) {
            finish();
            resolve(m);
          } else if (!alive()) {
            finish();
            reject(new Error(`${name} exited (code ${child.exitCode}, signal ${child.signalCode}) before printing ${re}:\n${tail(out)}`));
          }
        };
        const timer = setTimeout(() => {
          finish();
          reject(new Error(`${name} did not print ${re} within ${timeoutMs} ms:\n${tail(out)}`));
        }, timeoutMs);
        const finish = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    async stop(graceMs = 3_000) {
      if (alive()) {
        child.kill('SIGTERM');
        const t = setTimeout(() => alive() && child.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(t);
      }
      live.delete(proc);
    },
  };
  live.add(proc);
  return proc;
}

/** This process's environment for a server under test: without the switches of a development shell. */
export function envWithoutDev(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  delete env.KT_DEV;
  delete env.KT_LOG_LEVEL;
  return env;
}

export function tail(text: string, lines = 15): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

/**
 * CPU time (user + system) a process has used, in ms: all its threads, or only thread `tid` (the
 * main thread's id is the pid). NaN where /proc is missing.
 */
export function cpuMs(pid: number, tid?: number): number {
  try {
    const stat = readFileSync(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces) start after the last ')'.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(f[11]);
    const stime = Number(f[12]);
    return ((utime + stime) * 1000) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}

/** CPU time the whole machine spent busy (all cores, everything but idle and iowait), in ms. */
export function machineBusyMs(): number {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    const idle = (f[3] ?? 0) + (f[4] ?? 0);
    return ((total - idle) * 1000) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}

/**
 * Test harness: real processes and real sockets. Spawns `kt mock-upstream` and `kt gateway run` as
 * child processes (the same CLI users run), or starts a gateway in-process when a test needs to
 * inject a clock or a store. Every helper cleans up after itself via `after` hooks in the tests.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { startGateway, type Gateway } from '../../src/server/gateway.ts';
import { createLogger } from '../../src/core/logger.ts';
import type { Clock } from '../../src/core/clock.ts';
import type { LimitStore } from '../../src/limits/store.ts';
import type { EventSink } from '../../src/events/types.ts';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(ROOT, 'src/cli/main.ts');

export function tempDir(prefix = 'kt-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function writeConfig(dir: string, yaml: string, name = 'policy-config.yaml'): string {
  const p = join(dir, name);
  writeFileSync(p, yaml);
  return p;
}

export interface Proc {
  child: ChildProcess;
  output(): string;
  /** Resolves with the first match of `re` in the output (stdout + stderr). */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export function spawnKt(args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Proc {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], {
    cwd: opts.cwd ?? ROOT,
    env: { ...process.env, KT_LOG_LEVEL: 'info', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return wrapChild(child);
}

/** Collects a child's output and offers waiting for a line and stopping. */
export function wrapChild(child: ChildProcess): Proc {
  let out = '';
  const waiters: (() => void)[] = [];
  const onData = (d: Buffer) => {
    out += d.toString();
    for (const w of waiters.splice(0)) w();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    output: () => out,
    waitFor(re, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${re} in:\n${out}`)), timeoutMs);
        const check = () => {
          const m = out.match(re);
          if (m) {
            clearTimeout(timer);
            resolve(m);
          } else if (child.exitCode !== null) {
            clearTimeout(timer);
            reject(new Error(`process exited (${child.exitCode}) before ${re}:\n${out}`));
          } else waiters.push(check);
        };
        check();
        child.once('exit', () => waiters.push(check) && check());
      });
    },
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** Runs a kt command to completion. */
export async function runKt(args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], {
    cwd: opts.cwd ?? ROOT,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  return { code, stdout, stderr };
}

/**
 * Waits for a spawned process to report it started; if it does not, kills it before rethrowing, so
 * a failed start never leaves an orphan child that keeps the test process (and the suite) alive.
 */
async function startedOrStopped<T>(p: Proc, started: () => Promise<T>): Promise<T> {
  try {
    return await started();
  } catch (err) {
    await p.stop('SIGKILL');
    throw err;
  }
}

export interface MockProc extends Proc {
  url: string;
  requests(): Promise<{ method: string; path: string; headers: Record<string, string>; body: Record<string, unknown> | null }[]>;
  clear(): Promise<void>;
}

/** A real upstream process: `kt mock-upstream` on a free port. */
export async function startMockUpstreamProcess(extra: string[] = []): Promise<MockProc> {
  const p = spawnKt(['mock-upstream', '--port', '0', ...extra]);
  const m = await startedOrStopped(p, () => p.waitFor(/listening on (http:\/\/\S+)/));
  const url = m[1]!;
  const base = url.replace(/\/v1$/, '');
  return {
    ...p,
    url,
    async requests() {
      const r = await request(`${base}/_mock/requests`);
      return (await r.body.json()) as never;
    },
    async clear() {
      const r = await request(`${base}/_mock/requests`, { method: 'DELETE' });
      await r.body.dump();
    },
  };
}

export interface GatewayProc extends Proc {
  url: string;
  port: number;
  dataDir: string;
  configFile: string;
}

/** A real gateway process: `kt gateway run --policy-config F --port 0` with its own data dir. */
export async function startGatewayProcess(opts: { configFile: string; dataDir?: string; env?: NodeJS.ProcessEnv; args?: string[] }): Promise<GatewayProc> {
  const dataDir = opts.dataDir ?? tempDir('kt-data-');
  const p = spawnKt(['gateway', 'run', '--policy-config', opts.configFile, '--listen', '127.0.0.1:0', ...(opts.args ?? [])], {
    env: { KT_DATA_DIR: dataDir, ...opts.env },
  });
  const m = await startedOrStopped(p, async () => {
    const listening = await p.waitFor(/Listening on [^\s]+:(\d+)/);
    await p.waitFor(/Gateway ready/);
    return listening;
  });
  const port = Number(m[1]);
  return { ...p, url: `http://127.0.0.1:${port}`, port, dataDir, configFile: opts.configFile };
}

/** An in-process gateway, for tests that inject a clock, a store or an event sink. */
export async function startTestGateway(opts: { configFile: string; dataDir?: string; clock?: Clock; store?: LimitStore; events?: EventSink }): Promise<Gateway & { dataDir: string }> {
  const dataDir = opts.dataDir ?? tempDir('kt-data-');
  const gw = await startGateway({
    configFile: opts.configFile,
    host: '127.0.0.1',
    port: 0,
    dataDir,
    clock: opts.clock,
    store: opts.store,
    events: opts.events,
    log: createLogger({ level: 'silent' }),
  });
  return Object.assign(gw, { dataDir });
}

export interface HttpResult {
  status: number;
  headers: Record<string, string>;
  text: string;
  json: any;
}

/** POSTs JSON (or raw text) and returns status, lower-cased headers and the parsed body. */
export function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<HttpResult> {
  return send(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

export function get(url: string, headers: Record<string, string> = {}): Promise<HttpResult> {
  return send(url, { headers });
}

async function send(url: string, options: Parameters<typeof request>[1]): Promise<HttpResult> {
  const res = await request(url, options);
  const text = await res.body.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    /* not JSON (a stream) */
  }
  const h: Record<string, string> = {};
  for (const [k, v] of Object.entries(res.headers)) h[k] = Array.isArray(v) ? v.join(', ') : String(v);
  return { status: res.statusCode, headers: h, text, json };
}

export function chat(content: string, model = 'gpt-4o-mini', extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { model, messages: [{ role: 'user', content }], ...extra };
}

/** Polls `fn` until it returns a truthy value (no fixed sleeps). */
type Falsy = null | undefined | false | 0 | '';
export async function eventually<T>(fn: () => Promise<T | Falsy> | T | Falsy, timeoutMs = 10_000, stepMs = 25): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as T;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`condition not met within ${timeoutMs} ms${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

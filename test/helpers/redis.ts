/**
 * Redis-backed tests: mandatory in CI (a missing Redis fails the run), skipped elsewhere by name,
 * loudly. Usage: `if (!(await requireRedis('my test'))) return t.skip(...)` or as a suite guard.
 */
import { Socket } from 'node:net';

export const REDIS_URL = process.env.KT_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379/0';

function ping(host = '127.0.0.1', port = 6379, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = new Socket();
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('error', () => done(false));
    s.connect(port, host, () => s.write('PING\r\n'));
    s.once('data', (d) => done(d.toString().startsWith('+PONG')));
  });
}

export async function requireRedis(name: string): Promise<boolean> {
  if (await ping()) return true;
  if (process.env.CI) throw new Error(`Redis is required in CI but 127.0.0.1:6379 does not answer (test: ${name})`);
  console.warn(`\n!!! SKIPPED (no Redis at 127.0.0.1:6379): ${name}\n`);
  return false;
}

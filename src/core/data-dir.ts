/**
 * The per-user state directory shared by every gateway and CLI process of one user on one machine:
 * the event store and the registry of running gateways live here, so `kt events tail` and
 * `kt config reload` work from any shell and any directory with no flags.
 * Resolution: explicit flag > `KT_DATA_DIR` > `~/.kt`.
 */
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { mkdirSync } from 'node:fs';

export function resolveDataDir(flag?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (flag) return resolve(flag);
  if (env.KT_DATA_DIR) return resolve(env.KT_DATA_DIR);
  return join(homedir(), '.kt');
}

/** Creates the directory (mode 0700: it holds admin tokens) and returns it. */
export function ensureDataDir(dir: string): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

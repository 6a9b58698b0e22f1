/**
 * The registry of running gateways in the data directory (`<dataDir>/instances/<pid>-<port>.json`,
 * mode 0600): how `kt config reload` finds every gateway of this user from any shell. Each entry
 * holds the gateway's loopback URL and a random admin token; entries of dead processes are ignored
 * and removed.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface InstanceEntry {
  pid: number;
  port: number;
  url: string;
  admin_token: string;
  config_file: string;
  started_at: string;
}

function dir(dataDir: string): string {
  return join(dataDir, 'instances');
}

export function registerInstance(dataDir: string, e: InstanceEntry): void {
  mkdirSync(dir(dataDir), { recursive: true, mode: 0o700 });
  writeFileSync(join(dir(dataDir), `${e.pid}-${e.port}.json`), JSON.stringify(e), { mode: 0o600 });
}

export function unregisterInstance(dataDir: string, pid: number, port: number): void {
  rmSync(join(dir(dataDir), `${pid}-${port}.json`), { force: true });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function listInstances(dataDir: string): InstanceEntry[] {
  let names: string[];
  try {
    names = readdirSync(dir(dataDir));
  } catch {
    return [];
  }
  const out: InstanceEntry[] = [];
  for (const n of names) {
    if (!n.endsWith('.json')) continue;
    const p = join(dir(dataDir), n);
    try {
      const e = JSON.parse(readFileSync(p, 'utf8')) as InstanceEntry;
      if (alive(e.pid)) out.push(e);
      else rmSync(p, { force: true });
    } catch {
      /* a half-written entry: skip */
    }
  }
  return out;
}

/** Starts a long-running command (e.g. `kt gateway run ...`) in a user shell. */
import { spawn } from 'node:child_process';
import { wrapChild, type Proc } from './harness.ts';
import type { Shell } from './shell.ts';

export function spawnShell(sh: Shell, cmd: string): Proc {
  // `exec` so that signals reach the command itself, not bash.
  const child = spawn('bash', ['-c', `exec ${cmd}`], { cwd: sh.dir, env: { ...sh.env, KT_LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] });
  return wrapChild(child);
}

/** `kt gateway run --policy-config policy-config.yaml <listen>` in the user's shell; resolves once ready. */
export async function startUserGateway(sh: Shell, listen = '--port 0', prefix = ''): Promise<{ proc: Proc; port: number }> {
  const proc = spawnShell(sh, `${prefix}kt gateway run --policy-config policy-config.yaml ${listen}`);
  const m = await proc.waitFor(/Listening on [^\s]+:(\d+)/);
  await proc.waitFor(/Gateway ready/);
  return { proc, port: Number(m[1]) };
}

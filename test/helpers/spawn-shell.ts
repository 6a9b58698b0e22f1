/** Starts a long-running command (e.g. `kt gateway run ...`) in a user shell. */
import { spawn } from 'node:child_process';
import { wrapChild, type Proc } from './harness.ts';
import type { Shell } from './shell.ts';

export function spawnShell(sh: Shell, cmd: string): Proc {
  // `exec` so that signals reach the command itself, not bash.
  const child = spawn('bash', ['-c', `exec ${cmd}`], { cwd: sh.dir, env: { ...sh.env, KT_LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] });
  return wrapChild(child);
}

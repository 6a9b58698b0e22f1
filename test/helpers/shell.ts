/**
 * Runs tutorial commands as a user would: through bash, with a `kt` on PATH that is this checkout's
 * CLI, in a scratch directory, with the user's environment.
 */
import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, tempDir } from './harness.ts';

export interface Shell {
  dir: string;
  env: NodeJS.ProcessEnv;
  run(cmd: string): Promise<{ code: number; stdout: string; stderr: string }>;
}

export function userShell(env: NodeJS.ProcessEnv = {}): Shell {
  const dir = tempDir('kt-user-');
  const bin = join(dir, '.bin');
  mkdirSync(bin);
  const kt = join(bin, 'kt');
  writeFileSync(kt, `#!/bin/sh\nKT_DEV=1 exec "${process.execPath}" "${join(ROOT, 'bin/kt.js')}" "$@"\n`);
  chmodSync(kt, 0o755);
  const fullEnv = { ...process.env, PATH: `${bin}:${process.env.PATH}`, ...env };
  return {
    dir,
    env: fullEnv,
    run(cmd) {
      return new Promise((resolve) => {
        execFile('bash', ['-c', cmd], { cwd: dir, env: fullEnv, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
          resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
        });
      });
    },
  };
}

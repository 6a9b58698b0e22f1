// Makes `npx kt` run this checkout's CLI: links node_modules/.bin/kt to bin/kt.js (npm links the
// bins of dependencies, not the package's own).
import { mkdirSync, symlinkSync, rmSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const binDir = join(root, 'node_modules', '.bin');
if (existsSync(join(root, 'node_modules'))) {
  mkdirSync(binDir, { recursive: true });
  const link = join(binDir, 'kt');
  rmSync(link, { force: true });
  symlinkSync(join('..', '..', 'bin', 'kt.js'), link);
}

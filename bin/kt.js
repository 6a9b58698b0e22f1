#!/usr/bin/env node
// The `kt` command. Runs the compiled CLI from dist/ (built by `npm install` / `npm run build`);
// in a checkout without dist/ (or with KT_DEV=1) it runs the TypeScript sources through tsx.
import { existsSync } from 'node:fs';

const dist = new URL('../dist/cli/main.js', import.meta.url);
if (existsSync(dist) && process.env.KT_DEV !== '1') {
  await import(dist.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL('../src/cli/main.ts', import.meta.url).href);
}

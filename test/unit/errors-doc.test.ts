// The error registry, the docs table and the HTTP statuses stay in step.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ERRORS } from '../../src/core/errors.ts';

test('docs/errors.md lists every error code with its status and type', () => {
  const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
  const rows = new Map<string, { status: number; type: string }>();
  for (const m of doc.matchAll(/^\| `([a-z_]+)` \| (\d{3}) \| `([a-z_]+)` \|/gm)) rows.set(m[1]!, { status: Number(m[2]), type: m[3]! });
  for (const [code, spec] of Object.entries(ERRORS)) {
    assert.ok(rows.has(code), `docs/errors.md is missing ${code}`);
    assert.deepEqual(rows.get(code), { status: spec.status, type: spec.type }, code);
  }
  for (const code of rows.keys()) assert.ok(code in ERRORS, `docs/errors.md documents ${code}, which the registry does not have`);
});

/**
 * `kt policy lint` as a user runs it: the real CLI in a child process, cwd at the repository root.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const GOOD = 'test/fixtures/config/good';
const BAD = 'test/fixtures/config/bad';

function lint(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const base = { ...process.env };
  delete base.OPENAI_API_KEY;
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', 'src/cli/main.ts', 'policy', 'lint', ...args],
      { cwd: ROOT, env: { ...base, ...env } },
      (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

const linesOf = (s: string) => s.split('\n').map((l) => l.trimEnd());

test('the tutorial-001 config lints clean with the summary the tutorial shows', async () => {
  const r = await lint(['--file', `${GOOD}/tutorial-001.yaml`], { OPENAI_API_KEY: 'sk-test' });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const lines = linesOf(r.stdout);
  for (const expected of [
    '✓ Configuration is valid',
    'Providers: 1 (openai)',
    'Consumer groups: 3 (engineering, marketing, research)',
    'Policies: 1 (basic-filter)',
  ])
    assert.ok(lines.includes(expected), `missing line ${JSON.stringify(expected)} in:\n${r.stdout}`);
  assert.equal(lines[0], '✓ Configuration is valid');
  assert.doesNotMatch(r.stdout, /warning/);
});

test('an unset provider key variable is a warning: exit 0 and the variable is named', async () => {
  const r = await lint(['--file', `${GOOD}/tutorial-001.yaml`]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /^✓ Configuration is valid$/m);
  assert.match(r.stdout, new RegExp(`warning: ${GOOD}/tutorial-001\\.yaml:8:\\d+: .*OPENAI_API_KEY`));
});

test('the other good configs lint clean', async () => {
  for (const file of [`${GOOD}/tutorial-000.yaml`, `${GOOD}/tutorial-001-step8.yaml`, `${GOOD}/policies-chain.yaml`, 'examples/quickstart.yaml']) {
    const r = await lint(['--file', file], { OPENAI_API_KEY: 'sk-test' });
    assert.equal(r.code, 0, `${file}:\n${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /^✓ Configuration is valid$/m);
  }
});

test('step 8 lists the group policy next to the global one', async () => {
  const r = await lint(['--file', `${GOOD}/tutorial-001-step8.yaml`], { OPENAI_API_KEY: 'sk-test' });
  assert.match(r.stdout, /^Policies: 2 \(basic-filter, marketing-pii-filter@marketing\)$/m);
});

test('a file with several mistakes exits non-zero and prints every problem with file:line:col', async () => {
  const file = `${BAD}/several-errors.yaml`;
  const r = await lint(['--file', file]);
  assert.notEqual(r.code, 0);
  assert.match(r.stdout, /^✗ Configuration is invalid: 5 error\(s\)/m);
  const expectedLines = [...readFileSync(`${ROOT}/${file}`, 'utf8').matchAll(/^# expect-line: (\d+)$/gm)].map((m) => m[1]);
  assert.equal(expectedLines.length, 5);
  for (const line of expectedLines) assert.match(r.stdout, new RegExp(`error: ${file.replace(/\./g, '\\.')}:${line}:\\d+: `), `line ${line} in:\n${r.stdout}`);
  assert.match(r.stdout, /consumer_groups\[0\]\.rate_limits\.requests_per_min: unknown key "requests_per_min"; did you mean "requests_per_minute"\?/);
});

test('a duplicate api key is reported without printing the key', async () => {
  const r = await lint(['--file', `${BAD}/duplicate-api-key.yaml`]);
  assert.notEqual(r.code, 0);
  assert.match(r.stdout, /duplicate api key/);
  assert.doesNotMatch(r.stdout + r.stderr, /kt_cg_shared_secret_999/);
});

test('a missing file is an error, not a crash', async () => {
  const r = await lint(['--file', `${BAD}/does-not-exist.yaml`]);
  assert.equal(r.code, 1);
  assert.match(r.stdout, /cannot read config: file not found/);
});

test('--format json parses, for a valid and an invalid file', async () => {
  const good = await lint(['--file', `${GOOD}/tutorial-001.yaml`, '--format', 'json'], { OPENAI_API_KEY: 'sk-test' });
  assert.equal(good.code, 0);
  const g = JSON.parse(good.stdout) as { valid: boolean; diagnostics: unknown[]; summary: { providers: string[]; consumer_groups: string[]; policies: string[] } };
  assert.equal(g.valid, true);
  assert.deepEqual(g.diagnostics, []);
  assert.deepEqual(g.summary, { providers: ['openai'], consumer_groups: ['engineering', 'marketing', 'research'], policies: ['basic-filter'] });

  const bad = await lint(['--file', `${BAD}/several-errors.yaml`, '--format', 'json']);
  assert.notEqual(bad.code, 0);
  const b = JSON.parse(bad.stdout) as { valid: boolean; diagnostics: { severity: string; path: string; line: number; column: number; message: string }[] };
  assert.equal(b.valid, false);
  assert.equal(b.diagnostics.filter((d) => d.severity === 'error').length, 5);
  for (const d of b.diagnostics) {
    assert.equal(typeof d.line, 'number');
    assert.equal(typeof d.column, 'number');
    assert.equal(typeof d.path, 'string');
  }
});

/**
 * Lint of the identity sections and the named/tiered limits that read identity: every mistake is a
 * diagnostic naming its path (and line) and what would be valid; the file does not load. An unset
 * secret_env is only a warning (the gateway starts and rejects every token).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { loadConfigText, type LoadResult } from '../../src/config/load.ts';
import type { Diagnostic } from '../../src/config/diagnostics.ts';

const lint = (yaml: string, env: NodeJS.ProcessEnv = {}) => loadConfigText(yaml, 'inline.yaml', { env });
const show = (ds: Diagnostic[]) => ds.map((d) => `  ${d.severity} ${d.path || '(document)'} line ${d.line ?? '?'}: ${d.message}`).join('\n');
const hash = createHash('sha256').update('kt_some_key').digest('hex');

/** Line (1-based) of the first line of `yaml` containing `needle`. */
function lineOf(yaml: string, needle: string): number {
  const i = yaml.split('\n').findIndex((l) => l.includes(needle));
  assert.ok(i >= 0, `fixture contains ${needle}`);
  return i + 1;
}

/** The file is refused with exactly one error matching `message` (and `path`/`line` when given). */
function assertError(r: LoadResult, expect: { message: RegExp; path?: string; line?: number }): Diagnostic {
  assert.equal(r.config, undefined, 'the config does not load');
  const errors = r.diagnostics.filter((d) => d.severity === 'error' && expect.message.test(d.message));
  assert.equal(errors.length, 1, `one error matching ${expect.message}; got:\n${show(r.diagnostics)}`);
  const d = errors[0]!;
  if (expect.path !== undefined) assert.equal(d.path, expect.path, show([d]));
  if (expect.line !== undefined) assert.equal(d.line, expect.line, show([d]));
  return d;
}

describe('identity lint', () => {
  it('an api key with both key and key_sha256 is an error', () => {
    const yaml = ['api_keys:', '  - id: both', '    key: kt_some_key', `    key_sha256: ${hash}`, ''].join('\n');
    assertError(lint(yaml), { message: /exactly one of `key`.*`key_sha256`/, path: 'api_keys[0]', line: 2 });
  });

  it('an api key with neither key nor key_sha256 is an error', () => {
    const yaml = ['api_keys:', '  - id: neither', '    user: alice', ''].join('\n');
    assertError(lint(yaml), { message: /exactly one of `key`.*`key_sha256`/, path: 'api_keys[0]', line: 2 });
  });

  it('a key_sha256 that is not 64 lowercase hex characters is an error', () => {
    const yaml = ['api_keys:', `  - key_sha256: ${hash.toUpperCase()}`, ''].join('\n');
    assertError(lint(yaml), { message: /64 lowercase hex/, path: 'api_keys[0].key_sha256', line: 2 });
  });

  it('api_keys[].consumer_group naming an unknown group is an error that lists the defined groups', () => {
    const yaml = ['consumer_groups:', '  - name: gold', '    api_key: kt_gold', 'api_keys:', '  - key: kt_k1', '    consumer_group: platinum', ''].join('\n');
    const d = assertError(lint(yaml), { message: /no consumer group named "platinum"/, path: 'api_keys[0].consumer_group', line: 6 });
    assert.match(d.message, /defined: gold/);
  });

  it('a key bound twice is reported', () => {
    const yaml = ['api_keys:', '  - key: kt_some_key', '  - key: kt_some_key', ''].join('\n');
    assertError(lint(yaml), { message: /duplicate api key/, path: 'api_keys[1].key', line: 3 });
  });

  it('a key bound once in plaintext and once by its SHA-256 is a duplicate too (the hash binding would never match)', () => {
    const yaml = ['api_keys:', '  - key: kt_some_key', '    user: alice', `  - key_sha256: ${hash}`, '    user: bob', ''].join('\n');
    const d = assertError(lint(yaml), { message: /duplicate api key/, path: 'api_keys[1].key_sha256', line: 4 });
    assert.ok(!d.message.includes('kt_some_key'), 'the diagnostic does not print the key');
  });

  it('an api_keys key_sha256 of a consumer group key is a duplicate', () => {
    const yaml = ['consumer_groups:', '  - name: gold', '    api_key: kt_some_key', 'api_keys:', `  - key_sha256: ${hash}`, ''].join('\n');
    assertError(lint(yaml), { message: /duplicate api key/, path: 'api_keys[0].key_sha256', line: 5 });
  });

  it('jwt with two key sources is an error', () => {
    const yaml = ['identity:', '  jwt:', '    secret_env: KT_JWT_SECRET', '    jwks_url: https://idp.example/jwks.json', '    algorithms: [HS256]', ''].join('\n');
    assertError(lint(yaml, { KT_JWT_SECRET: 's3cret' }), { message: /exactly one of secret_env.*jwks_file.*jwks_url/, path: 'identity.jwt', line: 3 });
  });

  it('jwt with no key source is an error', () => {
    const yaml = ['identity:', '  jwt:', '    algorithms: [RS256]', ''].join('\n');
    assertError(lint(yaml), { message: /exactly one of secret_env/, path: 'identity.jwt' });
  });

  it('jwt HS256 with a jwks_file is an error (HMAC needs secret_env)', () => {
    const yaml = ['identity:', '  jwt:', '    jwks_file: /dev/null', '    algorithms: [HS256, RS256]', ''].join('\n');
    assertError(lint(yaml), { message: /HS\* algorithms need secret_env/, path: 'identity.jwt.algorithms', line: 4 });
  });

  it('jwt RS256 with a secret_env is an error (a shared secret verifies only HS*)', () => {
    const yaml = ['identity:', '  jwt:', '    secret_env: KT_JWT_SECRET', '    algorithms: [RS256]', ''].join('\n');
    assertError(lint(yaml, { KT_JWT_SECRET: 's3cret' }), { message: /shared secret .* verifies only HS256/, path: 'identity.jwt.algorithms', line: 4 });
  });

  it('jwt alg "none" is not accepted by the schema', () => {
    const yaml = ['identity:', '  jwt:', '    secret_env: KT_JWT_SECRET', '    algorithms: [none]', ''].join('\n');
    const r = lint(yaml, { KT_JWT_SECRET: 's3cret' });
    assert.equal(r.config, undefined);
    assert.ok(r.diagnostics.some((d) => d.severity === 'error' && d.path.startsWith('identity.jwt.algorithms')), show(r.diagnostics));
  });

  it('a missing jwks_file is an error naming the file', () => {
    const yaml = ['identity:', '  jwt:', '    jwks_file: /nonexistent/kt/jwks.json', '    algorithms: [RS256]', ''].join('\n');
    assertError(lint(yaml), { message: /file not found: \/nonexistent\/kt\/jwks\.json/, path: 'identity.jwt.jwks_file', line: 3 });
  });

  it('jwt secret_env unset is a warning only: the config loads', () => {
    const yaml = ['identity:', '  jwt:', '    secret_env: KT_JWT_SECRET_UNSET', '    algorithms: [HS256]', ''].join('\n');
    const r = lint(yaml, {});
    assert.ok(r.config, `the config loads:\n${show(r.diagnostics)}`);
    assert.equal(r.diagnostics.filter((d) => d.severity === 'error').length, 0, show(r.diagnostics));
    const w = r.diagnostics.filter((d) => d.severity === 'warning');
    assert.equal(w.length, 1, show(r.diagnostics));
    assert.match(w[0]!.message, /KT_JWT_SECRET_UNSET is not set/);
    assert.equal(w[0]!.path, 'identity.jwt.secret_env');
    assert.equal(w[0]!.line, 3);
    // Set: no warning.
    assert.deepEqual(lint(yaml, { KT_JWT_SECRET_UNSET: 'x' }).diagnostics, []);
  });

  it('a trusted_proxies entry that is not an IP or CIDR is an error naming it', () => {
    const yaml = ['identity:', '  trusted_proxies:', '    - 10.0.0.0/8', '    - not-an-ip', '    - 10.0.0.0/33', '    - ::1', ''].join('\n');
    const r = lint(yaml);
    assertError(r, { message: /"not-an-ip" is not an IP address or CIDR/, path: 'identity.trusted_proxies[1]', line: 4 });
    assertError(r, { message: /"10\.0\.0\.0\/33" is not an IP address or CIDR/, path: 'identity.trusted_proxies[2]', line: 5 });
    assert.equal(r.diagnostics.filter((d) => d.severity === 'error').length, 2, show(r.diagnostics));
  });

  it('a token_limits predicate with a CEL syntax error names the limit and the line of the predicate', () => {
    const yaml = [
      'token_limits:',
      '  gold-tokens:',
      '    rates:',
      '      - limit: 1000',
      '        window: 1m',
      '    when:',
      `      - predicate: 'auth.identity.groups.split(",").exists(g, g == "gold"'`,
      '',
    ].join('\n');
    const d = assertError(lint(yaml), { message: /invalid CEL predicate/, path: 'token_limits.gold-tokens.when[0].predicate', line: lineOf(yaml, 'predicate:') });
    assert.match(d.message, /limit "gold-tokens"/);
  });

  it('a token_limits predicate with an unknown field names the limit and the line of the predicate', () => {
    const yaml = [
      'token_limits:',
      '  nope-limit:',
      '    rates:',
      '      - limit: 1000',
      '        window: 1m',
      '    when:',
      "      - predicate: 'auth.identity.userid != \"\"'",
      "      - predicate: 'auth.identity.nope == \"x\"'",
      '',
    ].join('\n');
    const d = assertError(lint(yaml), { message: /invalid CEL predicate/, path: 'token_limits.nope-limit.when[1].predicate', line: lineOf(yaml, 'nope ==') });
    assert.match(d.message, /limit "nope-limit"/);
    assert.match(d.message, /nope/);
  });

  it('a counter expression with an unknown field is reported like a predicate', () => {
    const yaml = ['request_limits:', '  per-tenant:', '    rates: [{limit: 10, window: 1m}]', '    counters:', '      - expression: auth.identity.tenant', ''].join('\n');
    assertError(lint(yaml), { message: /limit "per-tenant": invalid CEL counter/, path: 'request_limits.per-tenant.counters[0].expression', line: 5 });
  });

  it('a rate window "5x" is an error naming the valid units', () => {
    const yaml = ['request_limits:', '  burst:', '    rates:', '      - limit: 10', '        window: 5x', ''].join('\n');
    assertError(lint(yaml), { message: /duration like 30s, 1m, 1h or 1d/, path: 'request_limits.burst.rates[0].window', line: 5 });
  });

  it('a zero window is an error', () => {
    const yaml = ['request_limits:', '  burst:', '    rates:', '      - limit: 10', '        window: 0s', ''].join('\n');
    assertError(lint(yaml), { message: /longer than zero/, path: 'request_limits.burst.rates[0].window', line: 5 });
  });

  it('a valid identity config loads without diagnostics', () => {
    const yaml = [
      'consumer_groups:',
      '  - name: gold',
      '    api_key: kt_gold',
      'api_keys:',
      '  - key: kt_k1',
      '    consumer_group: gold',
      `  - key_sha256: ${hash}`,
      '    groups: [free, beta]',
      'identity:',
      '  trusted_headers: {user: X-User-Id}',
      '  trusted_proxies: [127.0.0.1, 10.0.0.0/8, "::1"]',
      'token_limits:',
      '  free:',
      '    rates: [{limit: 1000, window: 1m}]',
      '    when:',
      `      - predicate: 'auth.identity.groups.split(",").exists(g, g == "free")'`,
      '    counters:',
      '      - expression: auth.identity.userid',
      '',
    ].join('\n');
    const r = lint(yaml);
    assert.deepEqual(r.diagnostics, []);
    assert.ok(r.config);
  });
});

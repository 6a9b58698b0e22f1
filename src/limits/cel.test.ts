import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { compileCel, evalCounter, evalPredicate, type CelContext, type CelProgram } from './cel.ts';

function ctx(over: { path?: string; ip?: string; userid?: string; groups?: string; headers?: Record<string, string>; body?: Record<string, unknown> } = {}): CelContext {
  return {
    request: { path: over.path ?? '/v1/chat/completions', method: 'POST', model: 'gpt-4o-mini', headers: over.headers ?? {}, body: over.body ?? {} },
    auth: { identity: { userid: over.userid ?? 'alice', groups: over.groups ?? 'gold', team: 'platform', consumer_group: '', key_id: 'key_1' } },
    source: { ip: over.ip ?? '10.0.0.1' },
  };
}

function program(expr: string, expect: 'bool' | 'value' = 'bool'): CelProgram {
  const c = compileCel(expr, expect);
  assert.ok('program' in c, JSON.stringify(c));
  return c.program;
}

describe('CEL programs', () => {
  it('give the result of each combination of the scalar variables they read, however often asked', () => {
    const p = program('auth.identity.groups.split(",").exists(g, g == "gold") && source.ip == "10.0.0.1"');
    for (let i = 0; i < 3; i++) {
      assert.equal(evalPredicate(p, ctx()), true);
      assert.equal(evalPredicate(p, ctx({ groups: 'silver,bronze' })), false);
      assert.equal(evalPredicate(p, ctx({ ip: '10.0.0.2' })), false);
      assert.equal(evalPredicate(p, ctx({ groups: 'silver,gold' })), true);
    }
    const counter = program('auth.identity.userid + "@" + request.path', 'value');
    assert.equal(evalCounter(counter, ctx()), 'alice@/v1/chat/completions');
    assert.equal(evalCounter(counter, ctx({ userid: 'bob' })), 'bob@/v1/chat/completions');
    assert.equal(evalCounter(counter, ctx({ path: '/v1/embeddings' })), 'alice@/v1/embeddings');
    assert.equal(evalCounter(counter, ctx()), 'alice@/v1/chat/completions');
  });

  it('read headers and body afresh on every request', () => {
    const h = program('request.path == "/v1/chat/completions" && request.headers["x-plan"] == "trial"');
    assert.equal(evalPredicate(h, ctx({ headers: { 'x-plan': 'trial' } })), true);
    assert.equal(evalPredicate(h, ctx({ headers: { 'x-plan': 'paid' } })), false);
    assert.equal(evalPredicate(h, ctx({ headers: { 'x-plan': 'trial' } })), true);
    const b = program('request.body.user', 'value');
    assert.equal(evalCounter(b, ctx({ body: { user: 'u1' } })), 'u1');
    assert.equal(evalCounter(b, ctx({ body: { user: 'u2' } })), 'u2');
  });

  it('an evaluation error counts as false (predicates) or an empty counter, each time', () => {
    const p = program('int(auth.identity.userid) > 3');
    for (let i = 0; i < 2; i++) assert.equal(evalPredicate(p, ctx({ userid: 'not-a-number' })), false);
    assert.equal(evalPredicate(p, ctx({ userid: '7' })), true);
    const c = program('string(int(auth.identity.userid))', 'value');
    for (let i = 0; i < 2; i++) assert.equal(evalCounter(c, ctx({ userid: 'x' })), '');
    assert.equal(evalCounter(c, ctx({ userid: '42' })), '42');
  });
});

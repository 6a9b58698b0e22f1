import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { trailingUsage, usageFromJson } from './usage.ts';

describe('usage of a whole upstream answer', () => {
  const usage = { prompt_tokens: 12, completion_tokens: 7, total_tokens: 19, prompt_tokens_details: { cached_tokens: 0 } };

  it('cuts out a trailing top-level usage object and reads it', () => {
    const text = JSON.stringify({ id: 'x', choices: [{ message: { content: 'a "usage": {"prompt_tokens": 99} } text' } }], usage });
    assert.equal(trailingUsage(text), JSON.stringify(usage));
    assert.deepEqual(usageFromJson(text), { prompt_tokens: 12, completion_tokens: 7, total_tokens: 19 });
    const spaced = JSON.stringify({ id: 'x', usage }, null, 2);
    assert.deepEqual(JSON.parse(trailingUsage(spaced)!), usage);
  });

  it('cuts it out when only scalar members follow it, as in OpenAI answers', () => {
    const openai = JSON.stringify({ id: 'x', choices: [], usage, service_tier: 'default', system_fingerprint: 'fp_"}x' });
    assert.equal(trailingUsage(openai), JSON.stringify(usage));
    assert.deepEqual(usageFromJson(openai), { prompt_tokens: 12, completion_tokens: 7, total_tokens: 19 });
    const scalars = `{"id": "x", "usage": ${JSON.stringify(usage)} ,\n "a": null, "b": -1.5E+3, "c": true, "d": false }\n`;
    assert.equal(trailingUsage(scalars), JSON.stringify(usage));
  });

  it('parses the whole answer when an object or array follows usage', () => {
    const objectAfter = JSON.stringify({ id: 'x', usage, meta: { a: 1 } });
    assert.equal(trailingUsage(objectAfter), null);
    assert.deepEqual(usageFromJson(objectAfter), { prompt_tokens: 12, completion_tokens: 7, total_tokens: 19 });
    assert.equal(trailingUsage(JSON.stringify({ id: 'x', usage, tags: ['a'] })), null);
    // A usage nested in the last member, followed by scalars in its own object, is not the answer's.
    const nestedLast = JSON.stringify({ id: 'x', data: { usage: { prompt_tokens: 1 }, note: 'n' } });
    assert.equal(trailingUsage(nestedLast), null);
    assert.equal(usageFromJson(nestedLast), null);
  });

  it('parses the whole answer when usage is not the last member of the top-level object', () => {
    const notLast = JSON.stringify({ usage, id: 'x', choices: [{ message: { usage: { prompt_tokens: 1 } } }] });
    assert.equal(trailingUsage(notLast), null);
    assert.deepEqual(usageFromJson(notLast), { prompt_tokens: 12, completion_tokens: 7, total_tokens: 19 });
    const nested = JSON.stringify({ id: 'x', usage, data: { usage: { prompt_tokens: 1 } } });
    assert.equal(trailingUsage(nested), null, 'a nested usage closes more than one object');
    assert.deepEqual(usageFromJson(nested), { prompt_tokens: 12, completion_tokens: 7, total_tokens: 19 });
    const responses = JSON.stringify({ id: 'r', output: [], usage: { input_tokens: 5, output_tokens: 2, total_tokens: 7 } });
    assert.deepEqual(usageFromJson(responses), { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 });
  });

  it('answers null for an answer without usage or that is not JSON', () => {
    assert.equal(usageFromJson(JSON.stringify({ id: 'x', choices: [] })), null);
    assert.equal(usageFromJson('{"id": "x", "usage": {"prompt_tokens": 3'), null);
    assert.equal(usageFromJson('not json'), null);
    assert.equal(usageFromJson('{"content": "the \\"usage\\": {\\"prompt_tokens\\": 5}"}'), null);
  });
});

describe('usage scanner edge cases', () => {
  it('does not take the end of another member name for the usage key', () => {
    const text = '{"id":"x","x\\"usage":{"prompt_tokens":1}}';
    assert.equal(trailingUsage(text), null);
    assert.equal(usageFromJson(text), null);
  });
});

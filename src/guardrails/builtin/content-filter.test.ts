import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CONTENT_CATEGORIES, type PolicyInput } from '../../config/schema.ts';
import { compileContentFilter, LEXICONS, type ContentCategory, type Threshold } from './content-filter.ts';

function filter(opts: { action?: 'flag' | 'redact' | 'block'; threshold?: Threshold; categories?: ContentCategory[] } = {}) {
  const input: Extract<PolicyInput, { type: 'content_filter' }> = {
    name: 'content',
    type: 'content_filter',
    ...(opts.action ? { action: opts.action } : {}),
    config: { ...(opts.threshold ? { threshold: opts.threshold } : {}), ...(opts.categories ? { categories: opts.categories } : {}) },
  };
  return compileContentFilter(input);
}
const cats = (text: string, threshold?: Threshold) =>
  filter({ threshold }).inspect([text]).findings.map((f) => `${f.category}:${f.count}`);

test('there is a lexicon for every schema category', () => {
  assert.deepEqual(Object.keys(LEXICONS).sort(), [...CONTENT_CATEGORIES].sort());
});

test('strong terms flag at every threshold', () => {
  for (const t of ['low', 'medium', 'high'] as const) {
    assert.deepEqual(cats('I will murder him', t), ['violence:1'], t);
    assert.deepEqual(cats('this is ethnic cleansing', t), ['hate:1'], t);
  }
});

test('weak terms flag only at high sensitivity', () => {
  assert.deepEqual(cats('kill the process and restart', 'low'), []);
  assert.deepEqual(cats('kill the process and restart'), []);
  assert.deepEqual(cats('kill the process and restart', 'high'), ['violence:1']);
});

test('medium terms flag at medium and high, not low; weak terms add up', () => {
  assert.deepEqual(cats('he was stabbed', 'low'), []);
  assert.deepEqual(cats('he was stabbed', 'medium'), ['violence:1']);
  assert.deepEqual(cats('kill, attack, fight', 'low'), ['violence:3']);
});

test('matching is case-insensitive, word-bounded, inflected and whitespace-tolerant', () => {
  assert.deepEqual(cats('MURDERED'), ['violence:1']);
  assert.deepEqual(cats('Go  back\nto your country'), ['hate:1']);
  assert.deepEqual(cats('a stable establishment with skilled staff and a method', 'high'), []);
  assert.deepEqual(cats('you don\u2019t belong here'), ['hate:1']);
});

test('a phrase wins over its weaker prefix', () => {
  const r = filter({ threshold: 'low' }).inspect(['I will kill you']);
  assert.deepEqual(r.findings.map((f) => f.category), ['violence']);
});

test('categories are scored per text, and only configured categories run', () => {
  const f = filter({ categories: ['self_harm'] });
  assert.deepEqual(f.inspect(['I want to end my life', 'murder']).findings.map((x) => `${x.category}:${x.count}`), ['self_harm:1']);
  // two weak terms in different texts do not add up
  assert.deepEqual(filter().inspect(['kill', 'attack']).findings, []);
});

test('flag keeps the text unchanged', () => {
  const texts = ['this is subhuman behaviour'];
  const r = filter().inspect(texts);
  assert.equal(r.redacted, null);
  assert.equal(texts[0], 'this is subhuman behaviour');
  assert.deepEqual(r.findings, [{ policy: 'content', type: 'content_filter', category: 'hate', action: 'flag', count: 1 }]);
});

test('redact masks the matched terms with the category', () => {
  const r = filter({ action: 'redact' }).inspect(['They are subhuman and I will murder them.', 'fine']);
  assert.deepEqual(r.redacted, ['They are [REDACTED:HATE] and I will [REDACTED:VIOLENCE] them.', 'fine']);
});

test('redact only masks categories that reached the threshold', () => {
  const r = filter({ action: 'redact' }).inspect(['kill the murder suspect']);
  assert.deepEqual(r.redacted, ['[REDACTED:VIOLENCE] the [REDACTED:VIOLENCE] suspect']);
  assert.equal(filter({ action: 'redact' }).inspect(['kill the process']).redacted, null);
});

test('already-redacted placeholders are not matched again', () => {
  assert.deepEqual(cats('see [REDACTED:SEXUAL] and [REDACTED:VIOLENCE]', 'high'), []);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { PolicyInput } from '../config/schema.ts';
import { applyPolicies, compilePolicies, compilePolicy, retentionDays } from './registry.ts';

const CARD = '4111 1111 1111 1111';

test('compilePolicy builds each type with action defaulting to flag', () => {
  const ps = compilePolicies([
    { name: 'c', type: 'content_filter' },
    { name: 'p', type: 'pii_detector', action: 'block' },
    { name: 'a', type: 'audit_logger' },
  ]);
  assert.deepEqual(ps.map((p) => [p.name, p.type, p.action]), [
    ['c', 'content_filter', 'flag'],
    ['p', 'pii_detector', 'block'],
    ['a', 'audit_logger', 'flag'],
  ]);
});

test('audit_logger inspects nothing', () => {
  const p = compilePolicy({ name: 'audit', type: 'audit_logger', config: { retention_days: 30 } });
  assert.deepEqual(p.inspect([`card ${CARD} murder`]), { findings: [], redacted: null });
});

test('retentionDays reads the audit logger config', () => {
  assert.equal(retentionDays([{ name: 'p', type: 'pii_detector' }]), undefined);
  assert.equal(retentionDays([{ name: 'a', type: 'audit_logger' }]), undefined);
  assert.equal(
    retentionDays([{ name: 'p', type: 'pii_detector' }, { name: 'a', type: 'audit_logger', config: { retention_days: 14 } }]),
    14,
  );
});

test('block: verdict names the policy and entity, never the value, and stops the chain', () => {
  const policies = compilePolicies([
    { name: 'marketing-pii-filter', type: 'pii_detector', action: 'block' },
    { name: 'after', type: 'content_filter' },
  ]);
  const texts = [`my card is ${CARD}, I will murder this deadline`];
  const v = applyPolicies(policies, texts);
  assert.deepEqual(v.blocked, {
    policy: 'marketing-pii-filter',
    message: "Request blocked by policy 'marketing-pii-filter': credit_card detected. Remove the sensitive data and retry.",
  });
  assert.deepEqual(v.findings, [{ policy: 'marketing-pii-filter', type: 'pii_detector', category: 'credit_card', action: 'block', count: 1 }]);
  assert.equal(v.redacted, false);
  assert.ok(!JSON.stringify(v).includes('4111'));
  assert.equal(texts[0], `my card is ${CARD}, I will murder this deadline`);
});

test('flag records findings and keeps the text unchanged', () => {
  const texts = [`card ${CARD}`, 'mail a@b.io'];
  const v = applyPolicies(compilePolicies([{ name: 'pii', type: 'pii_detector' }]), texts);
  assert.equal(v.blocked, null);
  assert.equal(v.redacted, false);
  assert.deepEqual(texts, [`card ${CARD}`, 'mail a@b.io']);
  assert.deepEqual(v.findings.map((f) => `${f.category}:${f.count}:${f.action}`), ['credit_card:1:flag', 'email:1:flag']);
});

test('redact then block: the later policy sees the redacted text', () => {
  const chain: PolicyInput[] = [
    { name: 'mask-cards', type: 'pii_detector', action: 'redact', config: { entities: ['credit_card'] } },
    { name: 'no-cards', type: 'pii_detector', action: 'block', config: { entities: ['credit_card'] } },
    { name: 'no-email', type: 'pii_detector', action: 'block', config: { entities: ['email'] } },
  ];
  const texts = [`card ${CARD}`, 'hello'];
  const v = applyPolicies(compilePolicies(chain), texts);
  assert.deepEqual(texts, ['card [REDACTED:CREDIT_CARD]', 'hello']);
  assert.equal(v.redacted, true);
  assert.equal(v.blocked, null);
  assert.deepEqual(v.findings, [{ policy: 'mask-cards', type: 'pii_detector', category: 'credit_card', action: 'redact', count: 1 }]);

  // and a block further down still fires on what is left
  const texts2 = [`card ${CARD}`, 'mail bob@example.com'];
  const v2 = applyPolicies(compilePolicies(chain), texts2);
  assert.equal(v2.blocked?.policy, 'no-email');
  assert.match(v2.blocked!.message, /'no-email': email detected/);
  assert.ok(!v2.blocked!.message.includes('bob@example.com'));
  assert.deepEqual(v2.findings.map((f) => `${f.policy}/${f.category}`), ['mask-cards/credit_card', 'no-email/email']);
});

test('content filter block message and redact in one chain', () => {
  const policies = compilePolicies([
    { name: 'mask', type: 'content_filter', action: 'redact', config: { categories: ['violence'] } },
    { name: 'stop-hate', type: 'content_filter', action: 'block', config: { categories: ['hate'], threshold: 'low' } },
  ]);
  const texts = ['I will murder them'];
  const v = applyPolicies(policies, texts);
  assert.deepEqual(texts, ['I will [REDACTED:VIOLENCE] them']);
  assert.equal(v.blocked, null);
  const v2 = applyPolicies(policies, ['they are subhuman']);
  assert.equal(v2.blocked?.message, "Request blocked by policy 'stop-hate': hate detected. Remove or rephrase the flagged content and retry.");
});

test('findings are aggregated per (policy, category)', () => {
  const p = compilePolicy({ name: 'pii', type: 'pii_detector' });
  const v = applyPolicies([p, p], ['a@b.io c@d.io', 'e@f.io']);
  assert.deepEqual(v.findings, [{ policy: 'pii', type: 'pii_detector', category: 'email', action: 'flag', count: 6 }]);
});

test('a clean request yields an empty verdict', () => {
  const policies = compilePolicies([
    { name: 'pii', type: 'pii_detector', action: 'block' },
    { name: 'content', type: 'content_filter', action: 'redact' },
    { name: 'audit', type: 'audit_logger' },
  ]);
  const texts = ['Summarise the quarterly report in three bullet points.'];
  assert.deepEqual(applyPolicies(policies, texts), { findings: [], blocked: null, redacted: false });
  assert.deepEqual(texts, ['Summarise the quarterly report in three bullet points.']);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PII_ENTITIES, type PolicyInput } from '../../config/schema.ts';
import { ALL_PII_ENTITIES, compilePiiDetector, type PiiEntity } from './pii-detector.ts';

function detector(action?: 'flag' | 'redact' | 'block', entities?: PiiEntity[]) {
  const input: Extract<PolicyInput, { type: 'pii_detector' }> = {
    name: 'pii',
    type: 'pii_detector',
    ...(action ? { action } : {}),
    ...(entities ? { config: { entities } } : {}),
  };
  return compilePiiDetector(input);
}

/** category -> count for one text. */
function found(text: string, entities?: PiiEntity[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const f of detector('flag', entities).inspect([text]).findings) out[f.category] = f.count;
  return out;
}
const redact = (text: string, entities?: PiiEntity[]) => detector('redact', entities).inspect([text]).redacted?.[0] ?? text;

test('defaults cover every entity in the schema', () => {
  assert.deepEqual([...ALL_PII_ENTITIES].sort(), [...PII_ENTITIES].sort());
});

test('Luhn-valid card numbers are detected in common formats', () => {
  for (const card of ['4111 1111 1111 1111', '4111-1111-1111-1111', '4111111111111111', '5500 0000 0000 0004', '378282246310005']) {
    assert.deepEqual(found(`card: ${card}, thanks`), { credit_card: 1 }, card);
  }
});

test('Luhn-invalid and wrong-length digit runs are not cards', () => {
  for (const s of ['4111 1111 1111 1112', '1234567890123', '4111 1111 1111', '41111111111111111111111', '0000 0000 0000 0000']) {
    assert.equal(found(`number ${s} here`).credit_card, undefined, s);
  }
});

test('a valid card followed by extra digits is still found (trimmed to its groups)', () => {
  assert.equal(redact('pay 4111 1111 1111 1111 12 now', ['credit_card']), 'pay [REDACTED:CREDIT_CARD] 12 now');
});

test('ssn: valid detected, never-issued areas/groups/serials rejected', () => {
  assert.deepEqual(found('my ssn is 123-45-6789.'), { ssn: 1 });
  for (const s of ['000-12-3456', '666-12-3456', '912-34-5678', '123-00-4567', '123-45-0000', '1234-56-7890', '123-45-67890']) {
    assert.equal(found(`id ${s}`).ssn, undefined, s);
  }
});

test('email', () => {
  assert.deepEqual(found('write to jane.doe+kt@mail.example.co.uk today'), { email: 1 });
  assert.equal(redact('ping a@b.io, c@d.org.'), 'ping [REDACTED:EMAIL], [REDACTED:EMAIL].');
  assert.equal(found('not an email: user@ or @home or a@b').email, undefined);
});

test('phone: international and US formats, not plain short numbers', () => {
  for (const p of ['+1 415 555 0132', '(415) 555-0132', '415-555-0132', '415.555.0132', '+44 20 7946 0958', '+44 (0)20 7946 0958', '1-800-555-0199', '+4915112345678']) {
    assert.deepEqual(found(`call ${p} please`), { phone: 1 }, p);
  }
  for (const s of ['order 12345', 'call 555-0132', '3 + 4 = 7', 'version 2.4.1', 'in 2024-05-01', '+12 34', '100 200 3000']) {
    assert.deepEqual(found(s), {}, s);
  }
});

test('ip_address with octet range check', () => {
  assert.deepEqual(found('server at 192.168.1.20 is down'), { ip_address: 1 });
  assert.deepEqual(found('bad 256.1.1.1 and 1.2.3.999 and 1.2.3.4.5'), {});
});

test('iban with mod-97 check', () => {
  assert.deepEqual(found('IBAN DE89 3704 0044 0532 0130 00 ok'), { iban: 1 });
  assert.deepEqual(found('IBAN GB82WEST12345698765432'), { iban: 1 });
  assert.deepEqual(found('IBAN GB82WEST12345698765433'), {});
  // the digits of an IBAN are not also reported as a card or phone
  assert.deepEqual(found('DE89370400440532013000'), { iban: 1 });
});

test('redact masks every entity and leaves the rest of the text', () => {
  const text = 'Card 4111-1111-1111-1111, mail bob@example.com, ssn 123-45-6789, phone (415) 555-0132, ip 10.0.0.1';
  assert.equal(
    redact(text),
    'Card [REDACTED:CREDIT_CARD], mail [REDACTED:EMAIL], ssn [REDACTED:SSN], phone [REDACTED:PHONE], ip [REDACTED:IP_ADDRESS]',
  );
});

test('redact returns texts of the same length and order; untouched texts kept', () => {
  const r = detector('redact').inspect(['hello', 'mail bob@example.com', 'bye']);
  assert.deepEqual(r.redacted, ['hello', 'mail [REDACTED:EMAIL]', 'bye']);
  assert.deepEqual(r.findings, [{ policy: 'pii', type: 'pii_detector', category: 'email', action: 'redact', count: 1 }]);
});

test('flag reports counts across texts without changing them, and never includes the value', () => {
  const texts = ['a@b.io and c@d.io', '4111 1111 1111 1111'];
  const r = detector().inspect(texts);
  assert.equal(r.redacted, null);
  assert.deepEqual(texts, ['a@b.io and c@d.io', '4111 1111 1111 1111']);
  assert.deepEqual(
    r.findings.map((f) => [f.category, f.count, f.action]),
    [['credit_card', 1, 'flag'], ['email', 2, 'flag']],
  );
  assert.ok(!JSON.stringify(r).includes('4111'));
});

test('configured entities limit detection', () => {
  assert.deepEqual(found('bob@example.com 415-555-0132', ['phone']), { phone: 1 });
});

test('clean text returns no findings and the shared empty result is stable across calls', () => {
  const d = detector('redact');
  const a = d.inspect(['nothing to see here, order #12345']);
  assert.deepEqual(a, { findings: [], redacted: null });
  d.inspect(['bob@example.com']);
  assert.deepEqual(d.inspect(['still nothing']), { findings: [], redacted: null });
});

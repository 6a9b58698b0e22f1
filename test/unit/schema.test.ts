/**
 * The JSON Schema shipped for editors (schema/policy-config.schema.json) is generated from the zod
 * `PolicyConfig`; these tests fail when the committed file drifts from a fresh generation
 * (fix: `npm run schema`) and check the tutorial configs against it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { generateSchemaText, SCHEMA_ID, SCHEMA_PATH } from '../../scripts/gen-schema.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
type JsonSchema = {
  $schema?: string;
  $id?: string;
  title?: string;
  type?: string;
  properties?: Record<string, JsonSchema>;
  additionalProperties?: unknown;
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
};
const committed = () => readFileSync(SCHEMA_PATH, 'utf8');
const schema = (): JsonSchema => JSON.parse(committed()) as JsonSchema;

test('the committed schema equals a fresh generation (run `npm run schema` after changing src/config/schema.ts)', () => {
  assert.equal(committed(), generateSchemaText());
});

test('the schema carries $schema, $id and title', () => {
  const s = schema();
  assert.equal(s.$schema, 'https://json-schema.org/draft/2020-12/schema');
  assert.equal(s.$id, SCHEMA_ID);
  assert.equal(s.$id, 'https://kt.dev/schema/policy-config.schema.json');
  assert.equal(typeof s.title, 'string');
  assert.equal(s.type, 'object');
  assert.equal(s.additionalProperties, false, 'unknown top-level keys are rejected');
});

/** Every key of `value` exists in the schema's properties, recursively through objects, lists and unions. */
function unknownKeys(s: JsonSchema, value: unknown, path: string): string[] {
  const branches = [...(s.anyOf ?? []), ...(s.oneOf ?? [])];
  if (branches.length) {
    const results = branches.map((b) => unknownKeys(b, value, path));
    return results.find((r) => r.length === 0) ?? results.sort((a, b) => a.length - b.length)[0] ?? [];
  }
  if (Array.isArray(value)) return s.items ? value.flatMap((v, i) => unknownKeys(s.items!, v, `${path}[${i}]`)) : [];
  if (value && typeof value === 'object') {
    const out: string[] = [];
    for (const [k, v] of Object.entries(value)) {
      const child = s.properties?.[k];
      if (child) out.push(...unknownKeys(child, v, path ? `${path}.${k}` : k));
      else if (s.additionalProperties === false || (s.properties && !s.additionalProperties)) out.push(path ? `${path}.${k}` : k);
    }
    return out;
  }
  return [];
}

for (const name of ['tutorial-000.yaml', 'tutorial-001.yaml', 'tutorial-001-step8.yaml', 'policies-chain.yaml']) {
  test(`the keys of ${name} all exist in the JSON schema`, () => {
    const data = parse(readFileSync(join(ROOT, 'test/fixtures/config/good', name), 'utf8')) as Record<string, unknown>;
    const s = schema();
    for (const key of Object.keys(data)) assert.ok(s.properties?.[key], `top-level key ${key} is not in the schema`);
    assert.deepEqual(unknownKeys(s, data, ''), []);
  });
}

test('a misspelt key is caught by the same structural check', () => {
  const data = { consumer_groups: [{ name: 'a', api_key: 'k', rate_limits: { requests_per_min: 1 } }], polices: [] };
  assert.deepEqual(unknownKeys(schema(), data, '').sort(), ['consumer_groups[0].rate_limits.requests_per_min', 'polices']);
});

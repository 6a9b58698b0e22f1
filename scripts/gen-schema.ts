/**
 * Generates `schema/policy-config.schema.json` (the JSON Schema shipped for editors) from the zod
 * `PolicyConfig` in src/config/schema.ts. Run with `npm run schema`; a unit test fails when the
 * committed file differs from a fresh generation.
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { PolicyConfig } from '../src/config/schema.ts';

export const SCHEMA_ID = 'https://kt.dev/schema/policy-config.schema.json';
export const SCHEMA_PATH = join(dirname(fileURLToPath(import.meta.url)), '..', 'schema', 'policy-config.schema.json');

/** The schema object, with `$schema`, `$id` and `title` first. */
export function generateSchema(): Record<string, unknown> {
  const generated = z.toJSONSchema(PolicyConfig, { io: 'input' }) as Record<string, unknown>;
  const { $schema, ...rest } = generated;
  return {
    $schema: $schema ?? 'https://json-schema.org/draft/2020-12/schema',
    $id: SCHEMA_ID,
    title: 'kt policy config',
    ...rest,
  };
}

/** The file's exact text (2-space JSON, trailing newline). */
export function generateSchemaText(): string {
  return `${JSON.stringify(generateSchema(), null, 2)}\n`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  mkdirSync(dirname(SCHEMA_PATH), { recursive: true });
  writeFileSync(SCHEMA_PATH, generateSchemaText());
  process.stdout.write(`wrote ${SCHEMA_PATH}\n`);
}

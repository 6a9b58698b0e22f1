/**
 * CEL for named limits (`token_limits` / `request_limits`, Kuadrant's shape). Expressions are parsed
 * and type-checked once at load against the request context below; on the request path they are
 * only evaluated. Kuadrant's own predicates work verbatim, e.g.
 * `auth.identity.groups.split(",").exists(g, g == "free")` (groups is the comma-joined string).
 */
import { Environment } from '@marcbachmann/cel-js';

export interface CelContext {
  request: { path: string; method: string; model: string; headers: Record<string, string>; body: Record<string, unknown> };
  auth: { identity: { userid: string; groups: string; team: string; consumer_group: string; key_id: string } };
  source: { ip: string };
}

const env = new Environment({ unlistedVariablesAreDyn: false })
  .registerVariable({
    name: 'request',
    schema: { path: 'string', method: 'string', model: 'string', headers: 'map<string, string>', body: 'map' },
  })
  .registerVariable({
    name: 'auth',
    schema: { identity: { userid: 'string', groups: 'string', team: 'string', consumer_group: 'string', key_id: 'string' } },
  })
  .registerVariable({ name: 'source', schema: { ip: 'string' } });

export type CelProgram = (ctx: CelContext) => unknown;

/** Parses and type-checks; returns the program or a message for lint (first line of the error). */
export function compileCel(expr: string, expect: 'bool' | 'value'): { program: CelProgram } | { error: string } {
  const checked = env.check(expr);
  if (!checked.valid) return { error: celMessage(checked.error) };
  if (expect === 'bool' && checked.type !== 'bool' && checked.type !== 'dyn')
    return { error: `a predicate must be a boolean expression, but this one is of type ${checked.type}` };
  try {
    return { program: env.parse(expr) as unknown as CelProgram };
  } catch (err) {
    return { error: celMessage(err) };
  }
}

function celMessage(err: unknown): string {
  const text = (err as Error | undefined)?.message ?? String(err);
  const [first, ...rest] = text.split('\n').filter((l) => l.trim());
  const caret = rest.join(' ').replace(/\s+/g, ' ').trim();
  return caret ? `${first} (at: ${caret})` : (first ?? 'invalid expression');
}

/** Evaluates a predicate; an evaluation error (missing field, wrong type at runtime) counts as false. */
export function evalPredicate(p: CelProgram, ctx: CelContext): boolean {
  try {
    return p(ctx) === true;
  } catch {
    return false;
  }
}

/** Evaluates a counter expression to the string that keys the counter ('' on error). */
export function evalCounter(p: CelProgram, ctx: CelContext): string {
  try {
    const v = p(ctx);
    return typeof v === 'string' ? v : typeof v === 'bigint' || typeof v === 'number' || typeof v === 'boolean' ? String(v) : JSON.stringify(v);
  } catch {
    return '';
  }
}

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

/** The scalar variables an expression's result may be remembered by (see `remembered`). */
const SCALARS: Record<string, (c: CelContext) => string> = {
  'request.path': (c) => c.request.path,
  'request.method': (c) => c.request.method,
  'request.model': (c) => c.request.model,
  'auth.identity.userid': (c) => c.auth.identity.userid,
  'auth.identity.groups': (c) => c.auth.identity.groups,
  'auth.identity.team': (c) => c.auth.identity.team,
  'auth.identity.consumer_group': (c) => c.auth.identity.consumer_group,
  'auth.identity.key_id': (c) => c.auth.identity.key_id,
  'source.ip': (c) => c.source.ip,
};
const SCALAR_PATTERNS = Object.keys(SCALARS).map((name) => ({ name, re: new RegExp(`\\b${name.replaceAll('.', '\\.')}\\b`, 'g') }));
const REMEMBERED = 10_000;

/**
 * Parses and type-checks; returns the program or a message for lint (first line of the error).
 * An expression that reads only scalar variables (path, method, model, identity fields, IP; never
 * headers or body) remembers its result per combination of their values: CEL has no side effects
 * or clock, so the same values give the same result, and most requests repeat a combination.
 */
export function compileCel(expr: string, expect: 'bool' | 'value'): { program: CelProgram } | { error: string } {
  const checked = env.check(expr);
  if (!checked.valid) return { error: celMessage(checked.error) };
  if (expect === 'bool' && checked.type !== 'bool' && checked.type !== 'dyn')
    return { error: `a predicate must be a boolean expression, but this one is of type ${checked.type}` };
  try {
    return { program: remembered(expr, env.parse(expr) as unknown as CelProgram) };
  } catch (err) {
    return { error: celMessage(err) };
  }
}

function remembered(expr: string, run: CelProgram): CelProgram {
  // Conservative: every mention of a variable other than the scalars above (or of a scalar in a
  // form not matched here) leaves the expression evaluated on every request.
  let rest = expr;
  const reads: ((c: CelContext) => string)[] = [];
  for (const { name, re } of SCALAR_PATTERNS) {
    re.lastIndex = 0;
    if (!re.test(rest)) continue;
    reads.push(SCALARS[name]!);
    rest = rest.replace(re, ' ');
  }
  if (/\b(request|auth|source)\b/.test(rest)) return run;
  const results = new Map<string, { value: unknown } | { error: unknown }>();
  return (ctx) => {
    let key = '';
    for (const read of reads) key += `${read(ctx)}\u0000`;
    let r = results.get(key);
    if (!r) {
      try {
        r = { value: run(ctx) };
      } catch (error) {
        r = { error };
      }
      if (results.size >= REMEMBERED) results.clear();
      results.set(key, r);
    }
    if ('error' in r) throw r.error;
    return r.value;
  };
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

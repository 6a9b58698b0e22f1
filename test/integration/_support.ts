/**
 * Shared fixtures of the integration tests: a policy config whose target is a real OpenAI-compatible
 * upstream (`kt mock-upstream`) reached with a provider key from the environment, consumer keys, and
 * small helpers to read rate-limit headers, count settlements and read SSE bodies.
 * (Not a test file itself: the runner only picks `*.test.ts`.)
 */
import { randomBytes } from 'node:crypto';
import { Agent, getGlobalDispatcher, setGlobalDispatcher } from 'undici';
import type { Gateway } from '../../src/server/gateway.ts';
import type { Ticket } from '../../src/limits/engine.ts';
import type { Usage } from '../../src/limits/types.ts';

/** The provider secret: only the gateway (from its environment) and the upstream ever see it. */
export const PROVIDER_KEY_ENV = 'KT_TEST_PROVIDER_KEY';
export const PROVIDER_KEY = `sk-provider-${randomBytes(12).toString('hex')}`;
/** The in-process gateway compiles `secret_key_ref` from this process's environment. */
process.env[PROVIDER_KEY_ENV] = PROVIDER_KEY;

/** Consumer-group keys the clients hold. */
export const TEAM_KEY = 'kt_cg_team_a_key';
export const OTHER_KEY = 'kt_cg_restricted_key';

export interface ConfigOptions {
  /** `/v1` URL of the catch-all upstream target. */
  upstream: string;
  timeoutMs?: number;
  requestsPerMinute?: number;
  tokensPerMinute?: number;
  maxBodyBytes?: number;
  /** Extra targets serving one model each, listed before the catch-all. */
  extraTargets?: { id: string; model: string; url: string; timeoutMs?: number }[];
  /** A second group limited to `gpt-4o-mini`. */
  restrictedGroup?: boolean;
  /** `rate_limit_defaults` for callers without a recognised key (omit to get 401 for them). */
  defaults?: { requestsPerMinute: number };
}

export function upstreamConfig(o: ConfigOptions): string {
  const lines: string[] = ["version: '1'", 'providers:', '  targets:'];
  const target = (id: string, url: string, timeoutMs: number | undefined, model?: string) => {
    lines.push(`    - id: ${id}`, '      provider: openai', `      base_url: ${url}`);
    if (model) lines.push(`      model: ${model}`);
    lines.push('      secret_key_ref:', `        env: ${PROVIDER_KEY_ENV}`);
    if (timeoutMs) lines.push(`      timeout_ms: ${timeoutMs}`);
  };
  for (const t of o.extraTargets ?? []) target(t.id, t.url, t.timeoutMs, t.model);
  target('upstream', o.upstream, o.timeoutMs);
  lines.push('consumer_groups:', '  - name: team-a', `    api_key: ${TEAM_KEY}`);
  if (o.requestsPerMinute || o.tokensPerMinute) {
    lines.push('    rate_limits:');
    if (o.requestsPerMinute) lines.push(`      requests_per_minute: ${o.requestsPerMinute}`);
    if (o.tokensPerMinute) lines.push(`      tokens_per_minute: ${o.tokensPerMinute}`);
  }
  if (o.restrictedGroup) lines.push('  - name: restricted', `    api_key: ${OTHER_KEY}`, '    allowed_models: [gpt-4o-mini]');
  if (o.defaults) lines.push('rate_limit_defaults:', `  requests_per_minute: ${o.defaults.requestsPerMinute}`);
  if (o.maxBodyBytes) lines.push('server:', `  max_body_bytes: ${o.maxBodyBytes}`);
  return `${lines.join('\n')}\n`;
}

export const asTeam = { authorization: `Bearer ${TEAM_KEY}` };

/** A `#mock` directive line for the mock upstream (see src/providers/mock/generate.ts). */
export function mock(directives: string): string {
  return `Hello there.\n#mock ${directives}`;
}

export function num(headers: Record<string, string>, name: string): number {
  const v = headers[name.toLowerCase()];
  if (v === undefined) throw new Error(`missing header ${name} in ${JSON.stringify(headers)}`);
  return Number(v);
}

/**
 * Counts effective settlements per admission ticket by wrapping the engine's `settle`: the pipeline
 * must settle every admitted request exactly once, whatever the ending.
 */
export function countSettlements(gw: Gateway): { tickets: Map<Ticket, number>; effective(): number; usages: Usage[] } {
  const tickets = new Map<Ticket, number>();
  const usages: Usage[] = [];
  const engine = gw.engine;
  const original = engine.settle.bind(engine);
  engine.settle = async (ticket: Ticket, usage: Usage) => {
    const first = !ticket.settled;
    const r = await original(ticket, usage);
    if (first) {
      tickets.set(ticket, (tickets.get(ticket) ?? 0) + 1);
      usages.push(usage);
    }
    return r;
  };
  return { tickets, usages, effective: () => [...tickets.values()].reduce((a, b) => a + b, 0) };
}

/** The `data:` payloads of an SSE body, in order. */
export function sseData(text: string): string[] {
  const out: string[] = [];
  for (const event of text.split(/\r?\n\r?\n/)) {
    const data = event
      .split(/\r?\n/)
      .filter((l) => l.startsWith('data:'))
      .map((l) => l.slice(l[5] === ' ' ? 6 : 5))
      .join('');
    if (data) out.push(data);
  }
  return out;
}

/** Closes every connection of undici's global dispatcher (the harness's client) and installs a fresh one. */
export async function dropClientConnections(): Promise<void> {
  const old = getGlobalDispatcher();
  setGlobalDispatcher(new Agent());
  await old.destroy();
}

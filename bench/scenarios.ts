/**
 * Gateway configs of the benchmark. Every limit is far above what a run can reach (a run sends well
 * under a million requests), so nothing is ever refused: the numbers are the cost of counting, not
 * of refusing. The body and headers each target receives are defined here too.
 */

/** Far above anything a run sends, per minute and per day. */
const BIG = 1_000_000_000;
const PARALLEL = 100_000;

export const GROUP_KEY = 'kt_cg_engineering_abc123';
export const TIERS_KEY = 'kt_bench_tiers_key';
/** Distinct X-User-Id values the all-tiers scenarios rotate through (one per-user counter each). */
export const BENCH_USERS = 100;

export const REQUEST_PATH = '/v1/chat/completions';
export const REQUEST_BODY = JSON.stringify({
  model: 'gpt-4o-mini',
  messages: [{ role: 'user', content: 'Hello! Summarize the deployment checklist in one sentence.' }],
  max_tokens: 32,
});

export type ScenarioId = 'groups' | 'tiers';

export interface GatewayScenario {
  id: ScenarioId;
  redis: boolean;
  label: string;
  /** Policy config YAML for an upstream at `upstreamV1` (a base URL ending in /v1). */
  config(upstreamV1: string, redis: RedisSettings | null): string;
  headers(): Record<string, string>[];
}

export interface RedisSettings {
  /** Environment variable holding the URL (the gateway reads `redis_url_env`). */
  urlEnv: string;
  keyPrefix: string;
}

function distributed(r: RedisSettings | null): string {
  if (!r) return '';
  return `distributed_rate_limit:
  enabled: true
  redis_url_env: ${r.urlEnv}
  key_prefix: "${r.keyPrefix}"
  local_fallback: false
`;
}

// Tutorial 000 ("Implementing Rate Limits per Team"): three consumer groups with rpm / tpm / tpd,
// model allow-lists, defaults for unknown callers and a flagging content filter.
const groupsYaml = (upstreamV1: string, r: RedisSettings | null) => `version: '1'
providers:
  targets:
    - id: openai
      provider: openai
      base_url: ${upstreamV1}
consumer_groups:
  - name: engineering
    api_key: ${GROUP_KEY}
    rate_limits:
      requests_per_minute: ${BIG}
      tokens_per_minute: ${BIG}
      tokens_per_day: ${BIG}
    allowed_models:
      - gpt-4o-mini
      - gpt-4o
  - name: marketing
    api_key: kt_cg_marketing_def456
    rate_limits:
      requests_per_minute: ${BIG}
      tokens_per_minute: ${BIG}
      tokens_per_day: ${BIG}
    allowed_models:
      - gpt-4o-mini
  - name: data-science
    api_key: kt_cg_datascience_ghi789
    rate_limits:
      requests_per_minute: ${BIG}
      tokens_per_minute: ${BIG}
      tokens_per_day: ${BIG}
rate_limit_defaults:
  requests_per_minute: 10
  tokens_per_minute: 20000
  tokens_per_day: 100000
  response_headers: true
policies:
  - name: content-filter
    type: content_filter
    action: flag
    config:
      categories:
        - hate
        - violence
${distributed(r)}`;

// Every tier at once: per-IP, per-key (all keys and this key's own limits), the key's consumer
// group, per-user (a trusted header naming a sub-user of the key), per-team, the provider target,
// global, concurrency limits on several tiers, and one CEL token limit with a predicate and a
// counter expression. Same groups and policy as the groups scenario.
const tiersYaml = (upstreamV1: string, r: RedisSettings | null) => `version: '1'
providers:
  targets:
    - id: openai
      provider: openai
      base_url: ${upstreamV1}
      rate_limits:
        rpm: ${BIG}
        tpm: ${BIG}
        max_parallel_requests: ${PARALLEL}
consumer_groups:
  - name: engineering
    api_key: ${GROUP_KEY}
    rate_limits:
      requests_per_minute: ${BIG}
      tokens_per_minute: ${BIG}
      tokens_per_day: ${BIG}
    allowed_models:
      - gpt-4o-mini
      - gpt-4o
api_keys:
  - id: bench-key
    key: ${TIERS_KEY}
    user: alice
    team: platform
    groups: gold,beta
    consumer_group: engineering
    rate_limits:
      rpm: ${BIG}
      tpm: ${BIG}
      max_parallel_requests: ${PARALLEL}
rate_limits:
  per_ip:
    rpm: ${BIG}
    max_parallel_requests: ${PARALLEL}
  per_key:
    rpm: ${BIG}
  per_user:
    rpm: ${BIG}
    tpm: ${BIG}
    max_parallel_requests: ${PARALLEL}
  per_team:
    rpm: ${BIG}
    tpm: ${BIG}
  global:
    rpm: ${BIG}
    tpm: ${BIG}
    max_parallel_requests: ${PARALLEL}
user_rate_limit:
  header: X-User-Id
token_limits:
  gold-tokens:
    rates:
      - limit: ${BIG}
        window: 1m
    when:
      - predicate: request.path == "/v1/chat/completions"
      - predicate: auth.identity.groups.split(",").exists(g, g == "gold")
    counters:
      - expression: auth.identity.userid
policies:
  - name: content-filter
    type: content_filter
    action: flag
    config:
      categories:
        - hate
        - violence
${distributed(r)}`;

const json = { 'content-type': 'application/json' };

export const SCENARIOS: readonly GatewayScenario[] = [
  {
    id: 'groups',
    redis: false,
    label: 'gateway: memory + groups',
    config: (u) => groupsYaml(u, null),
    headers: () => [{ ...json, authorization: `Bearer ${GROUP_KEY}` }],
  },
  {
    id: 'tiers',
    redis: false,
    label: 'gateway: memory + all tiers + CEL',
    config: (u) => tiersYaml(u, null),
    headers: tiersHeaders,
  },
  {
    id: 'groups',
    redis: true,
    label: 'gateway: redis + groups',
    config: (u, r) => groupsYaml(u, r),
    headers: () => [{ ...json, authorization: `Bearer ${GROUP_KEY}` }],
  },
  {
    id: 'tiers',
    redis: true,
    label: 'gateway: redis + all tiers + CEL',
    config: (u, r) => tiersYaml(u, r),
    headers: tiersHeaders,
  },
];

function tiersHeaders(): Record<string, string>[] {
  return Array.from({ length: BENCH_USERS }, (_, i) => ({ ...json, authorization: `Bearer ${TIERS_KEY}`, 'x-user-id': `u${i}` }));
}

/** Headers for the upstream and the bare proxy (the key is forwarded and ignored). */
export function plainHeaders(): Record<string, string>[] {
  return [{ ...json, authorization: `Bearer ${GROUP_KEY}` }];
}

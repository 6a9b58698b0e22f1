/**
 * Tutorial 001 "Isolating Teams with Consumer Groups", step by step through bash, curl and jq,
 * against a `kt gateway run` process and a real upstream process. Changes from the tutorial: the
 * target's `base_url`, a free port instead of 41002, and step 7 reads `--format jsonl` with `jq -s`
 * (PRODUCT.md: `--format json` is one array for `jq '.[]'`; jsonl is the form `jq -s` slurps).
 * Step 8's PII block is verified on an in-process gateway whose clock the test moves, because the
 * tutorial reaches step 8 with marketing still inside its throttled minute.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startMockUpstreamProcess, startTestGateway, eventually, post, chat, writeConfig, tempDir, type MockProc, type Proc } from '../helpers/harness.ts';
import { userShell, type Shell } from '../helpers/shell.ts';
import { startUserGateway } from '../helpers/spawn-shell.ts';
import { ManualClock } from '../../src/core/clock.ts';
import { MemoryEventSink } from '../../src/events/memory-event-sink.ts';

const groups = `consumer_groups:
  - name: engineering
    api_key: kt_cg_engineering_abc123
    rate_limits:
      requests_per_minute: 60
      tokens_per_minute: 100000
      tokens_per_day: 2000000
    allowed_models:
      - gpt-4o-mini
      - gpt-4o
  - name: marketing
    api_key: kt_cg_marketing_def456
    rate_limits:
      requests_per_minute: 30
      tokens_per_minute: 50000
      tokens_per_day: 500000
    allowed_models:
      - gpt-4o-mini
STEP8
  - name: research
    api_key: kt_cg_research_ghi789
    rate_limits:
      requests_per_minute: 120
      tokens_per_minute: 200000
      tokens_per_day: 5000000
    allowed_models:
      - gpt-4o-mini
      - gpt-4o
`;
const step8 = `    input_policies:
      - name: marketing-pii-filter
        type: pii_detector
        action: block
        config:
          entities:
            - credit_card
            - ssn`;

const config = (upstream: string, withStep8: boolean) => `version: '1'
providers:
  targets:
    - id: openai
      provider: openai
      base_url: ${upstream}
      secret_key_ref:
        env: OPENAI_API_KEY
${groups.replace('STEP8\n', withStep8 ? `${step8}\n` : '')}policies:
  - name: basic-filter
    type: content_filter
    action: flag
    config:
      categories:
        - hate
      threshold: medium
`;

const engineering = (model: string, content: string, jq: string, url: string) => `curl -s ${url}/v1/chat/completions \\
  -H "Content-Type: application/json" \\
  -H "Authorization: Bearer kt_cg_engineering_abc123" \\
  -d '{
    "model": "${model}",
    "messages": [{"role": "user", "content": "${content}"}]
  }' | jq '${jq}'`;

describe('tutorial 001: isolating teams with consumer groups', () => {
  let upstream: MockProc;
  let sh: Shell;
  let gateway: Proc;
  let url = '';

  before(async () => {
    upstream = await startMockUpstreamProcess();
    sh = userShell({ OPENAI_API_KEY: 'sk-test-provider-key-001' });
    sh.env.KT_DATA_DIR = join(sh.dir, '.kt');
    writeFileSync(join(sh.dir, 'policy-config.yaml'), config(upstream.url, false));
  });
  after(async () => {
    await gateway?.stop();
    await upstream?.stop();
  });

  it('step 2: lint prints the summary of the tutorial, then the gateway starts', async () => {
    const lint = await sh.run('kt policy lint --file policy-config.yaml');
    assert.equal(lint.code, 0, lint.stdout + lint.stderr);
    const lines = lint.stdout.split('\n');
    for (const l of ['✓ Configuration is valid', 'Providers: 1 (openai)', 'Consumer groups: 3 (engineering, marketing, research)', 'Policies: 1 (basic-filter)'])
      assert.ok(lines.includes(l), `missing "${l}" in:\n${lint.stdout}`);
    const started = await startUserGateway(sh, '--port 0');
    gateway = started.proc;
    url = `http://localhost:${started.port}`;
  });

  it('step 3: each key is identified as its group', async () => {
    // jq 1.6 needs parentheses around `//` inside an object; jq 1.7 takes the tutorial's form as is.
    const jq17 = (await sh.run(`echo '{}' | jq '{a: .b // "c"}'`)).code === 0;
    const expr = jq17 ? '{model: .model, group: .headers["x-consumer-group"] // "engineering"}' : '{model: .model, group: (.headers["x-consumer-group"] // "engineering")}';
    const r = await sh.run(engineering('gpt-4o', 'Explain microservices architecture.', expr, url));
    assert.deepEqual(JSON.parse(r.stdout), { model: 'gpt-4o', group: 'engineering' });
    const m = await sh.run(`curl -s ${url}/v1/chat/completions \\
  -H "Content-Type: application/json" \\
  -H "Authorization: Bearer kt_cg_marketing_def456" \\
  -d '{
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "Write a tagline for our product."}]
  }' | jq '{model: .model}'`);
    assert.deepEqual(JSON.parse(m.stdout), { model: 'gpt-4o-mini' });
    // The upstream saw the provider key, never the consumer group key.
    for (const req of await upstream.requests()) {
      assert.equal(req.headers.authorization, 'Bearer sk-test-provider-key-001');
      assert.ok(!JSON.stringify(req).includes('kt_cg_'), 'a consumer key reached the upstream');
    }
  });

  it('step 4: marketing cannot use gpt-4o (403 with allowed_models)', async () => {
    const r = await sh.run(`curl -s -w "\\nHTTP Status: %{http_code}\\n" \\
  ${url}/v1/chat/completions \\
  -H "Content-Type: application/json" \\
  -H "Authorization: Bearer kt_cg_marketing_def456" \\
  -d '{
    "model": "gpt-4o",
    "messages": [{"role": "user", "content": "Draft a press release."}]
  }'`);
    const [json, status] = r.stdout.trim().split('\n');
    assert.equal(status, 'HTTP Status: 403');
    const e = JSON.parse(json!).error;
    assert.equal(e.code, 'model_not_allowed');
    assert.deepEqual(e.allowed_models, ['gpt-4o-mini']);
    assert.match(e.message, /marketing/);
    assert.match(e.message, /gpt-4o/);
  });

  it('step 5: marketing is cut at 30 requests per minute', async () => {
    const r = await sh.run(`for i in $(seq 1 35); do
  STATUS=$(curl -s -o /dev/null -w "%{http_code}" \\
    ${url}/v1/chat/completions \\
    -H "Content-Type: application/json" \\
    -H "Authorization: Bearer kt_cg_marketing_def456" \\
    -d '{
      "model": "gpt-4o-mini",
      "messages": [{"role": "user", "content": "Hello"}]
    }')
  echo "Request $i: HTTP $STATUS"
done`);
    // One marketing request was already made in step 3, so 29 more fit in the minute.
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 35);
    lines.forEach((l, i) => assert.equal(l, `Request ${i + 1}: HTTP ${i < 29 ? 200 : 429}`));
  });

  it('step 6: engineering still works', async () => {
    const r = await sh.run(engineering('gpt-4o', 'What is Kubernetes?', '{model: .model, status: "success"}', url));
    assert.deepEqual(JSON.parse(r.stdout), { model: 'gpt-4o', status: 'success' });
  });

  it('step 7: per-group analytics from the event store', async () => {
    const pipeline = `kt events tail --last 50 --format jsonl | jq -s '
  group_by(.consumer_group) | map({
    group: .[0].consumer_group,
    requests: length,
    total_tokens: (map(.usage.total_tokens) | add),
    blocked: (map(select(.result == "blocked")) | length)
  })
'`;
    const rows = await eventually(async () => {
      const r = await sh.run(pipeline);
      const parsed = r.code === 0 ? (JSON.parse(r.stdout) as { group: string; requests: number; total_tokens: number; blocked: number }[]) : [];
      return parsed.reduce((n, x) => n + x.requests, 0) === 39 ? parsed : null;
    });
    const byGroup = Object.fromEntries(rows.map((r) => [r.group, r]));
    // engineering: steps 3 and 6; marketing: step 3, the 403 of step 4, 35 of step 5.
    assert.equal(byGroup.engineering!.requests, 2);
    assert.equal(byGroup.engineering!.blocked, 0);
    assert.equal(byGroup.marketing!.requests, 37);
    assert.equal(byGroup.marketing!.blocked, 7);
    // Token totals are what the upstream reported for the requests it served.
    const served = (await upstream.requests()).length;
    assert.equal(served, 2 + 1 + 29);
    assert.ok(byGroup.marketing!.total_tokens > 0 && byGroup.engineering!.total_tokens > 0);
    const json = await sh.run(`kt events tail --last 50 --format json | jq '[.[] | select(.consumer_group == "marketing" and .result == "blocked")] | length'`);
    assert.equal(json.stdout.trim(), '7');
  });

  it('step 8: reload adds the PII policy; counters of unchanged limits are kept', async () => {
    writeFileSync(join(sh.dir, 'policy-config.yaml'), config(upstream.url, true));
    const reload = await sh.run('kt config reload');
    assert.equal(reload.code, 0, reload.stdout + reload.stderr);
    assert.match(reload.stdout, /Reloaded/);
    const tail = await sh.run('kt events tail --last 1 --verbose');
    assert.equal(tail.code, 0);
    assert.match(tail.stdout, /engineering|marketing/);
    // Marketing's minute is still used up after the reload.
    const r = await post(`${url}/v1/chat/completions`, chat('Hello'), { authorization: 'Bearer kt_cg_marketing_def456' });
    assert.equal(r.status, 429);
    // A broken file is refused with its errors and the old config stays.
    writeFileSync(join(sh.dir, 'policy-config.yaml'), 'consumer_groups:\n  - name: x\n    rate_limits:\n      requests_per_minute: -1\n');
    const bad = await sh.run('kt config reload');
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /requests_per_minute/);
    const still = await post(`${url}/v1/chat/completions`, chat('Hello'), { authorization: 'Bearer kt_cg_engineering_abc123' });
    assert.equal(still.status, 200);
  });

  it('step 8 (continued): the marketing PII policy blocks card numbers once the minute has passed', async () => {
    const clock = new ManualClock(Date.now());
    const dir = tempDir();
    const events = new MemoryEventSink();
    const gw = await startTestGateway({ configFile: writeConfig(dir, config(upstream.url, true)), clock, events });
    try {
      const key = { authorization: 'Bearer kt_cg_marketing_def456' };
      for (let i = 0; i < 30; i++) assert.equal((await post(`${gw.url}/v1/chat/completions`, chat('Hello'), key)).status, 200);
      assert.equal((await post(`${gw.url}/v1/chat/completions`, chat('Hello'), key)).status, 429);
      clock.advance(61_000);
      const blocked = await post(`${gw.url}/v1/chat/completions`, chat('My card is 4111 1111 1111 1111'), key);
      assert.equal(blocked.status, 403);
      assert.equal(blocked.json.error.code, 'policy_blocked');
      assert.match(blocked.json.error.message, /marketing-pii-filter/);
      assert.ok(!blocked.text.includes('4111'), 'the card number must not be echoed');
      const other = await post(`${gw.url}/v1/chat/completions`, chat('My card is 4111 1111 1111 1111'), { authorization: 'Bearer kt_cg_engineering_abc123' });
      assert.equal(other.status, 200, 'the policy is marketing-only');
      await gw.events.flush();
      const ev = events.events.find((e) => e.reason === 'policy_blocked')!;
      assert.equal(ev.result, 'blocked');
      assert.equal(ev.consumer_group, 'marketing');
      assert.equal(ev.findings[0]!.category, 'credit_card');
    } finally {
      await gw.close();
    }
  });
});

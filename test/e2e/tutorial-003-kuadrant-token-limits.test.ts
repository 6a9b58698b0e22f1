/**
 * Tutorial 003 "Token-based Rate Limiting" (Kuadrant TokenRateLimitPolicy), as kt runs it: the
 * policy's `limits:` map pasted verbatim under `token_limits:`, the AuthPolicy's API keys and their
 * annotations as `api_keys:` (user id and groups), the tutorial's curl commands against a gateway
 * process in front of a real upstream process. As in the tutorial, connectivity is checked first
 * (no auth yet), then the auth and token policy are applied (here: a config reload).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startMockUpstreamProcess, type MockProc, type Proc } from '../helpers/harness.ts';
import { userShell, type Shell } from '../helpers/shell.ts';
import { startUserGateway } from '../helpers/spawn-shell.ts';

const target = (upstream: string) => `providers:
  targets:
    - id: trlp-tutorial-llm-sim
      provider: openai
      base_url: ${upstream}
`;

// The TokenRateLimitPolicy's spec.limits, verbatim.
const limits = `token_limits:
    free:
      rates:

        - limit: 50 # 50 tokens per minute for free users (small for testing)
          window: 1m
      when:
        - predicate: request.path == "/v1/chat/completions"
        - predicate: |
            auth.identity.groups.split(",").exists(g, g == "free")
      counters:
        - expression: auth.identity.userid
    gold:
      rates:
        - limit: 200 # 200 tokens per minute for gold users (small for testing)
          window: 1m
      when:
        - predicate: request.path == "/v1/chat/completions"
        - predicate: |
            auth.identity.groups.split(",").exists(g, g == "gold")
      counters:
        - expression: auth.identity.userid
`;

const withAuth = (upstream: string) => `${target(upstream)}api_keys:
  - key: iamafreeuser
    user: user-1
    groups: free
  - key: iamagolduser
    user: user-2
    groups: gold
${limits}`;

const freeRequest = (url: string) => `curl -s -w "\\nHTTP %{http_code}\\n" -H 'Host: trlp-tutorial.example.com' \\
     -H 'Authorization: APIKEY iamafreeuser' \\
     -H 'Content-Type: application/json' \\
     -X POST http://${url}/v1/chat/completions \\
     -d '{
           "model": "meta-llama/Llama-3.1-8B-Instruct",
           "messages": [
             { "role": "user", "content": "What is Kubernetes?" }
           ],
           "max_tokens": 100,
           "stream": false,
           "usage": true
         }'`;

const goldRequest = (url: string) => `curl -s -w "\\nHTTP %{http_code}\\n" -H 'Host: trlp-tutorial.example.com' \\
     -H 'Authorization: APIKEY iamagolduser' \\
     -H 'Content-Type: application/json' \\
     -X POST http://${url}/v1/chat/completions \\
     -d '{
           "model": "meta-llama/Llama-3.1-8B-Instruct",
           "messages": [
             { "role": "user", "content": "Explain cloud native architecture" }
           ],
           "max_tokens": 200,
           "stream": false,
           "usage": true
         }'`;

function split(out: string): { status: number; body: any } {
  const lines = out.trim().split('\n');
  const status = Number(lines.pop()!.replace('HTTP ', ''));
  return { status, body: JSON.parse(lines.join('\n')) };
}

describe('tutorial 003: Kuadrant token-based rate limiting', () => {
  let upstream: MockProc;
  let sh: Shell;
  let gateway: Proc;
  let gatewayUrl = '';

  before(async () => {
    upstream = await startMockUpstreamProcess();
    sh = userShell();
    sh.env.KT_DATA_DIR = join(sh.dir, '.kt');
    writeFileSync(join(sh.dir, 'policy-config.yaml'), target(upstream.url));
    const started = await startUserGateway(sh, '--port 0');
    gateway = started.proc;
    gatewayUrl = `localhost:${started.port}`;
    sh.env.KUADRANT_GATEWAY_URL = gatewayUrl;
  });
  after(async () => {
    await gateway?.stop();
    await upstream?.stop();
  });

  it('step 3: the service answers /v1/models', async () => {
    const r = await sh.run(`curl -H 'Host: trlp-tutorial.example.com' http://$KUADRANT_GATEWAY_URL/v1/models -i`);
    assert.match(r.stdout, /^HTTP\/1.1 200 OK/);
    assert.match(r.stdout, /meta-llama\/Llama-3.1-8B-Instruct/);
  });

  it('steps 4-6: the auth and token limits are applied and lint cleanly', async () => {
    writeFileSync(join(sh.dir, 'policy-config.yaml'), withAuth(upstream.url));
    const lint = await sh.run('kt policy lint --file policy-config.yaml');
    assert.equal(lint.code, 0, lint.stdout + lint.stderr);
    const reload = await sh.run('kt config reload');
    assert.equal(reload.code, 0, reload.stdout + reload.stderr);
  });

  it('step 7: a free user gets usage back, and is cut once 50 tokens are spent', async () => {
    const first = split((await sh.run(freeRequest(gatewayUrl))).stdout);
    assert.equal(first.status, 200);
    const u = first.body.usage;
    assert.ok(u.prompt_tokens > 0 && u.completion_tokens > 0);
    assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens);
    // The TokenRateLimitPolicy counted usage.total_tokens (> 50): the next request is refused.
    const second = split((await sh.run(freeRequest(gatewayUrl))).stdout);
    assert.equal(second.status, 429);
    assert.equal(second.body.error.type, 'rate_limit_error');
    assert.equal(second.body.error.details.limit, 'free');
    assert.equal(second.body.error.details.limit_value, 50);
  });

  it('step 7: a gold user has 200 tokens per minute, counted separately', async () => {
    const a = split((await sh.run(goldRequest(gatewayUrl))).stdout);
    assert.equal(a.status, 200);
    const used = a.body.usage.total_tokens as number;
    assert.ok(used < 200);
    let spent = used;
    let status = 200;
    let n = 1;
    while (status === 200 && n < 10) {
      const r = split((await sh.run(goldRequest(gatewayUrl))).stdout);
      status = r.status;
      if (status === 200) spent += r.body.usage.total_tokens;
      n++;
    }
    assert.equal(status, 429);
    // Admitted while the counter was under the limit; refused once it reached it.
    assert.ok(spent >= 200 && spent - used < 200, `spent ${spent}`);
    // No request was forwarded after the limit was reached.
    const forwarded = (await upstream.requests()).filter((r) => r.path.endsWith('/chat/completions')).length;
    assert.equal(forwarded, 1 + n - 1);
  });

  it('requests without a valid key are refused before reaching the upstream', async () => {
    const before = (await upstream.requests()).length;
    const r = await sh.run(`curl -s -o /dev/null -w "%{http_code}" -H 'Authorization: APIKEY wrong' -H 'Content-Type: application/json' -X POST http://$KUADRANT_GATEWAY_URL/v1/chat/completions -d '{"model":"m","messages":[{"role":"user","content":"hi"}]}'`);
    assert.equal(r.stdout, '401');
    assert.equal((await upstream.requests()).length, before);
  });
});

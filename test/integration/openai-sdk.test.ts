/**
 * The official `openai` SDK against a real gateway process in front of a real upstream: the
 * gateway's errors raise the SDK's matching exception classes, and normal and streaming calls work
 * unchanged.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startGatewayProcess, startMockUpstreamProcess, tempDir, writeConfig, type GatewayProc, type MockProc } from '../helpers/harness.ts';
import { PROVIDER_KEY, PROVIDER_KEY_ENV, TEAM_KEY, dropClientConnections } from './_support.ts';

const LIMITED_KEY = 'kt_cg_limited_key';
const RESTRICTED_KEY = 'kt_cg_restricted_key';

function config(upstreamUrl: string): string {
  return `version: '1'
providers:
  targets:
    - id: upstream
      provider: openai
      base_url: ${upstreamUrl}
      secret_key_ref:
        env: ${PROVIDER_KEY_ENV}
consumer_groups:
  - name: team-a
    api_key: ${TEAM_KEY}
    rate_limits:
      requests_per_minute: 100
      tokens_per_minute: 100000
  - name: limited
    api_key: ${LIMITED_KEY}
    rate_limits:
      requests_per_minute: 1
  - name: restricted
    api_key: ${RESTRICTED_KEY}
    allowed_models: [gpt-4o-mini]
`;
}

describe('official OpenAI SDK against the gateway', () => {
  let upstream: MockProc;
  let gateway: GatewayProc;
  const client = (apiKey: string) => new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey, maxRetries: 0, timeout: 20_000 });

  before(async () => {
    upstream = await startMockUpstreamProcess();
    const file = writeConfig(tempDir(), config(upstream.url));
    gateway = await startGatewayProcess({ configFile: file, env: { [PROVIDER_KEY_ENV]: PROVIDER_KEY } });
  });
  after(async () => {
    await dropClientConnections();
    await gateway?.stop();
    await upstream?.stop();
  });

  it('a normal call returns a completion with usage and rate-limit headers', async () => {
    const { data, response } = await client(TEAM_KEY)
      .chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Say hello' }], max_tokens: 12 })
      .withResponse();
    assert.equal(data.object, 'chat.completion');
    assert.equal(data.choices.length, 1);
    assert.equal(data.choices[0]!.message.role, 'assistant');
    assert.ok(data.choices[0]!.message.content!.length > 0);
    assert.ok(data.usage);
    assert.equal(data.usage.completion_tokens, 12);
    assert.ok(data.usage.prompt_tokens > 0);
    assert.equal(data.usage.total_tokens, data.usage.prompt_tokens + data.usage.completion_tokens);
    assert.equal(response.headers.get('x-ratelimit-limit-requests'), '100');
    assert.equal(response.headers.get('x-ratelimit-remaining-requests'), '99');
    assert.equal(Number(response.headers.get('x-ratelimit-remaining-tokens')), 100_000 - data.usage.total_tokens);
    // The SDK sent the consumer key to the gateway; the upstream only ever saw the provider key.
    const seen = await upstream.requests();
    assert.equal(seen.at(-1)!.headers.authorization, `Bearer ${PROVIDER_KEY}`);
  });

  it('a streaming call works through the SDK (with and without the usage chunk)', async () => {
    const s = await client(TEAM_KEY).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Count' }], max_tokens: 10, stream: true });
    let text = '';
    let chunks = 0;
    let finish: string | null = null;
    for await (const chunk of s) {
      chunks += 1;
      assert.equal(chunk.object, 'chat.completion.chunk');
      assert.ok(!chunk.usage, 'no usage chunk unless asked');
      text += chunk.choices[0]?.delta?.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    assert.ok(chunks >= 3, `chunks: ${chunks}`);
    assert.equal(text, ' the quick brown fox jumps over lazy dog and runs');
    assert.equal(finish, 'length');

    const withUsage = await client(TEAM_KEY).chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'Count' }],
      max_tokens: 5,
      stream: true,
      stream_options: { include_usage: true },
    });
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of withUsage) if (chunk.usage) usage = chunk.usage;
    assert.ok(usage);
    assert.equal(usage.completion_tokens, 5);
  });

  it('the SDK stream helper (runner) assembles the final completion', async () => {
    const runner = client(TEAM_KEY).chat.completions.stream({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Count' }], max_tokens: 4 });
    const final = await runner.finalChatCompletion();
    assert.equal(final.choices[0]!.message.content, ' the quick brown fox');
  });

  it('a disallowed model raises PermissionDeniedError with the allowed models', async () => {
    await assert.rejects(
      client(RESTRICTED_KEY).chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] }),
      (err: unknown) => {
        assert.ok(err instanceof OpenAI.PermissionDeniedError, `got ${String(err)}`);
        assert.equal(err.status, 403);
        assert.equal(err.code, 'model_not_allowed');
        assert.deepEqual((err.error as { allowed_models?: string[] }).allowed_models, ['gpt-4o-mini']);
        assert.match(err.message, /Model gpt-4o is not allowed for consumer group: restricted/);
        return true;
      },
    );
    // The allowed model works for the same key.
    const ok = await client(RESTRICTED_KEY).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
    assert.equal(ok.usage?.completion_tokens, 2);
  });

  it('a 429 raises RateLimitError with Retry-After and the binding limit', async () => {
    const limited = client(LIMITED_KEY);
    await limited.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'first' }], max_tokens: 2 });
    await assert.rejects(limited.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'second' }], max_tokens: 2 }), (err: unknown) => {
      assert.ok(err instanceof OpenAI.RateLimitError, `got ${String(err)}`);
      assert.equal(err.status, 429);
      assert.equal(err.type, 'rate_limit_error');
      assert.equal(err.code, 'rate_limit_exceeded');
      const retryAfter = Number(err.headers?.get('retry-after'));
      // At most the window plus one quantum of the rolling window (1/60 of it).
      assert.ok(retryAfter >= 1 && retryAfter <= 61, `retry-after ${retryAfter}`);
      const details = (err.error as { details?: Record<string, unknown> }).details!;
      assert.equal(details.consumer_group, 'limited');
      assert.equal(details.scope, 'consumer_group');
      assert.equal(details.limit, 'requests_per_minute');
      assert.equal(details.limit_value, 1);
      assert.equal(details.retry_after_seconds, retryAfter);
      return true;
    });
    // A streaming request is refused the same way, before any stream starts.
    await assert.rejects(
      limited.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'third' }], stream: true }),
      OpenAI.RateLimitError,
    );
  });

  it('an unknown key raises AuthenticationError', async () => {
    await assert.rejects(client('kt_cg_not_a_key').chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }), (err: unknown) => {
      assert.ok(err instanceof OpenAI.AuthenticationError, `got ${String(err)}`);
      assert.equal(err.status, 401);
      assert.equal(err.type, 'authentication_error');
      assert.match(err.message, /Invalid API key/);
      return true;
    });
  });

  it('a malformed request raises BadRequestError naming the parameter', async () => {
    await assert.rejects(
      client(TEAM_KEY).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], max_tokens: 0 }),
      (err: unknown) => {
        assert.ok(err instanceof OpenAI.BadRequestError, `got ${String(err)}`);
        assert.equal(err.param, 'max_tokens');
        return true;
      },
    );
  });

  it('upstream failures raise the SDK error for 5xx (InternalServerError)', async () => {
    await assert.rejects(
      client(TEAM_KEY).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x\n#mock status=500' }] }),
      (err: unknown) => {
        assert.ok(err instanceof OpenAI.InternalServerError, `got ${String(err)}`);
        assert.equal(err.status, 502);
        assert.ok(!err.message.includes(PROVIDER_KEY));
        return true;
      },
    );
  });

  it('models.list shows the caller its models; embeddings work with the SDK default (base64)', async () => {
    const models = await client(RESTRICTED_KEY).models.list();
    assert.deepEqual(
      models.data.map((m) => m.id),
      ['gpt-4o-mini'],
    );
    const emb = await client(TEAM_KEY).embeddings.create({ model: 'text-embedding-3-small', input: ['hello', 'world'] });
    assert.equal(emb.data.length, 2);
    for (const d of emb.data) {
      assert.ok(Array.isArray(d.embedding), 'decoded to numbers');
      assert.equal(d.embedding.length, 8);
      assert.ok(d.embedding.every((x) => Number.isFinite(x) && Math.abs(x) < 1), `plausible values: ${d.embedding}`);
    }
    const floats = await client(TEAM_KEY).embeddings.create({ model: 'text-embedding-3-small', input: 'hello', encoding_format: 'float' });
    assert.equal(floats.data[0]!.embedding.length, 8);
    assert.ok(Math.abs(floats.data[0]!.embedding[0]! - 0.0023) < 1e-6);
    assert.ok(Math.abs(emb.data[0]!.embedding[0]! - 0.0023) < 1e-6, 'base64 decodes to the same vector');
  });
});

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { countChatPrompt, countPromptInput, countText, promptCacheSize } from './tokens.ts';

/** OpenAI's chat accounting from plain text counts: 3 per message, the role, and 3 to prime the reply. */
function expectedChat(messages: { role: string; content: string }[]): number {
  return 3 + messages.reduce((n, m) => n + 3 + countText(m.role) - 1 + countText(m.content), 0);
}

describe('prompt token counts', () => {
  it('count a text seen before the same as the first time', () => {
    const system = `You are the assistant of team ${Math.random()}. Answer in one sentence, cite the runbook.`;
    const turns = [
      { role: 'system', content: system },
      { role: 'user', content: 'Which port does the gateway listen on?' },
    ];
    const want = expectedChat(turns);
    const before = promptCacheSize().texts;
    assert.equal(countChatPrompt(turns), want);
    assert.equal(promptCacheSize().texts, before + 2);
    // The conversation goes on: the first two messages are looked up, the new ones counted.
    const longer = [...turns, { role: 'assistant', content: 'Port 8080 unless server.port says otherwise.' }, { role: 'user', content: 'And the metrics?' }];
    assert.equal(countChatPrompt(turns), want);
    assert.equal(countChatPrompt(longer), expectedChat(longer));
    assert.equal(promptCacheSize().texts, before + 4);
  });

  it('hold at most 4 MiB and 65,536 texts, least recently used out first, and count a huge text without keeping it', () => {
    // 600 distinct texts of 10,000 characters: 6 million characters offered, 4 MiB kept at most.
    const texts = Array.from({ length: 600 }, (_, i) => `${i} ${'deploy the gateway behind the load balancer, '.repeat(222)}`);
    const counts = texts.map((t) => countPromptInput(t));
    const { chars, texts: kept } = promptCacheSize();
    assert.ok(chars <= 4 * 1024 * 1024, `cache holds ${chars} characters`);
    assert.ok(chars > 3 * 1024 * 1024, `cache holds only ${chars} characters`);
    assert.ok(kept < 600);
    // Evicted or kept, every text counts the same as the tokenizer says.
    for (const i of [0, 1, 299, 599]) assert.equal(countPromptInput(texts[i]), counts[i]);
    assert.equal(counts[599], countText(texts[599]!));

    // Many short texts: at most 65,536 of them are kept, whatever their total size.
    for (let i = 0; i < 70_000; i++) countPromptInput(`ping ${i}`);
    assert.equal(promptCacheSize().texts, 65_536);
    assert.equal(countPromptInput('ping 3'), countText('ping 3'));

    const huge = 'a b c d '.repeat(80_000);
    const sizeBefore = promptCacheSize();
    assert.equal(countPromptInput(huge), countText(huge));
    assert.deepEqual(promptCacheSize(), sizeBefore);
  });
});

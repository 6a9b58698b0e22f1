import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Command } from 'ioredis';
import { encodeCommand } from './encoded-script.ts';

/** What ioredis itself writes for the same command. */
function ioredisBytes(name: string, args: (string | number | Buffer)[]): Buffer {
  const w = new Command(name, args).toWritable({});
  return Buffer.isBuffer(w) ? w : Buffer.from(w);
}

describe('encodeCommand', () => {
  const entries = Buffer.from(new Float64Array([1, 2, 0.1, -0, 13, 10]).buffer);
  const keys = ['kt:rl:{kt}user:alice/u1', 'kt:rl:{kt}par|ip:10.0.0.1'];

  it('writes the bytes ioredis writes: text and number arguments, and Buffers between them', () => {
    const args = ['server', 30_000, entries, 'member-a member-b', '', Buffer.alloc(0), 'tail'];
    assert.deepEqual(encodeCommand('evalsha', 'a'.repeat(40), keys, args), ioredisBytes('evalsha', ['a'.repeat(40), keys.length, ...keys, ...args]));
  });

  it('counts lengths in UTF-8 bytes when a key or text is not ASCII', () => {
    const wide = ['kt:rl:{kt}user:jürgen/日本', 'kt:rl:{kt}team:café'];
    const args = [1_800_000_000_000, 'ünïcode', entries];
    const bytes = encodeCommand('eval', 'return 1 -- é', wide, args);
    assert.deepEqual(bytes, ioredisBytes('eval', ['return 1 -- é', wide.length, ...wide, ...args]));
    assert.ok(bytes.includes(Buffer.from('$29\r\nkt:rl:{kt}user:jürgen/日本\r\n')), 'the length is the key in bytes (29), not in characters (25)');
  });

  it('ends with the last Buffer when nothing follows it', () => {
    assert.deepEqual(encodeCommand('evalsha', 'b'.repeat(40), keys.slice(0, 1), [entries]), ioredisBytes('evalsha', ['b'.repeat(40), 1, keys[0]!, entries]));
  });
});

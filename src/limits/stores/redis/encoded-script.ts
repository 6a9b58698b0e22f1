/**
 * A script call whose bytes the store writes itself: for the sync, which carries hundreds of keys
 * and texts. ioredis builds a command's bytes argument by argument (several small strings and
 * native calls each); a sync spent more time there than in the rest of its gateway-side work. Here
 * every run of text arguments becomes one string, checked once for bytes outside ASCII, and the
 * command is one Buffer handed to ioredis, which sends it and reads the reply as usual (routing by
 * key in a Cluster, timeouts, reconnects).
 *
 * The call goes out as EVALSHA; a NOSCRIPT answer (a restarted or flushed Redis, another Cluster
 * node) sends it once more as EVAL with the script's text, which Redis caches for the next EVALSHA,
 * as ioredis's `defineCommand` does.
 */
import { createHash } from 'node:crypto';
import { Command, type Cluster, type Redis } from 'ioredis';

export type ScriptArg = string | number | Buffer;

export interface LuaScript {
  readonly lua: string;
  readonly sha: string;
}

export function luaScript(lua: string): LuaScript {
  return { lua, sha: createHash('sha1').update(lua).digest('hex') };
}

/** A command whose bytes are ready: ioredis routes it by its first key and writes these bytes. */
class EncodedCommand extends Command {
  constructor(
    private readonly bytes: Buffer,
    name: string,
    firstKey: string,
  ) {
    // The arguments ioredis sees are only for routing: a Cluster sends the command to the node of
    // its first key (every limiter key shares one hash tag).
    super(name, ['', 1, firstKey], { replyEncoding: null });
  }

  override toWritable(): Buffer {
    return this.bytes;
  }
}

/**
 * Runs `script` with `keys` (at least one) and `args`; resolves with the reply as bytes (a bulk
 * string reply). Errors are ioredis's (connection, script error).
 */
export async function evalEncoded(client: Redis | Cluster, script: LuaScript, keys: readonly string[], args: readonly ScriptArg[]): Promise<Buffer> {
  const send = (name: 'evalsha' | 'eval', body: string) => client.sendCommand(new EncodedCommand(encodeCommand(name, body, keys, args), name, keys[0]!)) as Promise<Buffer>;
  try {
    return await send('evalsha', script.sha);
  } catch (err) {
    if (!(err instanceof Error) || !err.message.includes('NOSCRIPT')) throw err;
    return send('eval', script.lua);
  }
}

/** The RESP bytes of `name body numkeys ...keys ...args`. */
export function encodeCommand(name: string, body: string, keys: readonly string[], args: readonly ScriptArg[]): Buffer {
  // Runs of text arguments, each one string, with the Buffers between them; lengths are taken as
  // string lengths, which are byte lengths while every character is ASCII (checked below).
  const parts: (string | Buffer)[] = [];
  let text = `*${3 + keys.length + args.length}\r\n`;
  text += bulk(name) + bulk(body) + bulk(String(keys.length));
  for (let i = 0; i < keys.length; i++) text += bulk(keys[i]!);
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (typeof a === 'string') text += bulk(a);
    else if (typeof a === 'number') text += bulk(String(a));
    else {
      parts.push(`${text}$${a.length}\r\n`, a);
      text = '\r\n';
    }
  }
  parts.push(text);
  let size = 0;
  for (const p of parts) {
    const n = typeof p === 'string' ? Buffer.byteLength(p) : p.length;
    if (typeof p === 'string' && n !== p.length) return encodeExactly(name, body, keys, args);
    size += n;
  }
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (const p of parts) at += typeof p === 'string' ? out.write(p, at, 'latin1') : p.copy(out, at);
  return out;
}

function bulk(s: string): string {
  return `$${s.length}\r\n${s}\r\n`;
}

/** The same bytes for arguments with characters outside ASCII: each length counted in UTF-8 bytes. */
function encodeExactly(name: string, body: string, keys: readonly string[], args: readonly ScriptArg[]): Buffer {
  const all: ScriptArg[] = [name, body, keys.length, ...keys, ...args];
  const parts: Buffer[] = [Buffer.from(`*${all.length}\r\n`)];
  for (const a of all) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a), 'utf8');
    parts.push(Buffer.from(`$${b.length}\r\n`), b, CRLF);
  }
  return Buffer.concat(parts);
}

const CRLF = Buffer.from('\r\n');

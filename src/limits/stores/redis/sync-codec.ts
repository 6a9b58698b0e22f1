/**
 * The gateway's side of SYNC_LUA's binary format (scripts.ts): its entries written as doubles, with
 * the texts some fields name as extra arguments, and its reply read back.
 */
import type { SyncOp } from './slice-model.ts';

/** SYNC_LUA's codes of operations and algorithms. */
const OP_CODE: Record<SyncOp['op'], number> = { a: 1, g: 2, u: 3, p: 4, r: 5, n: 6 };
const ALG_NUMBER: Record<string, number> = { s: 1, f: 2, b: 3, c: 4 };
const ENTRY_FIELDS = 10;

/**
 * SYNC_LUA's ARGV from its third on: the entries as ten little-endian doubles each (op, algorithm,
 * limit, windowMs, x, y, z, t, h, a), then the texts some fields name by their ARGV index.
 */
export function syncEntries(ops: readonly SyncOp[]): (Buffer | string)[] {
  const f = new Float64Array(ops.length * ENTRY_FIELDS);
  const out: (Buffer | string)[] = [Buffer.from(f.buffer)];
  // ARGV[1] and [2] come first and out[k] is ARGV[k + 3]: push returns k + 1.
  const field = (v: number | string): number => (typeof v === 'number' ? v : out.push(v) + 2);
  for (let i = 0, j = 0; i < ops.length; i++, j += ENTRY_FIELDS) {
    const o = ops[i]!;
    f[j] = OP_CODE[o.op];
    f[j + 1] = ALG_NUMBER[o.alg]!;
    f[j + 2] = o.limit;
    f[j + 3] = o.windowMs;
    f[j + 4] = field(o.x);
    f[j + 5] = field(o.y);
    f[j + 6] = o.z;
    f[j + 7] = field(o.t);
    f[j + 8] = o.h;
    f[j + 9] = o.a ?? 0;
  }
  return out;
}

/**
 * SYNC_LUA's reply: little-endian doubles. Whole numbers come back as small integers where they fit,
 * as `Number()` of their text would give: the slices keep them in fields V8 stores as such, and
 * doubles there would turn every slice's fields to boxed doubles (a measured slowdown of the
 * admission path). The array holds tagged values (it starts with `undefined`), never unboxed doubles.
 */
export function numbersOf(reply: Buffer): unknown[] {
  const n = reply.length >> 3;
  const out: unknown[] = new Array(n).fill(undefined);
  for (let i = 0; i < n; i++) {
    const v = reply.readDoubleLE(i * 8);
    out[i] = (v | 0) === v ? v | 0 : v;
  }
  return out;
}

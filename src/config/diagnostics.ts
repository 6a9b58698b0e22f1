/**
 * Diagnostics: every problem found in a config file, with its path in the file (as a user writes it,
 * e.g. `consumer_groups[1].rate_limits.requests_per_minute`), its line and column, and a message that
 * says what would be valid.
 */
import { isMap, isSeq, isScalar, type Document, type LineCounter, type Node } from 'yaml';
import type { z } from 'zod';

export type PathSegment = string | number;

export interface Diagnostic {
  severity: 'error' | 'warning';
  /** `a.b[2].c`; empty for the document itself. */
  path: string;
  line?: number;
  column?: number;
  message: string;
}

export function formatPath(path: readonly PathSegment[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out ? `.${seg}` : seg;
  }
  return out;
}

export function formatDiagnostic(file: string, d: Diagnostic): string {
  const where = d.line ? `${file}:${d.line}:${d.column ?? 1}` : file;
  return `${d.severity}: ${where}: ${d.path ? `${d.path}: ` : ''}${d.message}`;
}

/** Finds the YAML node for `path` (and the key node of its last step, for unknown-key reports). */
export function locate(
  doc: Document,
  lines: LineCounter,
  path: readonly PathSegment[],
  preferKey = false,
): { line: number; column: number } | undefined {
  let node: unknown = doc.contents;
  let keyNode: unknown;
  let lastFound: unknown = node;
  for (const seg of path) {
    keyNode = undefined;
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
      if (!pair) break;
      keyNode = pair.key;
      node = pair.value ?? pair.key;
    } else if (isSeq(node) && typeof seg === 'number') {
      node = node.items[seg];
      if (!node) break;
    } else break;
    lastFound = node;
  }
  const target = (preferKey && keyNode) || lastFound;
  const range = (target as Node | undefined)?.range;
  if (!range) return undefined;
  const pos = lines.linePos(range[0]);
  return { line: pos.line, column: pos.col };
}

type AnySchema = z.ZodType;
interface Def {
  type: string;
  shape?: Record<string, AnySchema>;
  innerType?: AnySchema;
  element?: AnySchema;
  options?: AnySchema[];
  valueType?: AnySchema;
  values?: unknown[];
  entries?: Record<string, unknown>;
}
function defOf(s: AnySchema): Def {
  return (s as unknown as { _zod: { def: Def } })._zod.def;
}

/** Walks the schema along a data path; returns the object schemas that could sit there. */
function schemasAt(root: AnySchema, path: readonly PathSegment[], data: unknown): AnySchema[] {
  let current: AnySchema[] = [root];
  let value = data;
  for (const seg of path) {
    const next: AnySchema[] = [];
    for (const s of current.flatMap((x) => unwrap(x, value))) {
      const d = defOf(s);
      if (d.type === 'object' && d.shape && typeof seg === 'string' && d.shape[seg]) next.push(d.shape[seg]);
      else if (d.type === 'array' && d.element && typeof seg === 'number') next.push(d.element);
      else if (d.type === 'record' && d.valueType) next.push(d.valueType);
    }
    current = next;
    value = value && typeof value === 'object' ? (value as Record<string, unknown>)[seg as string] : undefined;
  }
  return current.flatMap((x) => unwrap(x, value));
}

function unwrap(s: AnySchema, value: unknown): AnySchema[] {
  const d = defOf(s);
  if ((d.type === 'optional' || d.type === 'default' || d.type === 'nullable') && d.innerType) return unwrap(d.innerType, value);
  if (d.type === 'union' && d.options) {
    const opts = d.options.flatMap((o) => unwrap(o, value));
    // For a tagged union, keep the branch whose `type` literal matches the data.
    const tag = value && typeof value === 'object' ? (value as Record<string, unknown>).type : undefined;
    const tagged = opts.filter((o) => {
      const t = defOf(o).shape?.type;
      return t && (defOf(t).values ?? []).includes(tag);
    });
    return tagged.length ? tagged : opts;
  }
  return [s];
}

export function validKeysAt(root: AnySchema, path: readonly PathSegment[], data: unknown): string[] {
  const keys = new Set<string>();
  for (const s of schemasAt(root, path, data)) {
    const d = defOf(s);
    if (d.type === 'object' && d.shape) for (const k of Object.keys(d.shape)) keys.add(k);
  }
  return [...keys];
}

/**
 * Paths whose values are secrets (`consumer_groups[].api_key`, `consumer_groups[].api_keys[]`,
 * `api_keys[].key`): a message about them describes the value's kind, never its content.
 */
function isSecretPath(path: readonly PathSegment[]): boolean {
  const lastName = [...path].reverse().find((s): s is string => typeof s === 'string');
  return lastName === 'api_key' || lastName === 'api_keys' || lastName === 'key';
}

function describeValue(v: unknown, secret = false): string {
  if (v === null || v === undefined) return 'nothing';
  if (secret && typeof v !== 'object') return `a ${typeof v} (value not shown: it is an API key)`;
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return `${typeof v} ${String(v)}`;
}

function valueAt(data: unknown, path: readonly PathSegment[]): unknown {
  let v = data;
  for (const seg of path) v = v && typeof v === 'object' ? (v as Record<string, unknown>)[seg as string] : undefined;
  return v;
}

interface ZIssue {
  code: string;
  path: PathSegment[];
  message: string;
  expected?: string;
  keys?: string[];
  values?: unknown[];
  minimum?: number | bigint;
  origin?: string;
  inclusive?: boolean;
  format?: string;
  discriminator?: string;
  options?: unknown[];
  note?: string;
  errors?: ZIssue[][];
}

/** One explained issue: where in the data it is and what would be valid there. */
export interface ExplainedIssue {
  path: PathSegment[];
  message: string;
  /** Point at the key rather than its value (unknown keys). */
  preferKey?: boolean;
}

/** Turns zod issues into diagnostics that name the path and say what would be valid. */
export function fromZodIssues(
  root: AnySchema,
  issues: readonly ZIssue[],
  data: unknown,
  doc: Document,
  lines: LineCounter,
): Diagnostic[] {
  return explainZodIssues(root, issues, data).map((e) => ({
    severity: 'error' as const,
    path: formatPath(e.path),
    message: e.message,
    ...locate(doc, lines, e.path, e.preferKey),
  }));
}

/** The messages of `fromZodIssues`, with data paths instead of file positions. */
export function explainZodIssues(root: AnySchema, issues: readonly ZIssue[], data: unknown): ExplainedIssue[] {
  const out: ExplainedIssue[] = [];
  const push = (path: PathSegment[], message: string, preferKey = false) => out.push({ path, message, preferKey });
  for (const issue of issues) {
    const path = issue.path;
    const got = valueAt(data, path);
    const secret = isSecretPath(path);
    switch (issue.code) {
      case 'unrecognized_keys': {
        const valid = validKeysAt(root, path, data);
        for (const key of issue.keys ?? []) {
          const hint = suggest(key, valid);
          push([...path, key], `unknown key "${key}"${hint ? `; did you mean "${hint}"?` : '.'} Valid keys here: ${valid.join(', ')}.`, true);
        }
        break;
      }
      case 'invalid_type':
        if (got === undefined) push(path, `is required (${article(issue.expected)}).`);
        else push(path, `expected ${article(issue.expected)}, got ${describeValue(got, secret)}.`);
        break;
      case 'too_small':
        if (issue.origin === 'number')
          push(path, `must be ${issue.inclusive ? 'at least' : 'greater than'} ${String(issue.minimum)} (got ${String(got)}).`);
        else if (issue.origin === 'array') push(path, `must list at least ${String(issue.minimum)} item(s).`);
        else push(path, `must not be empty.`);
        break;
      case 'invalid_value':
        push(path, `must be one of ${(issue.values ?? []).map((v) => JSON.stringify(v)).join(', ')} (got ${describeValue(got, secret)}).`);
        break;
      case 'invalid_union':
        if (issue.discriminator) {
          // zod 4 puts the discriminator at the end of the issue's path; older shapes did not.
          const at = path[path.length - 1] === issue.discriminator ? path : [...path, issue.discriminator];
          const kinds = issue.options?.length ? issue.options.map(String) : validTags(root, at.slice(0, -1), data);
          const value = valueAt(data, at);
          push(at, value === undefined ? `is required: one of ${kinds.join(', ')}.` : `must be one of ${kinds.join(', ')} (got ${describeValue(value)}).`);
        } else if (issue.errors?.length) {
          const branches = issue.errors;
          const typeMismatch = (b: ZIssue[]) => b.some((e) => e.code === 'invalid_type' && e.path.length === 0);
          if (branches.every(typeMismatch)) {
            // The value is of none of the accepted kinds: list them all.
            const kinds = [...new Set(branches.flatMap((b) => b.filter((e) => e.path.length === 0).map((e) => article(e.expected))))];
            push(path, got === undefined ? `is required (${kinds.join(' or ')}).` : `expected ${kinds.join(' or ')}, got ${describeValue(got, secret)}.`);
            break;
          }
          // Report the branch whose kind matches the value and that got furthest (fewest issues).
          const best = [...branches].sort((a, b) => Number(typeMismatch(a)) - Number(typeMismatch(b)) || a.length - b.length)[0] ?? [];
          const nested = best.map((e) => ({ ...e, path: [...path, ...e.path] }));
          out.push(...explainZodIssues(root, nested, data));
        } else push(path, issue.message);
        break;
      case 'invalid_format':
        // A pattern check carries the schema's own wording ("must be a duration like 30s, ...").
        if (issue.format === 'regex') push(path, `${issue.message.replace(/\.$/, '')} (got ${describeValue(got, secret)}).`);
        else push(path, `must be a valid ${formatName(issue.format)} (got ${describeValue(got, secret)}).`);
        break;
      case 'not_multiple_of':
      default:
        push(path, issue.message.endsWith('.') ? issue.message : `${issue.message}.`);
    }
  }
  return out;
}

function formatName(format?: string): string {
  if (format === 'url') return 'URL such as https://api.openai.com/v1';
  return format ?? 'value';
}

function validTags(root: AnySchema, path: readonly PathSegment[], data: unknown): string[] {
  const tags: string[] = [];
  for (const parent of schemasAt(root, path.slice(0, -1), data)) {
    const d = defOf(parent);
    const last = path[path.length - 1];
    const s = d.type === 'object' && typeof last === 'string' ? d.shape?.[last] : d.type === 'array' ? d.element : undefined;
    if (!s) continue;
    for (const o of unwrap(s, undefined)) {
      const t = defOf(o).shape?.type;
      if (t) tags.push(...((defOf(t).values ?? []) as string[]));
    }
  }
  return tags.length ? tags : ['(see docs)'];
}

function article(expected?: string): string {
  if (!expected) return 'a value';
  if (expected === 'object') return 'a mapping';
  if (expected === 'array') return 'a list';
  if (expected === 'int') return 'a whole number';
  return /^[aeiou]/.test(expected) ? `an ${expected}` : `a ${expected}`;
}

/** The closest valid key by edit distance, if it is close enough to be a likely typo. */
export function suggest(key: string, valid: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestScore = Infinity;
  for (const v of valid) {
    const d = editDistance(key, v);
    if (d < bestScore) {
      bestScore = d;
      best = v;
    }
  }
  return best !== undefined && bestScore <= Math.max(2, Math.floor(key.length / 3)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j]!;
      prev[j] = Math.min(prev[j]! + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length]!;
}

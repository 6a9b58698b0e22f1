/**
 * The one loader behind `kt gateway run`, `kt policy lint` and `kt config reload`:
 * YAML (with positions) -> schema validation -> semantic checks -> compiled, frozen tables.
 * It never throws for a bad file: it returns every diagnostic it found.
 */
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { PolicyConfig, type PolicyConfigInput } from './schema.ts';
import { fromZodIssues, locate, formatPath, type Diagnostic, type PathSegment } from './diagnostics.ts';
import { normalizePolicies } from './policies.ts';
import { checkSemantics } from './semantics.ts';
import { checkIdentity } from './semantics-identity.ts';
import { compileConfig } from './compile.ts';
import { compileNamed, type CelIssue } from './compile-limits.ts';
import type { CompiledConfig } from './types.ts';

export interface LoadResult {
  file: string;
  diagnostics: Diagnostic[];
  /** Present when there is no error (warnings allowed). */
  config?: CompiledConfig;
  /** The validated input, for summaries. */
  input?: PolicyConfigInput;
}

export interface LoadOptions {
  env?: NodeJS.ProcessEnv;
}

export async function loadConfigFile(file: string, options: LoadOptions = {}): Promise<LoadResult> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'file not found' : code === 'EACCES' ? 'permission denied' : (err as Error).message;
    return { file, diagnostics: [{ severity: 'error', path: '', message: `cannot read config: ${why}` }] };
  }
  return loadConfigText(text, file, options);
}

export function loadConfigText(text: string, file = '<inline>', options: LoadOptions = {}): LoadResult {
  const env = options.env ?? process.env;
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  const diagnostics: Diagnostic[] = [];
  for (const e of doc.errors) {
    const pos = e.linePos?.[0] ?? lines.linePos(e.pos[0]);
    const message = e.code === 'DUPLICATE_KEY' ? 'duplicate key in the same mapping' : e.message.split('\n')[0]!;
    diagnostics.push({ severity: 'error', path: '', line: pos?.line, column: pos?.col, message: `YAML: ${message}` });
  }
  if (diagnostics.length) return { file, diagnostics };
  const data: unknown = doc.toJS() ?? {};
  if (typeof data !== 'object' || Array.isArray(data)) {
    return { file, diagnostics: [{ severity: 'error', path: '', line: 1, message: 'the config must be a YAML mapping (key: value pairs)' }] };
  }
  const parsed = PolicyConfig.safeParse(data);
  if (!parsed.success) {
    diagnostics.push(...fromZodIssues(PolicyConfig, parsed.error.issues as never, data, doc, lines));
    return { file, diagnostics: dedupe(diagnostics) };
  }
  const at = (path: PathSegment[], preferKey = false) => ({ path: formatPath(path), ...locate(doc, lines, path, preferKey) });
  const input = parsed.data;
  resolvePaths(input, file);
  const policies = normalizePolicies(input, at, diagnostics);
  diagnostics.push(...checkSemantics(input, { at, env }));
  diagnostics.push(...checkIdentity(input, { at, env }));
  const celIssues: CelIssue[] = [];
  const named = [...compileNamed('request_limits', input.request_limits, celIssues), ...compileNamed('token_limits', input.token_limits, celIssues)];
  for (const i of celIssues) diagnostics.push({ severity: 'error', ...at(i.path), message: i.message });
  if (diagnostics.some((d) => d.severity === 'error')) return { file, diagnostics: dedupe(diagnostics), input };
  let config;
  try {
    config = compileConfig(input, policies, named, { env, file });
  } catch (err) {
    diagnostics.push({ severity: 'error', path: '', message: `cannot compile config: ${(err as Error).message}` });
    return { file, diagnostics: dedupe(diagnostics), input };
  }
  return { file, diagnostics: dedupe(diagnostics), config, input };
}

/** File paths in the config are relative to the config file's directory. */
function resolvePaths(input: PolicyConfigInput, file: string): void {
  if (file === '<inline>') return;
  const base = dirname(resolve(file));
  const tls = input.server?.tls;
  if (tls) {
    tls.cert_file = resolve(base, tls.cert_file);
    tls.key_file = resolve(base, tls.key_file);
  }
  const jwt = input.identity?.jwt;
  if (jwt?.jwks_file) jwt.jwks_file = resolve(base, jwt.jwks_file);
}

function dedupe(ds: Diagnostic[]): Diagnostic[] {
  const seen = new Set<string>();
  return ds
    .filter((d) => {
      const k = `${d.severity}|${d.path}|${d.message}`;
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    })
    .sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
}

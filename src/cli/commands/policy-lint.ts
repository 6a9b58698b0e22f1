/** `kt policy lint --file F`: exit 0 with a summary, or non-zero with every problem. */
import { formatDiagnostic } from '../../config/diagnostics.ts';
import { loadConfigFile } from '../../config/load.ts';

export async function policyLint(file: string, format: 'text' | 'json', out: NodeJS.WritableStream): Promise<number> {
  const r = await loadConfigFile(file);
  const errors = r.diagnostics.filter((d) => d.severity === 'error');
  const warnings = r.diagnostics.filter((d) => d.severity === 'warning');
  const c = r.config;
  if (format === 'json') {
    out.write(
      `${JSON.stringify(
        {
          valid: !errors.length,
          file,
          diagnostics: r.diagnostics,
          summary: c && {
            providers: c.targets.map((t) => t.id),
            consumer_groups: c.groups.map((g) => g.name),
            policies: c.globalPolicies.map((p) => p.name),
          },
        },
        null,
        2,
      )}\n`,
    );
    return errors.length ? 1 : 0;
  }
  if (errors.length || !c) {
    out.write(`✗ Configuration is invalid: ${errors.length} error(s)${warnings.length ? `, ${warnings.length} warning(s)` : ''}\n`);
    for (const d of r.diagnostics) out.write(`  ${formatDiagnostic(file, d)}\n`);
    return 1;
  }
  out.write('✓ Configuration is valid\n');
  out.write(`Providers: ${c.targets.length} (${c.targets.map((t) => t.id).join(', ')})\n`);
  out.write(`Consumer groups: ${c.groups.length}${c.groups.length ? ` (${c.groups.map((g) => g.name).join(', ')})` : ''}\n`);
  const groupPolicies = c.groups.flatMap((g) => g.inputPolicies.map((p) => `${p.name}@${g.name}`));
  const all = [...c.globalPolicies.map((p) => p.name), ...groupPolicies];
  out.write(`Policies: ${all.length}${all.length ? ` (${all.join(', ')})` : ''}\n`);
  const limits = c.groups.reduce((n, g) => n + g.limits.length, 0) + (c.defaultGroup?.limits.length ?? 0);
  out.write(`Limits: ${limits}\n`);
  for (const w of warnings) out.write(`  ${formatDiagnostic(file, w)}\n`);
  return 0;
}

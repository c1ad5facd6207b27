/**
 * Readable output of a conformance run: one table per SMI API with a row per assertion and the
 * flavor it ran on (a scenario's rows on each flavor next to each other), the failures explained
 * (expected, got, and what the proxies involved had), the scenarios a flavor does not run and why,
 * convergence per flavor, and the closing `N passed, N failed` line over everything that ran. The
 * JSON report is the {@link Report} itself.
 */

import type { AssertionResult, Report, ScenarioResult } from './runner';
import { APIS } from './schema';

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : pad(c, widths[i]!)))
      .join('  ')
      .trimEnd(),
  );
}

function result(a: AssertionResult): string {
  if (!a.passed) return 'FAIL';
  return a.kind === 'config' ? 'pass (config)' : 'pass';
}

function converged(a: AssertionResult): string {
  return a.convergedMs === undefined ? '' : `${a.convergedMs} ms`;
}

/** A short listing of one proxy's resources: type, name, client status (contents are in the JSON). */
function configSummary(config: NonNullable<AssertionResult['config']>): string[] {
  const lines: string[] = [];
  for (const [node, resources] of Object.entries(config)) {
    lines.push(`      proxy ${node}: ${resources.length} resources`);
    for (const r of resources) {
      const type = r.typeUrl.slice(r.typeUrl.lastIndexOf('.') + 1);
      lines.push(`        ${type} ${r.name} ${r.clientStatus}${r.error ? ` (${r.error})` : ''}`);
    }
  }
  if (lines.length === 0) lines.push('      (no proxy connected with these node ids)');
  return lines;
}

/** Convergence figures of some scenario results, or undefined when none converged after a change. */
function convergence(results: readonly ScenarioResult[]): string | undefined {
  const conv = results
    .flatMap((s) => s.assertions)
    .flatMap((a) => (a.convergedMs === undefined ? [] : [a.convergedMs]));
  if (conv.length === 0) return undefined;
  const sorted = [...conv].sort((a, b) => a - b);
  const p = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  return `median ${p(0.5)} ms, p90 ${p(0.9)} ms, max ${sorted[sorted.length - 1]} ms`;
}

/** Renders the tables, the failures and the summary line. */
export function formatReport(report: Report, jsonPath?: string): string {
  const out: string[] = [];
  for (const api of APIS) {
    const scenarios = report.scenarios.filter((s) => s.api === api);
    if (scenarios.length === 0) continue;
    const title = `${api}.smi-spec.io`;
    out.push(title, '='.repeat(title.length));
    const rows: string[][] = [['scenario', 'flavor', 'assertion', 'result', 'converged']];
    // A scenario's rows on every flavor together, scenarios in the suite's order.
    const ids = [...new Set(scenarios.map((s) => s.id))];
    for (const id of ids) {
      for (const s of scenarios.filter((x) => x.id === id)) {
        if (s.skipped !== undefined) {
          rows.push([s.id, s.flavor, `not run: ${s.skipped}`, 'skipped', '']);
          continue;
        }
        const known = s.knownIssue ? ' (known issue)' : '';
        for (const a of s.assertions)
          rows.push([s.id, s.flavor, a.name, a.passed ? result(a) : `FAIL${known}`, converged(a)]);
        if (s.error) rows.push([s.id, s.flavor, `error: ${s.error.split('\n')[0]}`, 'FAIL', '']);
      }
    }
    out.push(...table(rows), '');
  }
  const failures = report.scenarios.flatMap((s) => [
    ...s.assertions.filter((a) => !a.passed).map((a) => ({ s, a })),
  ]);
  if (failures.length > 0 || report.scenarios.some((s) => s.error)) {
    out.push('Failures', '--------');
    for (const { s, a } of failures) {
      out.push(`  ${s.id} (${s.flavor}): ${a.name}`, `    expected: ${a.expected}`, `    got:      ${a.got}`);
      if (a.config) {
        out.push(`    config the proxies had (CSDS)${jsonPath ? `, full resources in ${jsonPath}` : ''}:`);
        out.push(...configSummary(a.config));
      }
    }
    for (const s of report.scenarios.filter((x) => x.error)) out.push(`  ${s.id} (${s.flavor}): ${s.error}`);
    out.push('');
  }
  const known = report.scenarios.filter((s) => s.knownIssue && !s.passed && s.skipped === undefined);
  if (known.length > 0) {
    out.push('Known issues (failing as expected)', '----------------------------------');
    for (const s of known) out.push(`  ${s.id} (${s.flavor}): ${s.knownIssue}`);
    out.push('');
  }
  const skipped = report.scenarios.filter((s) => s.skipped !== undefined);
  if (skipped.length > 0) {
    out.push('Not run on a flavor', '-------------------');
    for (const s of skipped) out.push(`  ${s.id} (${s.flavor}): ${s.skipped}`);
    out.push('');
  }
  for (const f of report.flavors) {
    const results = report.scenarios.filter((s) => s.flavor === f.flavor);
    const ran = results.filter((s) => s.skipped === undefined).length;
    const conv = convergence(results);
    out.push(
      `${f.flavor}: ${f.passed} passed, ${f.failed} failed; ` +
        `${conv ? `convergence ${conv}; ` : ''}` +
        `${ran} scenarios in ${(f.durationMs / 1000).toFixed(1)} s (driver ${report.driver})`,
    );
  }
  out.push(`${report.passed} passed, ${report.failed} failed`);
  return out.join('\n');
}

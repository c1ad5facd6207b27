/**
 * What a whole-suite run must show on any flavor: every scenario passes except those declaring a
 * known Weft bug (which must still fail, so a fix shows up and the declaration gets removed) and
 * those the scenario says do not apply to the flavor; the coverage the suite promises is there;
 * the closing line and the JSON report hold.
 */
import assert from 'node:assert/strict';
import { formatReport } from '../../src/conformance/report';
import type { Report } from '../../src/conformance/runner';

/** Scenarios the suite must have, by id. */
export const REQUIRED_SCENARIOS = [
  'access/default-deny',
  'access/tcproute-only',
  'access/delete-restores-deny',
  'access/identitybinding',
  'specs/httproutegroup-path',
  'specs/httproutegroup-methods',
  'specs/httproutegroup-headers',
  'specs/tcproute-ports',
  'specs/udproute',
  'split/two-backends',
  'split/exact',
  'split/favor',
  'split/ab-matches',
  'split/three-way',
  'split/weight-change',
  'split/versions',
] as const;

/** Checks a whole-suite report; returns the formatted report's last lines for the diagnostic. */
export function checkSuiteReport(report: Report): string {
  const text = formatReport(report);
  for (const s of report.scenarios) {
    if (s.skipped !== undefined) {
      assert.equal(s.assertions.length, 0, `${s.id} (${s.flavor}) is skipped but ran assertions`);
    } else if (s.knownIssue) {
      assert.equal(
        s.passed,
        false,
        `${s.id} (${s.flavor}) passes now: remove its knownIssue (${s.knownIssue})`,
      );
    } else {
      const failed = s.assertions.filter((a) => !a.passed);
      assert.ok(
        s.passed,
        `${s.id} (${s.flavor}) failed${s.error ? `: ${s.error}` : ''}\n${failed
          .map(
            (a) =>
              `${a.name}: expected ${a.expected}; got ${a.got}\nconfig the proxies had: ${JSON.stringify(a.config ?? null).slice(0, 20_000)}`,
          )
          .join('\n')}`,
      );
    }
  }
  const ids = report.scenarios.map((s) => s.id);
  for (const id of REQUIRED_SCENARIOS) assert.ok(ids.includes(id), `scenario ${id} is missing`);
  assert.match(text, new RegExp(`\\n${report.passed} passed, ${report.failed} failed$`));
  // Every passing traffic assertion that followed a change reports how long it took.
  const timed = report.scenarios.flatMap((s) => s.assertions).filter((a) => a.convergedMs !== undefined);
  assert.ok(timed.length >= 20, `${timed.length} convergence times`);
  // The JSON report round-trips.
  assert.deepEqual(JSON.parse(JSON.stringify(report)).passed, report.passed);
  return text.split('\n').slice(-2).join(' | ');
}

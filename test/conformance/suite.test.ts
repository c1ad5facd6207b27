/**
 * The whole conformance suite on the local driver, once: one kube-apiserver, one Weft and one set
 * of proxyless gRPC workloads shared by every scenario (each scenario's objects are deleted before
 * the next starts). Every scenario must pass, except those that declare a known Weft bug, which
 * must still fail (so fixing the bug shows up here and the declaration gets removed). The cluster
 * driver's manifests are checked against the same API server with a server-side dry run.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LocalDriver } from '../../src/conformance/local-driver';
import { formatReport } from '../../src/conformance/report';
import { type Report, runSuite } from '../../src/conformance/runner';
import { loadSuite, type Suite } from '../../src/conformance/schema';
import { setLogLevel } from '../../src/log';

setLogLevel('silent');
const ROOT = join(__dirname, '..', '..', '..');

describe('SMI conformance suite (local driver)', () => {
  const driver = new LocalDriver({ net: 89 });
  let suite: Suite;
  let report: Report;

  before(async () => {
    suite = loadSuite(join(ROOT, 'e2e', 'scenarios'));
    await driver.start(suite.workloads);
  });
  after(async () => {
    await driver.stop();
  });

  it('runs every scenario: all pass except the declared known issues, which still fail', async (t) => {
    report = await runSuite(driver, suite);
    const text = formatReport(report);
    t.diagnostic(text.split('\n').slice(-2).join(' | '));
    for (const s of report.scenarios) {
      if (s.knownIssue) {
        assert.equal(s.passed, false, `${s.id} passes now: remove its knownIssue (${s.knownIssue})`);
      } else {
        const failed = s.assertions.filter((a) => !a.passed);
        assert.ok(
          s.passed,
          `${s.id} failed${s.error ? `: ${s.error}` : ''}\n${failed
            .map(
              (a) =>
                `${a.name}: expected ${a.expected}; got ${a.got}\nconfig the proxies had: ${JSON.stringify(a.config ?? null).slice(0, 20_000)}`,
            )
            .join('\n')}`,
        );
      }
    }
    // Coverage the issue asks for: each API has scenarios, and these exist by name.
    const ids = report.scenarios.map((s) => s.id);
    for (const id of [
      'access/default-deny',
      'access/tcproute-only',
      'access/delete-restores-deny',
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
    ]) {
      assert.ok(ids.includes(id), `scenario ${id} is missing`);
    }
    assert.match(text, new RegExp(`\\n${report.passed} passed, ${report.failed} failed$`));
    // Every passing traffic assertion that followed a change reports how long it took.
    const timed = report.scenarios.flatMap((s) => s.assertions).filter((a) => a.convergedMs !== undefined);
    assert.ok(timed.length >= 20, `${timed.length} convergence times`);
    // The JSON report round-trips.
    assert.deepEqual(JSON.parse(JSON.stringify(report)).passed, report.passed);
  });

  it('the cluster driver manifests pass a server-side dry run', async () => {
    const env = driver.kubeEnv;
    const text = readFileSync(join(ROOT, 'e2e', 'cluster', 'workloads.yaml'), 'utf8');
    // The namespace already exists here (the local workloads use the same one), so objects in it
    // are checked for real by admission and validation.
    const r = await env.kubectl(['apply', '--dry-run=server', '-f', '-'], text);
    assert.equal(r.code, 0, r.stderr);
    for (const kind of ['deployment.apps/echo-v1', 'deployment.apps/caller', 'service/echo-v3']) {
      assert.match(
        r.stdout,
        new RegExp(`${kind.replace('.', '\\.')} (created|unchanged|configured) \\(server dry run\\)`),
      );
    }
    // A broken manifest is refused by the same check (the dry run is not a rubber stamp).
    const broken = text.replace('containerPort: 8081', 'containerPort: "not-a-port"');
    assert.notEqual((await env.kubectl(['apply', '--dry-run=server', '-f', '-'], broken)).code, 0);
  });
});

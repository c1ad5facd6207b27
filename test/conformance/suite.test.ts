/**
 * The whole conformance suite on the local driver's gRPC flavor, once: one kube-apiserver, one
 * Weft and one set of proxyless gRPC workloads shared by every scenario (each scenario's objects
 * are deleted before the next starts). What the run must show is in `suite-check.ts` (the Envoy
 * flavor runs in `suite-envoy.test.ts`). The cluster driver's manifests are checked against the
 * same API server with a server-side dry run.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LocalDriver } from '../../src/conformance/local-driver';
import { type Report, runSuite } from '../../src/conformance/runner';
import { loadSuite, type Suite } from '../../src/conformance/schema';
import { setLogLevel } from '../../src/log';
import { checkSuiteReport } from './suite-check';

setLogLevel('silent');
const ROOT = join(__dirname, '..', '..', '..');

describe('SMI conformance suite (local driver)', () => {
  // Calls get 5 s, not 1.5 s: on a shared 2-core machine a slow call is load, not Weft.
  const driver = new LocalDriver({ net: 89, callDeadlineMs: 5000 });
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
    report = await runSuite(driver, suite, { withinFactor: 4 });
    assert.deepEqual(
      report.flavors.map((f) => f.flavor),
      ['grpc'],
    );
    t.diagnostic(checkSuiteReport(report));
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

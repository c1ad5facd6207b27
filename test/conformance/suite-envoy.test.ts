/**
 * The whole conformance suite on the Envoy flavor, once: the local Envoy driver's kube-apiserver,
 * Weft in Kubernetes mode with its CA, and the workloads' pods in network namespaces with Weft's
 * injected Envoy sidecars, shared by every scenario. The same checks as the gRPC flavor
 * (`suite-check.ts`). Needs root, the pod network's commands and Envoy; skipped saying what is
 * missing otherwise.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { envoyFlavorUnavailable, LocalEnvoyDriver } from '../../src/conformance/local-envoy-driver';
import { type Report, runSuite } from '../../src/conformance/runner';
import { loadSuite, type Suite } from '../../src/conformance/schema';
import { setLogLevel } from '../../src/log';
import { checkSuiteReport } from './suite-check';

setLogLevel('silent');
const ROOT = join(__dirname, '..', '..', '..');

describe('SMI conformance suite (local driver, Envoy sidecars)', { skip: envoyFlavorUnavailable() }, () => {
  // A network of its own, so a `weft conformance` run on the same machine is not disturbed.
  // Calls get 5 s, not 1.5 s: on a shared 2-core machine a slow call is load, not Weft.
  const driver = new LocalEnvoyDriver({ network: 'cft', subnet: '10.215.1.0/24', callDeadlineMs: 5000 });
  let suite: Suite;
  let report: Report;

  before(async () => {
    suite = loadSuite(join(ROOT, 'e2e', 'scenarios'));
    await driver.start(suite.workloads);
  });
  after(async () => {
    await driver.stop();
  });

  it('runs every scenario that applies to Envoy: all pass except the declared known issues', async (t) => {
    report = await runSuite(driver, suite, { withinFactor: 4 });
    assert.deepEqual(
      report.flavors.map((f) => f.flavor),
      ['envoy'],
    );
    assert.ok(report.scenarios.every((s) => s.flavor === 'envoy'));
    t.diagnostic(checkSuiteReport(report));
  });

  it('every workload pod runs an Envoy sidecar that Weft knows by its certificate', async () => {
    // The callers' and servers' sidecars each hold their listeners, ACKed (CSDS over mTLS).
    const ids = [...suite.workloads.servers, ...suite.workloads.clients].map(
      (p) => `${suite.workloads.namespace}/${p.name}`,
    );
    const configs = await driver.proxyConfig(ids);
    for (const id of ids) {
      const listeners = (configs[id] ?? []).filter((r) =>
        r.typeUrl.endsWith('envoy.config.listener.v3.Listener'),
      );
      assert.deepEqual(
        listeners.map((l) => `${l.name} ${l.clientStatus}`).sort(),
        ['inbound ACKED', 'outbound ACKED'],
        `${id}: ${JSON.stringify(configs[id]?.map((r) => r.name))}`,
      );
    }
  });
});

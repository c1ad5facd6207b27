/**
 * The runner's judgement without a cluster: a fake driver answers calls as told, so a
 * deliberately wrong expectation must fail with what was expected, what came back and the
 * proxies' config; scenario files with mistakes are refused naming the file and the field.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type {
  CallOutcome,
  CallSpec,
  Driver,
  Flavor,
  ProxyConfigs,
  ReportedCondition,
} from '../../src/conformance/driver';
import { formatReport } from '../../src/conformance/report';
import { judge, mergeReports, runSuite } from '../../src/conformance/runner';
import { type Expectation, loadSuite, ScenarioError } from '../../src/conformance/schema';

const WORKLOADS = `namespace: t
ports: [{ name: grpc, port: 14001 }]
servers: [{ name: echo-v1, serviceAccount: echo, labels: { app: echo } }]
clients: [{ name: caller, serviceAccount: caller }]
services: [{ name: echo, selector: { app: echo } }]
`;

/** Answers every call from `echo-v1` once anything is applied, and fails them before. */
class FakeDriver implements Driver {
  readonly name = 'fake';
  constructor(readonly flavor: Flavor = 'grpc') {}
  applied = 0;
  closed: string[] = [];
  configAsked: string[][] = [];
  async start(): Promise<void> {}
  async apply(): Promise<void> {
    this.applied++;
  }
  async delete(): Promise<void> {
    this.applied = 0;
  }
  async call(spec: CallSpec, n: number): Promise<CallOutcome[]> {
    return Array.from({ length: n }, () =>
      this.applied > 0 && spec.method !== 'Put'
        ? { ok: true as const, backend: 'echo-v1' }
        : { ok: false as const, code: 'PERMISSION_DENIED', message: 'RBAC' },
    );
  }
  closeChannel(channel: string): void {
    this.closed.push(channel);
  }
  async proxyConfig(ids: readonly string[]): Promise<ProxyConfigs> {
    this.configAsked.push([...ids]);
    return Object.fromEntries(
      ids.map((id) => [
        id,
        [
          {
            typeUrl: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
            name: 'route|14001|t/echo',
            version: 'v1',
            clientStatus: 'ACKED',
            config: { name: 'route|14001|t/echo' },
          },
        ],
      ]),
    );
  }
  async conditions(): Promise<ReportedCondition[]> {
    return [];
  }
  async stop(): Promise<void> {}
}

const dirs: string[] = [];
function suiteDir(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'weft-conformance-'));
  dirs.push(root);
  writeFileSync(join(root, 'workloads.yaml'), WORKLOADS);
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(root, name.split('/')[0]!), { recursive: true });
    writeFileSync(join(root, name), text);
  }
  return root;
}
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const TT = `apiVersion: access.smi-spec.io/v1alpha3
        kind: TrafficTarget
        metadata: { name: tt }
        spec: { destination: { kind: ServiceAccount, name: echo }, sources: [{ kind: ServiceAccount, name: caller }] }`;

describe('conformance runner', () => {
  it("a deliberately wrong expectation fails with expected, got and the proxies' config", async () => {
    const root = suiteDir({
      'split/wrong.yaml': `name: wrong on purpose
description: expects echo-v2 although the fake only ever answers from echo-v1
steps:
  - apply:
      - ${TT}
  - expect: { from: caller, to: echo, calls: 10, within: 300ms, exact: { echo-v2: 10 } }
  - expect: { from: caller, to: echo, calls: 4, allowed: true }
`,
    });
    const suite = loadSuite(root);
    const driver = new FakeDriver();
    const report = await runSuite(driver, suite, { settleMs: 200 });
    assert.equal(report.passed, 1);
    assert.equal(report.failed, 1);
    const [wrong, right] = report.scenarios[0]!.assertions;
    assert.equal(wrong!.passed, false);
    assert.equal(wrong!.expected, 'exactly echo-v2: 10 of 10, nothing else, no failures, within 300 ms');
    assert.match(
      wrong!.got,
      /^echo-v1: 10 \(100\.0%\), failed: 0 \(still so \d+ ms after the last change\)$/,
    );
    // The caller and the pods behind the service, by node id.
    assert.deepEqual(driver.configAsked, [['t/caller', 't/echo-v1']]);
    assert.equal(wrong!.config!['t/caller']![0]!.name, 'route|14001|t/echo');
    assert.equal(right!.passed, true);
    assert.ok(right!.convergedMs === undefined, 'only the first check after a change reports convergence');
    // Each expectation had its own channel, and each was closed.
    assert.ok(driver.closed.filter((c) => c.startsWith('expect-')).length >= 2);
    const text = formatReport(report, 'report.json');
    assert.match(text, /split\.smi-spec\.io/);
    assert.match(text, /expected: exactly echo-v2: 10 of 10/);
    assert.match(text, /got: {6}echo-v1: 10/);
    assert.match(text, /RouteConfiguration route\|14001\|t\/echo ACKED/);
    assert.match(text, /full resources in report\.json/);
    assert.ok(text.endsWith('1 passed, 1 failed'), text);
    // The cleanup deleted what the scenario applied, and the runner waited for deny by default.
    assert.equal(driver.applied, 0);
  });

  it('a denial that never comes fails the scenario, and one that does passes', async () => {
    const root = suiteDir({
      'access/deny.yaml': `name: deny
description: Put is refused by the fake, Get is not
steps:
  - apply:
      - ${TT}
  - expect: { from: caller, to: echo, method: Put, calls: 3, denied: PERMISSION_DENIED }
  - expect: { from: caller, to: echo, method: Get, calls: 3, within: 200ms, denied: true }
`,
    });
    const report = await runSuite(new FakeDriver(), loadSuite(root), { settleMs: 200 });
    const [put, get] = report.scenarios[0]!.assertions;
    assert.equal(put!.passed, true);
    assert.equal(get!.passed, false);
    assert.match(get!.got, /^echo-v1: 3 \(100\.0%\), failed: 0/);
    assert.equal(report.scenarios[0]!.passed, false);
  });

  it('runs on each flavor: a scenario that does not apply to one says why, and the counts add up', async () => {
    const root = suiteDir({
      'access/allow.yaml': `name: allow
description: Get is allowed once the target exists
steps:
  - apply:
      - ${TT}
  - expect: { from: caller, to: echo, calls: 2, allowed: true }
`,
      'specs/udp.yaml': `name: udp
description: not for sidecars
skip: { envoy: "the sidecar does not carry UDP" }
steps:
  - expect: { from: caller, to: echo, calls: 2, denied: true }
`,
    });
    const suite = loadSuite(root);
    const grpc = await runSuite(new FakeDriver('grpc'), suite, { settleMs: 200 });
    const envoyDriver = new FakeDriver('envoy');
    const envoy = await runSuite(envoyDriver, suite, { settleMs: 200 });
    const skipped = envoy.scenarios.find((s) => s.id === 'specs/udp')!;
    assert.equal(skipped.skipped, 'the sidecar does not carry UDP');
    assert.deepEqual(skipped.assertions, []);
    const report = mergeReports([grpc, envoy]);
    assert.deepEqual(
      report.flavors.map((f) => [f.flavor, f.passed, f.failed]),
      [
        ['grpc', 2, 0],
        ['envoy', 1, 0],
      ],
    );
    assert.equal(report.passed, 3);
    const text = formatReport(report);
    assert.match(text, /access\/allow +grpc +caller → echo Get: allowed +pass/);
    assert.match(text, /access\/allow +envoy +caller → echo Get: allowed +pass/);
    assert.match(text, /specs\/udp +envoy +not run: the sidecar does not carry UDP +skipped/);
    assert.match(text, /\n {2}specs\/udp \(envoy\): the sidecar does not carry UDP\n/);
    assert.match(text, /\nenvoy: 1 passed, 0 failed;/);
    assert.ok(text.endsWith('\n3 passed, 0 failed'), text);
  });

  it('judges distributions by share and tolerance, and counts anything unexpected as a failure', () => {
    const e = (d: Record<string, { share: number; tolerance: number }>): Expectation => ({
      from: 'caller',
      to: 'echo',
      method: 'Get',
      headers: {},
      calls: 100,
      within: 5000,
      distribution: d,
    });
    const calls = (v1: number, v2: number, failed = 0): CallOutcome[] => [
      ...Array.from({ length: v1 }, () => ({ ok: true as const, backend: 'echo-v1' })),
      ...Array.from({ length: v2 }, () => ({ ok: true as const, backend: 'echo-v2' })),
      ...Array.from({ length: failed }, () => ({ ok: false as const, code: 'UNAVAILABLE', message: '' })),
    ];
    const split = e({ 'echo-v1': { share: 75, tolerance: 10 }, 'echo-v2': { share: 25, tolerance: 10 } });
    assert.equal(judge(split, calls(70, 30)).passed, true);
    assert.equal(judge(split, calls(30, 70)).passed, false, '25/75 must not pass for 75/25');
    assert.equal(judge(split, calls(74, 25, 1)).passed, false, 'a failed call fails a distribution');
    assert.equal(judge(e({ 'echo-v1': { share: 100, tolerance: 5 } }), calls(97, 3)).passed, false);
  });

  it('refuses invalid scenarios naming the file and the field', () => {
    const root = suiteDir({
      'split/bad.yaml': `name: bad
description: two outcomes, a bad share and counts that do not add up
steps:
  - expect: { from: caller, to: echo, allowed: true, denied: true }
  - expect: { from: caller, to: echo, distribution: { echo-v1: "about half" } }
  - expect: { from: caller, to: echo, calls: 10, exact: { echo-v1: 9 } }
  - expect: { from: caller, to: echo, within: soon, allowed: true }
`,
    });
    assert.throws(
      () => loadSuite(root),
      (err: Error) => {
        assert.ok(err instanceof ScenarioError);
        const lines = err.message.split('\n');
        assert.ok(
          lines.includes(
            'split/bad.yaml: steps.0.expect: needs exactly one outcome of allowed, denied, distribution, exact (got allowed, denied)',
          ),
          err.message,
        );
        assert.match(err.message, /split\/bad\.yaml: steps\.1\.expect\.distribution\.echo-v1: /);
        assert.ok(
          lines.includes('split/bad.yaml: steps.2.expect.exact: counts add up to 9 but calls is 10'),
          err.message,
        );
        assert.match(
          err.message,
          /split\/bad\.yaml: steps\.3\.expect\.within: must be a duration such as 5s or 500ms/,
        );
        return true;
      },
    );
  });
});

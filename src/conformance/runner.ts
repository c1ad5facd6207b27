/**
 * Runs conformance scenarios on a {@link Driver} and judges every assertion. Each expectation is
 * retried until it holds or its `within` deadline passes, counted from the last change a step
 * made, and the time it took to hold is reported. A failure records what was expected, what came
 * back, and the config of the proxies involved at that moment (from CSDS).
 *
 * Between scenarios the runner deletes what the scenario applied and waits until the first client
 * is denied again, so no scenario starts from another one's policy.
 */
import type { CallOutcome, CallSpec, Driver, Flavor, ProxyConfigs, ReportedCondition } from './driver';
import type {
  Api,
  ConditionsExpectation,
  Expectation,
  KubeManifest,
  LoadExpectation,
  Scenario,
  Suite,
  Workloads,
} from './schema';

/** How an assertion was checked: real calls, or Weft's reported config (never traffic). */
export type AssertionKind = 'traffic' | 'config';

/** One judged assertion. */
export interface AssertionResult {
  name: string;
  kind: AssertionKind;
  passed: boolean;
  expected: string;
  got: string;
  /** How long after the last change the expectation held (ms), when it did. */
  convergedMs?: number;
  /** The deadline it had (ms). */
  withinMs?: number;
  /** On failure: what each proxy involved had, from CSDS, keyed by node id. */
  config?: ProxyConfigs;
}

/** One scenario's results on one flavor. */
export interface ScenarioResult {
  id: string;
  api: Api;
  /** The data plane it ran on. */
  flavor: Flavor;
  /** Why it was not run on this flavor (the scenario's `skip`); it then has no assertions. */
  skipped?: string;
  name: string;
  description: string;
  /** The known bug the scenario exposes, when it declares one. */
  knownIssue?: string;
  file: string;
  passed: boolean;
  durationMs: number;
  assertions: AssertionResult[];
  /** A step that could not run (kubectl refused an object, say). */
  error?: string;
}

/** What one flavor of a run came to. */
export interface FlavorSummary {
  flavor: Flavor;
  durationMs: number;
  passed: number;
  failed: number;
}

/** The whole run: one flavor, or several merged by {@link mergeReports}. */
export interface Report {
  driver: string;
  /** The flavors that ran, each with its own figures. */
  flavors: FlavorSummary[];
  startedAt: string;
  durationMs: number;
  passed: number;
  failed: number;
  scenarios: ScenarioResult[];
}

/** Verdict of one batch of calls against an expectation. */
export interface Verdict {
  passed: boolean;
  expected: string;
  got: string;
}

/** Tallies outcomes: calls per backend, failures per gRPC code. */
export function tally(outcomes: readonly CallOutcome[]): {
  counts: Record<string, number>;
  failures: Record<string, number>;
  failed: number;
} {
  const counts: Record<string, number> = {};
  const failures: Record<string, number> = {};
  let failed = 0;
  for (const o of outcomes) {
    if (o.ok) counts[o.backend] = (counts[o.backend] ?? 0) + 1;
    else {
      failed++;
      failures[o.code] = (failures[o.code] ?? 0) + 1;
    }
  }
  return { counts, failures, failed };
}

function describeTally(outcomes: readonly CallOutcome[]): string {
  const { counts, failures, failed } = tally(outcomes);
  const n = outcomes.length;
  const parts = Object.keys(counts)
    .sort()
    .map((b) => `${b}: ${counts[b]} (${((100 * counts[b]!) / n).toFixed(1)}%)`);
  const codes = Object.keys(failures)
    .sort()
    .map((c) => `${c}×${failures[c]}`)
    .join(', ');
  parts.push(failed === 0 ? 'failed: 0' : `failed: ${failed} (${codes})`);
  return parts.join(', ');
}

/** The outcome an expectation asks for, in words. */
export function describeExpected(e: Expectation): string {
  if (e.allowed) return `all ${e.calls} calls succeed`;
  if (e.denied !== undefined) {
    return `all ${e.calls} calls fail${e.denied === true ? '' : ` with ${e.denied}`}`;
  }
  if (e.exact) {
    return `exactly ${Object.entries(e.exact)
      .map(([b, n]) => `${b}: ${n}`)
      .join(', ')} of ${e.calls}, nothing else, no failures`;
  }
  const d = e.distribution ?? {};
  return `${Object.entries(d)
    .map(([b, s]) => `${b}: ${s.share}%±${s.tolerance}`)
    .join(', ')} of ${e.calls}, nothing else, no failures`;
}

/** Judges one batch of call outcomes against an expectation (pure). */
export function judge(e: Expectation, outcomes: readonly CallOutcome[]): Verdict {
  const { counts, failed } = tally(outcomes);
  const n = outcomes.length;
  const expected = describeExpected(e);
  const got = describeTally(outcomes);
  let passed: boolean;
  if (e.allowed) passed = failed === 0;
  else if (e.denied !== undefined) {
    passed = outcomes.every((o) => !o.ok && (e.denied === true || o.code === e.denied));
  } else if (e.exact) {
    const want = e.exact;
    const backends = new Set([...Object.keys(counts), ...Object.keys(want)]);
    passed = failed === 0 && [...backends].every((b) => (counts[b] ?? 0) === (want[b] ?? 0));
  } else {
    const want = e.distribution ?? {};
    const unexpected = Object.keys(counts).filter((b) => want[b] === undefined);
    passed =
      failed === 0 &&
      unexpected.length === 0 &&
      Object.entries(want).every(([b, s]) => Math.abs((100 * (counts[b] ?? 0)) / n - s.share) <= s.tolerance);
  }
  return { passed, expected, got };
}

/** Parses `service[:port]`; without a port, the first port of the workloads file. */
export function parseTarget(to: string, w: Workloads): { service: string; port: number } {
  const [service, port] = to.split(':') as [string, string | undefined];
  return { service, port: port ? Number(port) : w.ports[0]!.port };
}

function defaultName(e: Expectation): string {
  const headers = Object.entries(e.headers)
    .map(([k, v]) => ` ${k}=${v}`)
    .join('');
  let outcome: string;
  if (e.allowed) outcome = 'allowed';
  else if (e.denied !== undefined) outcome = e.denied === true ? 'denied' : `denied ${e.denied}`;
  else if (e.exact) outcome = `exact ${Object.values(e.exact).join('/')}`;
  else
    outcome = `${Object.values(e.distribution ?? {})
      .map((s) => s.share)
      .join('/')}`;
  return `${e.from} → ${e.to} ${e.method}${headers}: ${outcome}`;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Options of {@link runSuite}. */
export interface RunOptions {
  /** Called after each scenario (for progress output). */
  onScenario?: (r: ScenarioResult) => void;
  /** Longest wait for default deny between scenarios (ms, default 10 s). */
  settleMs?: number;
  /**
   * Multiplies every expectation's `within` deadline (default 1). The test tier runs the suite on
   * shared 2-core machines beside other suites, where a deadline is about load, not about Weft:
   * it scales them up so a slow machine does not fail a correct mesh. Convergence is reported as
   * measured either way.
   */
  withinFactor?: number;
}

/** Background traffic of a `load` step. */
interface RunningLoad {
  stop(): Promise<CallOutcome[]>;
}

function startLoad(driver: Driver, spec: CallSpec): RunningLoad {
  const outcomes: CallOutcome[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      outcomes.push(...(await driver.call(spec, 4)));
      await sleep(5);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return outcomes;
    },
  };
}

/** The node ids whose config explains a call from `from` to `service`: the caller and the servers. */
function involvedProxies(w: Workloads, from: string, service: string): string[] {
  const svc = w.services.find((s) => s.name === service);
  const servers = svc
    ? w.servers.filter((s) => Object.entries(svc.selector).every(([k, v]) => s.labels[k] === v))
    : [];
  return [from, ...servers.map((s) => s.name)].map((n) => `${w.namespace}/${n}`);
}

async function configOf(driver: Driver, ids: string[]): Promise<ProxyConfigs> {
  try {
    return await driver.proxyConfig(ids);
  } catch (err) {
    return { error: [{ typeUrl: '', name: 'CSDS', version: '', clientStatus: (err as Error).message }] };
  }
}

/** Deadline of a call expected to be denied: a stale allowed config would answer in milliseconds. */
const DENIED_DEADLINE_MS = 1000;

let channels = 0;

/**
 * Checks one expectation until it holds or `within` ms pass from `since`. Each expectation opens
 * its own client channel, as a newly started caller would (see the README on grpc-js-xds keeping a
 * deleted Listener cached); `load` steps keep one channel across changes.
 */
async function runExpect(
  driver: Driver,
  w: Workloads,
  e: Expectation,
  since: number,
  afterChange: boolean,
): Promise<AssertionResult> {
  const { service, port } = parseTarget(e.to, w);
  const name = e.name ?? defaultName(e);
  if (!w.clients.some((c) => c.name === e.from)) {
    return {
      name,
      kind: 'traffic',
      passed: false,
      expected: describeExpected(e),
      got: `no client workload named ${e.from} in workloads.yaml`,
    };
  }
  const spec: CallSpec = {
    from: e.from,
    service,
    port,
    method: e.method,
    headers: e.headers,
    channel: `expect-${++channels}`,
    ...(e.denied !== undefined ? { deadlineMs: DENIED_DEADLINE_MS } : {}),
  };
  try {
    for (;;) {
      const verdict = judge(e, await driver.call(spec, e.calls));
      const elapsed = Date.now() - since;
      if (verdict.passed && elapsed <= e.within) {
        return {
          name,
          kind: 'traffic',
          ...verdict,
          ...(afterChange ? { convergedMs: elapsed } : {}),
          withinMs: e.within,
        };
      }
      if (elapsed > e.within) {
        return {
          name,
          kind: 'traffic',
          passed: false,
          expected: `${verdict.expected}, within ${e.within} ms`,
          got: verdict.passed
            ? `held only after ${elapsed} ms`
            : `${verdict.got} (still so ${elapsed} ms after the last change)`,
          withinMs: e.within,
          config: await configOf(driver, involvedProxies(w, e.from, service)),
        };
      }
      await sleep(100);
    }
  } finally {
    driver.closeChannel(spec.channel);
  }
}

function conditionObject(o: string, ns: string): string {
  const parts = o.split('/');
  return parts.length === 2 ? `${parts[0]}/${ns}/${parts[1]}` : o;
}

async function runConditions(
  driver: Driver,
  w: Workloads,
  e: ConditionsExpectation,
  since: number,
  afterChange: boolean,
): Promise<AssertionResult> {
  const object = conditionObject(e.object, w.namespace);
  const expected =
    e.expect === 'none'
      ? `${object}: no Error condition`
      : `${object}: a condition with reason ${e.expect.reason}`;
  const name = e.name ?? `config: ${expected}`;
  let last: ReportedCondition[] = [];
  for (;;) {
    last = (await driver.conditions()).filter((c) => c.object === object);
    const expectation = e.expect;
    const held =
      expectation === 'none'
        ? !last.some((c) => c.severity === 'Error' && c.status === 'False')
        : last.some((c) => c.reason === expectation.reason);
    const elapsed = Date.now() - since;
    const got = last.length
      ? last.map((c) => `${c.type}=${c.status} ${c.reason}: ${c.message}`).join('; ')
      : 'no conditions';
    if (held) {
      return {
        name,
        kind: 'config',
        passed: true,
        expected,
        got,
        ...(afterChange ? { convergedMs: elapsed } : {}),
        withinMs: e.within,
      };
    }
    if (elapsed > e.within) return { name, kind: 'config', passed: false, expected, got, withinMs: e.within };
    await sleep(100);
  }
}

function judgeLoad(name: string, e: LoadExpectation, outcomes: CallOutcome[]): AssertionResult {
  const { counts, failed } = tally(outcomes);
  const missing = e.reached.filter((b) => (counts[b] ?? 0) === 0);
  return {
    name: `${name}: at most ${e.failed} failed${e.reached.length ? `, reached ${e.reached.join(', ')}` : ''}`,
    kind: 'traffic',
    passed: failed <= e.failed && missing.length === 0,
    expected: `at most ${e.failed} failed calls${e.reached.length ? `; each of ${e.reached.join(', ')} answered` : ''}`,
    got: `${outcomes.length} calls: ${describeTally(outcomes)}`,
  };
}

const key = (m: KubeManifest): string =>
  `${m.apiVersion.split('/')[0]}|${m.kind}|${m.metadata.namespace}|${m.metadata.name}`;

/** Runs one scenario; never throws (a step that fails is the scenario's error). */
export async function runScenario(
  driver: Driver,
  w: Workloads,
  s: Scenario,
  withinFactor = 1,
): Promise<ScenarioResult> {
  const flavor = driver.flavor ?? 'grpc';
  const skipped = s.skip?.[flavor];
  if (skipped !== undefined) {
    return {
      id: s.id,
      api: s.api,
      flavor,
      skipped,
      name: s.name,
      description: s.description,
      ...(s.knownIssue ? { knownIssue: s.knownIssue } : {}),
      file: s.file,
      passed: false,
      durationMs: 0,
      assertions: [],
    };
  }
  const started = Date.now();
  const assertions: AssertionResult[] = [];
  const applied = new Map<string, KubeManifest>();
  const loads = new Map<string, { spec: CallSpec; run: RunningLoad }>();
  let since = Date.now();
  // Convergence is reported by the first check after a change; later checks start from the
  // end of the previous one, so the deadline each has is its own.
  let afterChange = true;
  let error: string | undefined;
  try {
    for (const step of s.steps) {
      if ('apply' in step) {
        await driver.apply(step.apply);
        for (const m of step.apply) applied.set(key(m), m);
        since = Date.now();
        afterChange = true;
      } else if ('delete' in step) {
        await driver.delete(step.delete);
        for (const m of step.delete) applied.delete(key(m));
        since = Date.now();
        afterChange = true;
      } else if ('expect' in step) {
        const e = { ...step.expect, within: step.expect.within * withinFactor };
        assertions.push(await runExpect(driver, w, e, since, afterChange));
        since = Date.now();
        afterChange = false;
      } else if ('expectConditions' in step) {
        const e = { ...step.expectConditions, within: step.expectConditions.within * withinFactor };
        assertions.push(await runConditions(driver, w, e, since, afterChange));
        since = Date.now();
        afterChange = false;
      } else if ('load' in step) {
        const { service, port } = parseTarget(step.load.to, w);
        const spec: CallSpec = {
          from: step.load.from,
          service,
          port,
          method: step.load.method,
          headers: {},
          channel: `load-${++channels}`,
        };
        loads.set(step.load.name, { spec, run: startLoad(driver, spec) });
      } else {
        const l = loads.get(step.expectLoad.name);
        if (!l) throw new Error(`expectLoad ${step.expectLoad.name}: no load step started it`);
        loads.delete(step.expectLoad.name);
        assertions.push(judgeLoad(`load ${step.expectLoad.name}`, step.expectLoad, await l.run.stop()));
        driver.closeChannel(l.spec.channel);
      }
    }
  } catch (err) {
    error = (err as Error).message;
  } finally {
    for (const l of loads.values()) {
      await l.run.stop();
      driver.closeChannel(l.spec.channel);
    }
    if (applied.size > 0) {
      try {
        await driver.delete([...applied.values()].reverse());
      } catch (err) {
        error ??= `cleanup: ${(err as Error).message}`;
      }
    }
  }
  return {
    id: s.id,
    api: s.api,
    flavor,
    name: s.name,
    description: s.description,
    ...(s.knownIssue ? { knownIssue: s.knownIssue } : {}),
    file: s.file,
    passed: error === undefined && assertions.length > 0 && assertions.every((a) => a.passed),
    durationMs: Date.now() - started,
    assertions,
    ...(error !== undefined ? { error } : {}),
  };
}

/**
 * Waits until the first client is denied the first service again (every scenario starts from
 * deny by default). Resolves to false when that did not happen within `ms`.
 */
async function settle(driver: Driver, w: Workloads, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  const spec: CallSpec = {
    from: w.clients[0]!.name,
    service: w.services[0]!.name,
    port: w.ports[0]!.port,
    method: 'Get',
    headers: {},
    channel: `settle-${++channels}`,
    deadlineMs: DENIED_DEADLINE_MS,
  };
  try {
    while (Date.now() < end) {
      const [o] = await driver.call(spec, 1);
      if (o && !o.ok) return true;
      await sleep(100);
    }
    return false;
  } finally {
    driver.closeChannel(spec.channel);
  }
}

/** Runs every scenario of the suite in order on a started driver. */
export async function runSuite(driver: Driver, suite: Suite, o: RunOptions = {}): Promise<Report> {
  const started = Date.now();
  const results: ScenarioResult[] = [];
  for (const s of suite.scenarios) {
    const r = await runScenario(driver, suite.workloads, s, o.withinFactor ?? 1);
    if (r.skipped !== undefined) {
      results.push(r);
      o.onScenario?.(r);
      continue;
    }
    if (!(await settle(driver, suite.workloads, o.settleMs ?? 10_000))) {
      r.passed = false;
      r.error ??=
        'after its objects were deleted, the first client was still allowed (deny by default not restored)';
    }
    results.push(r);
    o.onScenario?.(r);
  }
  const all = results.flatMap((r) => r.assertions);
  const errored = results.filter((r) => r.error !== undefined).length;
  const passed = all.filter((a) => a.passed).length;
  const failed = all.filter((a) => !a.passed).length + errored;
  const durationMs = Date.now() - started;
  return {
    driver: driver.name,
    flavors: [{ flavor: driver.flavor ?? 'grpc', durationMs, passed, failed }],
    startedAt: new Date(started).toISOString(),
    durationMs,
    passed,
    failed,
    scenarios: results,
  };
}

/** One report of several runs (one per flavor): every scenario result, the counts summed. */
export function mergeReports(reports: readonly Report[]): Report {
  if (reports.length === 0) throw new Error('internal: no report to merge');
  return {
    driver: [...new Set(reports.map((r) => r.driver))].join(', '),
    flavors: reports.flatMap((r) => r.flavors),
    startedAt: reports[0]!.startedAt,
    durationMs: reports.reduce((a, r) => a + r.durationMs, 0),
    passed: reports.reduce((a, r) => a + r.passed, 0),
    failed: reports.reduce((a, r) => a + r.failed, 0),
    scenarios: reports.flatMap((r) => r.scenarios),
  };
}

/**
 * Big-group benchmark: one HTTPRouteGroup with 10,000 matches, used by a TrafficTarget and by a
 * TrafficSplit's `matches`. Measures a render of it (model, translation, snapshots) and, in
 * `weft serve --config-dir`, the event loop's worst delay while that compile runs.
 */
import { writeFileSync } from 'node:fs';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { type Document, parseAllDocuments, stringify } from 'yaml';
import { MeshCompiler } from '../src/mesh/compiler';
import { renderMesh } from '../src/mesh/render';
import { parseYamlObjects } from '../src/smi/load';
import { HelperThread } from '../src/worker/helper-thread';
import { SnapshotCache } from '../src/xds/cache/cache';
import { envoyResourceEncoder } from '../src/xds/encoder';

/** A small mesh whose one HTTPRouteGroup has `matches` matches. */
export function bigGroupInputs(matches: number): unknown[] {
  const ns = 'big';
  const objs: unknown[] = [{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }];
  for (const [i, name] of ['client', 'api', 'api-v1', 'api-v2'].entries()) {
    objs.push({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace: ns } });
    objs.push({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, namespace: ns },
      spec: {
        clusterIP: `10.96.0.${10 + i}`,
        selector: name === 'api' ? { app: 'api' } : { app: 'api', version: name },
        ports: [{ name: 'http', port: 8080 }],
      },
    });
    objs.push({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: `${name}-0`,
        namespace: ns,
        labels: name === 'client' ? { app: 'client' } : { app: 'api', version: name },
      },
      spec: { serviceAccountName: name },
      status: { podIP: `10.244.0.${10 + i}`, phase: 'Running' },
    });
  }
  objs.push({
    apiVersion: 'specs.smi-spec.io/v1alpha4',
    kind: 'HTTPRouteGroup',
    metadata: { name: 'routes', namespace: ns },
    spec: {
      matches: Array.from({ length: matches }, (_, r) => ({
        name: `m${r}`,
        pathRegex: `/api/v${r % 7}/items/${r}(/.*)?`,
        methods: r % 2 === 0 ? ['GET'] : ['GET', 'POST'],
        ...(r % 3 === 0 ? { headers: [{ 'x-tenant': `t${r}` }] } : {}),
      })),
    },
  });
  objs.push({
    apiVersion: 'access.smi-spec.io/v1alpha3',
    kind: 'TrafficTarget',
    metadata: { name: 'client-to-api', namespace: ns },
    spec: {
      destination: { kind: 'ServiceAccount', name: 'api', namespace: ns },
      rules: [{ kind: 'HTTPRouteGroup', name: 'routes' }],
      sources: [{ kind: 'ServiceAccount', name: 'client', namespace: ns }],
    },
  });
  objs.push({
    apiVersion: 'split.smi-spec.io/v1alpha4',
    kind: 'TrafficSplit',
    metadata: { name: 'api-split', namespace: ns },
    spec: {
      service: 'api',
      matches: [{ kind: 'HTTPRouteGroup', name: 'routes' }],
      backends: [
        { service: 'api-v1', weight: 90 },
        { service: 'api-v2', weight: 10 },
      ],
    },
  });
  return objs;
}

/** Figures of the big-group benchmark. */
export interface BigGroupFigures {
  matches: number;
  renderMs: number;
  /**
   * CPU time of that render (every thread of the process, so helper GC threads count too), ms:
   * on a busy machine a better estimate of the render's time on an idle one than `renderMs`.
   */
  renderCpuMs: number;
  /** Of the render, parsing the YAML alone (wall, ms). */
  parseMs: number;
  /** The same parse by the `yaml` library alone, which the fast path stands in for (wall, ms). */
  referenceParseMs: number;
  modelMs: number;
  heapMB: number;
  outputMB: number;
}

/** Renders the big group from its YAML as `weft render` does (parse, model, every proxy, JSON). */
export function runBigGroupRender(matches = 10_000): BigGroupFigures {
  const yaml = bigGroupYaml(matches);
  globalThis.gc?.();
  const heap0 = process.memoryUsage().heapUsed;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const out = renderMesh([{ source: 'big.yaml', text: yaml }], { flavors: ['envoy', 'grpc'] });
  const json = JSON.stringify(out);
  const renderMs = performance.now() - t0;
  const cpu = process.cpuUsage(c0);
  const renderCpuMs = (cpu.user + cpu.system) / 1000;
  const p0 = performance.now();
  parseYamlObjects(yaml, 'big.yaml');
  const parseMs = performance.now() - p0;
  const r0 = performance.now();
  for (const d of parseAllDocuments(yaml, { logLevel: 'silent' }) as Document[]) d.toJS();
  const referenceParseMs = performance.now() - r0;
  const heapMB = (process.memoryUsage().heapUsed - heap0) / 2 ** 20;
  const m0 = performance.now();
  new MeshCompiler(new SnapshotCache(), envoyResourceEncoder(), { mtls: true }).update(
    bigGroupInputs(matches),
  );
  const modelMs = performance.now() - m0;
  return {
    matches,
    renderMs,
    renderCpuMs,
    parseMs,
    referenceParseMs,
    modelMs,
    heapMB,
    outputMB: json.length / 2 ** 20,
  };
}

/** What one change costs `weft serve --config-dir` with the big group, on its event loop. */
export interface BigGroupServeFigures {
  /** Re-reading the file (YAML parse) on the main thread, ms. */
  parseMs: number;
  /** The same parse on the worker thread, as serve does it now (includes the copy back), ms. */
  workerParseMs: number;
  /** Compiling the change with every workload's proxy connected (both flavors), ms. */
  compileMs: number;
  /** The event loop's worst delay, parse on the main thread then compile (before), ms. */
  maxLoopDelayInlineMs: number;
  /** The event loop's worst delay, parse on the worker thread then a compile in slices (now), ms. */
  maxLoopDelayMs: number;
  /** The compile in slices (`updateInSlices`), start to end, ms. */
  slicedCompileMs: number;
  /** The event loop's worst delay during the worker parse alone, ms. */
  maxLoopDelayWorkerParseMs: number;
}

/** Runs `work` while a histogram records the event loop's delays; returns the worst, in ms. */
async function worstDelay(work: () => Promise<void>): Promise<number> {
  const h = monitorEventLoopDelay({ resolution: 10 });
  h.enable();
  // Let the histogram take a few quiet samples before the work starts.
  await new Promise((r) => setTimeout(r, 50));
  await work();
  await new Promise((r) => setTimeout(r, 50));
  h.disable();
  return h.max / 1e6;
}

/**
 * Replays what serve does when the big group's file changes: parse the file, then compile with
 * every workload's proxies connected, while a histogram records the event loop's delays. Once as
 * before (parse on the main thread, one synchronous compile) and once as serve does now (parse on
 * the worker thread, compile in slices).
 */
export async function runBigGroupServe(matches = 10_000): Promise<BigGroupServeFigures> {
  const parser = new HelperThread();
  // As serve wires it: the sliced update encodes big resources on the helper thread.
  const compiler = new MeshCompiler(new SnapshotCache(), envoyResourceEncoder(), {
    mtls: true,
    encodeElsewhere: (typeUrl, text) => parser.encode(typeUrl, text),
  });
  compiler.update(bigGroupInputs(matches));
  for (const w of compiler.currentModel.workloads)
    for (const flavor of ['envoy', 'grpc'] as const) compiler.activate({ workload: w, flavor });
  const yaml80 = bigGroupYaml(matches).replace('weight: 90', 'weight: 80');
  const yaml70 = yaml80.replace('weight: 80', 'weight: 70');
  let parseMs = 0;
  let compileMs = 0;
  const maxLoopDelayInlineMs = await worstDelay(async () => {
    const t0 = performance.now();
    const parsed = parseYamlObjects(yaml80, 'big.yaml');
    parseMs = performance.now() - t0;
    await new Promise((r) => setImmediate(r));
    const t1 = performance.now();
    compiler.update(parsed.objects);
    compileMs = performance.now() - t1;
  });
  // Start the thread outside the measurement, as serve's first read does.
  await parser.parse(bigGroupYaml(1_000), 'warm.yaml');
  let workerParseMs = 0;
  let parsed: Awaited<ReturnType<HelperThread['parse']>> | undefined;
  const maxLoopDelayWorkerParseMs = await worstDelay(async () => {
    const t0 = performance.now();
    parsed = await parser.parse(yaml70, 'big.yaml');
    workerParseMs = performance.now() - t0;
  });
  let slicedCompileMs = 0;
  const compileDelay = await worstDelay(async () => {
    const t0 = performance.now();
    await compiler.updateInSlices(parsed?.objects ?? []);
    slicedCompileMs = performance.now() - t0;
  });
  parser.stop();
  return {
    parseMs,
    workerParseMs,
    compileMs,
    maxLoopDelayInlineMs,
    maxLoopDelayMs: Math.max(maxLoopDelayWorkerParseMs, compileDelay),
    slicedCompileMs,
    maxLoopDelayWorkerParseMs,
  };
}

/** The big group's inputs as one multi-document YAML file. */
export function bigGroupYaml(matches: number): string {
  return bigGroupInputs(matches)
    .map((o) => stringify(o))
    .join('---\n');
}

if (require.main === module) {
  const n = Number(process.argv[2] ?? 10_000);
  const f = runBigGroupRender(n);
  console.log(JSON.stringify(f));
  void runBigGroupServe(n).then((x) => console.log(JSON.stringify(x)));
  if (process.argv[3]) writeFileSync(process.argv[3], bigGroupYaml(n));
}

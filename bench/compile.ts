/**
 * Compile benchmark: 1,000 services with 10 HTTP routes each, 5,000 endpoints, 1,000 workloads
 * (one proxy each, all connected), TrafficTargets chaining the services, and 100 TrafficSplits.
 * Measures the full build (model, translation of every proxy, snapshots), then changes of one
 * TrafficSplit weight and of one EndpointSlice (the model reuses what did not change, and only the
 * affected groups get a new key and a new translation).
 */
import { performance } from 'node:perf_hooks';
import { MeshCompiler } from '../src/mesh/compiler';
import { SnapshotCache } from '../src/xds/cache/cache';
import { envoyResourceEncoder } from '../src/xds/encoder';

const NS = 10;

/** The benchmark's input objects; `weight` is split-20's weight of its first backend (svc-20 has callers). */
export function compileInputs(services: number, weight = 50): unknown[] {
  const objs: unknown[] = [];
  for (let n = 0; n < NS; n++)
    objs.push({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: `ns-${n}` } });
  for (let i = 0; i < services; i++) {
    const ns = `ns-${i % NS}`;
    const name = `svc-${i}`;
    objs.push({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: `sa-${i}`, namespace: ns } });
    objs.push({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, namespace: ns },
      spec: {
        clusterIP: `10.96.${i >> 8}.${i & 255}`,
        selector: { app: name },
        ports: [{ name: 'http', port: 8080 }],
      },
    });
    objs.push({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: `pod-${i}`, namespace: ns, labels: { app: name } },
      spec: { serviceAccountName: `sa-${i}` },
      status: { podIP: `10.244.${i >> 8}.${i & 255}`, phase: 'Running' },
    });
    objs.push({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: `${name}-x`, namespace: ns, labels: { 'kubernetes.io/service-name': name } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: 8080 }],
      endpoints: Array.from({ length: 5 }, (_, e) => ({
        addresses: [`10.${100 + e}.${i >> 8}.${i & 255}`],
        conditions: { ready: true },
      })),
    });
    objs.push({
      apiVersion: 'specs.smi-spec.io/v1alpha4',
      kind: 'HTTPRouteGroup',
      metadata: { name: `${name}-routes`, namespace: ns },
      spec: {
        matches: Array.from({ length: 10 }, (_, r) => ({
          name: `r${r}`,
          pathRegex: `/api/v${r}`,
          methods: ['GET'],
        })),
      },
    });
    // Each service may be called by the two previous ones in its namespace.
    const callers = [i - NS, i - 2 * NS].filter((c) => c >= 0);
    if (callers.length > 0) {
      objs.push({
        apiVersion: 'access.smi-spec.io/v1alpha3',
        kind: 'TrafficTarget',
        metadata: { name: `to-${name}`, namespace: ns },
        spec: {
          destination: { kind: 'ServiceAccount', name: `sa-${i}`, namespace: ns },
          rules: [{ kind: 'HTTPRouteGroup', name: `${name}-routes` }],
          sources: callers.map((c) => ({ kind: 'ServiceAccount', name: `sa-${c}`, namespace: ns })),
        },
      });
    }
    if (i % 10 === 0 && i + NS < services) {
      objs.push({
        apiVersion: 'split.smi-spec.io/v1alpha4',
        kind: 'TrafficSplit',
        metadata: { name: `split-${i}`, namespace: ns },
        spec: {
          service: name,
          backends: [
            { service: name, weight: i === 20 ? weight : 50 },
            { service: `svc-${i + NS}`, weight: 50 },
          ],
        },
      });
    }
  }
  return objs;
}

/** Figures of one kind of change, over several changes of that kind. */
export interface ChangeFigures {
  /** Milliseconds of `update`, median and slowest. */
  medianMs: number;
  maxMs: number;
  /** Of which building the model, median. */
  modelMs: number;
  /** Groups whose key was computed again (the same for every change of the kind). */
  rekeyed: number;
  translated: number;
  /** Groups whose snapshot changed. */
  changed: number;
}

/** Figures of the compile benchmark. */
export interface CompileFigures {
  objects: number;
  fullMs: number;
  fullModelMs: number;
  groups: number;
  /** One TrafficSplit weight changes. */
  split: ChangeFigures;
  /** One EndpointSlice loses an endpoint (and gets it back on the next change). */
  endpoint: ChangeFigures;
}

/** Changes of one kind measured per kind, after a warm-up; the median is the figure. */
const CHANGES = 11;

const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

/** Runs the compile benchmark. */
export function runCompileBench(services = 1000): CompileFigures {
  const cache = new SnapshotCache();
  const compiler = new MeshCompiler(cache, envoyResourceEncoder(), { mtls: true });
  const inputs = compileInputs(services);
  const t0 = performance.now();
  const first = compiler.update(inputs);
  const modelMs = first.modelMs;
  for (const w of compiler.currentModel.workloads) compiler.activate({ workload: w, flavor: 'envoy' });
  const fullMs = performance.now() - t0;
  const groups = compiler.groups().length;
  // Sources pass unchanged objects again as the same references (informers replace an object only
  // when it changes), so a change is the previous inputs with the changed object swapped in.
  const indexOf = (name: string): number =>
    inputs.findIndex((o) => (o as { metadata?: { name?: string } }).metadata?.name === name);
  const measure = (at: number, variant: (k: number) => unknown): ChangeFigures => {
    // Every step's inputs are made first, so making them is not charged to the changes.
    const steps = Array.from({ length: CHANGES + 1 }, (_, k) =>
      inputs.map((o, i) => (i === at ? variant(k) : o)),
    );
    const runs: { ms: number; modelMs: number; rekeyed: number; translated: number; changed: number }[] = [];
    for (const [k, step] of steps.entries()) {
      const t = performance.now();
      const r = compiler.update(step);
      const ms = performance.now() - t;
      // The first change of a kind warms its code paths; it is not counted.
      if (k > 0) runs.push({ ...r, ms });
    }
    return {
      medianMs: median(runs.map((r) => r.ms)),
      maxMs: Math.max(...runs.map((r) => r.ms)),
      modelMs: median(runs.map((r) => r.modelMs)),
      rekeyed: median(runs.map((r) => r.rekeyed)),
      translated: median(runs.map((r) => r.translated)),
      changed: median(runs.map((r) => r.changed)),
    };
  };
  const split = indexOf('split-20');
  const splitFigures = measure(split, (k) => compileInputs(services, 60 + k)[split]);
  const slice = indexOf('svc-20-x');
  const endpoint = measure(slice, (k) => {
    const s = inputs[slice] as { endpoints: unknown[] };
    // Every other step restores the endpoint, as a new object, as informers do.
    return { ...s, endpoints: k % 2 === 0 ? s.endpoints : s.endpoints.slice(1) };
  });
  return { objects: inputs.length, fullMs, fullModelMs: modelMs, groups, split: splitFigures, endpoint };
}

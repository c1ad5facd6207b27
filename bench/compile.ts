/**
 * Compile benchmark: 1,000 services with 10 HTTP routes each, 5,000 endpoints, 1,000 workloads
 * (one proxy each, all connected), TrafficTargets chaining the services, and 100 TrafficSplits.
 * Measures the full build (model, translation of every proxy, snapshots) and the incremental
 * change of one TrafficSplit weight (new model, only affected groups translated again).
 */
import { performance } from 'node:perf_hooks';
import { MeshCompiler } from '../src/mesh/compiler';
import { groupName } from '../src/mesh/proxies';
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

/** Figures of the compile benchmark. */
export interface CompileFigures {
  objects: number;
  fullMs: number;
  fullModelMs: number;
  changeMs: number;
  changeModelMs: number;
  changedGroups: number;
  translatedOnChange: number;
  groups: number;
}

/** Runs the compile benchmark. */
export function runCompileBench(services = 1000): CompileFigures {
  const cache = new SnapshotCache();
  const compiler = new MeshCompiler(cache, envoyResourceEncoder(), { mtls: true });
  const inputs = compileInputs(services);
  const t0 = performance.now();
  const first = compiler.update(inputs);
  const modelMs = first.ms;
  for (const w of compiler.currentModel.workloads) compiler.activate({ workload: w, flavor: 'envoy' });
  const fullMs = performance.now() - t0;
  const groups = compiler.groups().length;
  // Sources pass unchanged objects again as the same references (informers replace an object only
  // when it changes), so a change is the previous inputs with the changed object swapped in.
  const swapIn = (prev: unknown[], next: unknown[]): unknown[] =>
    prev.map((o, i) => (JSON.stringify(o) === JSON.stringify(next[i]) ? o : next[i]));
  // Warm the model path once more so the change measures steady state, not first-use costs.
  const warm = swapIn(inputs, compileInputs(services, 60));
  compiler.update(warm);
  const changed = swapIn(warm, compileInputs(services, 70));
  const { buildModel } = require('../src/smi/build') as typeof import('../src/smi/build');
  const m0 = performance.now();
  buildModel(changed);
  const changeModelMs = performance.now() - m0;
  const t1 = performance.now();
  const r = compiler.update(changed);
  const changeMs = performance.now() - t1;
  if (!groupName) throw new Error('unreachable');
  return {
    objects: inputs.length,
    fullMs,
    fullModelMs: modelMs,
    changeMs,
    changeModelMs,
    changedGroups: r.changed,
    translatedOnChange: r.translated,
    groups,
  };
}

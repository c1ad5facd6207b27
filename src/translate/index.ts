/**
 * Translation: the mesh model and one proxy in, that proxy's xDS resources out. Pure and
 * deterministic: no I/O, no clock, no randomness, inputs untouched, output sorted by name, so the
 * same inputs always give the same bytes and the same versions.
 */
import type { Condition, MeshModel } from '../smi/model';
import type { Json } from './common';
import { translateEnvoy } from './envoy';
import { translateGrpc } from './grpc';
import { type ProxyTarget, type ProxyView, proxyView } from './scope';
import type { ProxyResources } from './types';

export { checkConsistency, type Validator } from './consistency';
export * as names from './names';
export { type GroupKey, GroupKeys, groupKey, type ProxyTarget, type ProxyView, proxyView } from './scope';
export type { ProxyResources } from './types';

function sortByName(list: Json[]): Json[] {
  const key = (x: Json): string => String(x.name ?? x.cluster_name);
  return [...list].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

/**
 * Translates one proxy; a workload missing from the model gets no resources and a condition.
 * `view` is `proxyView(model, target)`, for a caller that already has it.
 */
export function translateProxy(
  model: MeshModel,
  target: ProxyTarget,
  view: ProxyView = proxyView(model, target),
): { resources: ProxyResources; conditions: Condition[] } {
  const conditions: Condition[] = [];
  if (!view.workload) {
    conditions.push({
      object: `${target.workload.kind}/${target.workload.namespace}/${target.workload.name}`,
      type: 'Accepted',
      status: 'False',
      severity: 'Warning',
      reason: 'WorkloadNotFound',
      message: `${target.workload.kind} ${target.workload.namespace}/${target.workload.name} is not in the mesh; its proxy gets no configuration`,
    });
  }
  const r = target.flavor === 'grpc' ? translateGrpc(view) : translateEnvoy(view, conditions);
  return {
    resources: {
      listeners: sortByName(r.listeners),
      routes: sortByName(r.routes),
      clusters: sortByName(r.clusters),
      endpoints: sortByName(r.endpoints),
      secrets: sortByName(r.secrets),
    },
    conditions,
  };
}

/**
 * The workload stages of a build: Pods (and Deployments standing in for them) as workloads, indexed
 * by label for Service selectors, then finished with the Services each one backs.
 */

import { cmp, compareRefs, groupBy, key, type LabelIndex, labelIndexes, selects } from './helpers';
import {
  identityOf,
  type MeshSettings,
  type ServiceModel,
  type ServiceRef,
  type WorkloadModel,
  type WorkloadRef,
} from './model';
import type { Deployment, Pod } from './normalize';

/** A workload before the services it backs are known. */
export interface WorkloadDraft {
  readonly ref: WorkloadRef;
  readonly labels: Readonly<Record<string, string>>;
  readonly serviceAccount: string;
  readonly ips: readonly string[];
  readonly node?: string;
  readonly owner?: { readonly kind: string; readonly name: string };
}

/**
 * Pods are workloads. A Deployment stands for its pods when no Pod in its namespace matches its
 * `matchLabels` (its template labels when it has none), so manifests without Pods still give
 * workloads; once Pods appear they take over.
 */
export function workloadDrafts(pods: readonly Pod[], deployments: readonly Deployment[]): WorkloadDraft[] {
  const podsByNamespace = groupBy(pods, (p) => p.meta.namespace);
  const drafts: WorkloadDraft[] = pods.map((p) => ({
    ref: { kind: 'Pod', namespace: p.meta.namespace, name: p.meta.name },
    labels: p.meta.labels,
    serviceAccount: p.serviceAccount,
    ips: p.ips,
    ...(p.node ? { node: p.node } : {}),
    ...(p.owner ? { owner: p.owner } : {}),
  }));
  for (const d of deployments) {
    const selector = d.selector ?? d.templateLabels;
    const hasPods = (podsByNamespace.get(d.meta.namespace) ?? []).some((p) =>
      selects(selector, p.meta.labels),
    );
    if (hasPods) continue;
    drafts.push({
      ref: { kind: 'Deployment', namespace: d.meta.namespace, name: d.meta.name },
      labels: d.templateLabels,
      serviceAccount: d.serviceAccount,
      ips: [],
    });
  }
  return drafts;
}

/** Pods by `<ns>/<name>`, by `<ns>/<ip>` and by label per namespace. */
export interface PodIndex {
  readonly byKey: ReadonlyMap<string, Pod>;
  readonly byIp: ReadonlyMap<string, Pod>;
  readonly byNamespace: ReadonlyMap<string, LabelIndex<Pod>>;
}

/** Workload drafts, and per namespace by label for Service selectors. */
export interface DraftIndex {
  readonly drafts: readonly WorkloadDraft[];
  readonly byNamespace: ReadonlyMap<string, LabelIndex<WorkloadDraft>>;
}

/** Indexes pods; the first pod listed with an IP owns it. */
export function podIndex(pods: readonly Pod[]): PodIndex {
  const byIp = new Map<string, Pod>();
  for (const p of pods) {
    for (const ip of p.ips) if (!byIp.has(key(p.meta.namespace, ip))) byIp.set(key(p.meta.namespace, ip), p);
  }
  return {
    byKey: new Map(pods.map((p) => [key(p.meta.namespace, p.meta.name), p])),
    byIp,
    byNamespace: labelIndexes(
      pods,
      (p) => p.meta.namespace,
      (p) => p.meta.labels,
    ),
  };
}

/** Services each workload backs, by `<kind>/<namespace>/<name>`. */
export function backsOf(services: readonly ServiceModel[]): Map<string, ServiceRef[]> {
  const backs = new Map<string, ServiceRef[]>();
  for (const s of services) {
    for (const w of s.workloads) {
      const k = `${w.kind}/${w.namespace}/${w.name}`;
      const list = backs.get(k) ?? [];
      list.push({ namespace: s.namespace, name: s.name });
      backs.set(k, list);
    }
  }
  return backs;
}

/** Finishes each workload with its identity and the Services it backs, sorted by reference. */
export function buildWorkloads(
  drafts: readonly WorkloadDraft[],
  backs: ReadonlyMap<string, readonly ServiceRef[]>,
  settings: MeshSettings,
): WorkloadModel[] {
  return drafts
    .map((d) => ({
      kind: d.ref.kind,
      namespace: d.ref.namespace,
      name: d.ref.name,
      labels: d.labels,
      serviceAccount: d.serviceAccount,
      identity: identityOf(d.ref.namespace, d.serviceAccount, settings.trustDomain),
      ips: d.ips,
      ...(d.node ? { node: d.node } : {}),
      ...(d.owner ? { owner: d.owner } : {}),
      services: [...(backs.get(`${d.ref.kind}/${d.ref.namespace}/${d.ref.name}`) ?? [])].sort(
        (a, b) => cmp(a.namespace, b.namespace) || cmp(a.name, b.name),
      ),
    }))
    .sort(compareRefs);
}

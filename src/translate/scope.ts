/**
 * What one proxy's configuration depends on: the services it may call (outbound scope), the
 * services it serves (inbound), and the access rules and splits that touch them. `groupKey` hashes
 * exactly this view, so proxies with equal views share a translation, and a change elsewhere in the
 * mesh leaves their key, and their snapshot, untouched.
 */
import { createHash } from 'node:crypto';
import type {
  AccessModel,
  MeshModel,
  ServiceModel,
  SplitModel,
  WorkloadModel,
  WorkloadRef,
} from '../smi/model';

/** The proxy to translate for. */
export interface ProxyTarget {
  readonly workload: WorkloadRef;
  readonly flavor: 'envoy' | 'grpc';
  /** Mutual TLS between proxies (default true). */
  readonly mtls?: boolean;
}

/** Everything translation reads for one proxy. */
export interface ProxyView {
  readonly flavor: 'envoy' | 'grpc';
  readonly mtls: boolean;
  readonly settings: MeshModel['settings'];
  /** Null when the workload is not in the model (the proxy then gets nothing). */
  readonly workload: WorkloadModel | null;
  /** Services the proxy may call, sorted by namespace/name; split backends included. */
  readonly outbound: readonly ServiceModel[];
  /** Splits whose root is in `outbound`. */
  readonly splits: readonly SplitModel[];
  /** Identities serving each outbound service (for SAN checks), by `<ns>/<name>`. */
  readonly serverIdentities: Readonly<Record<string, readonly string[]>>;
  /** Services the workload backs. */
  readonly inbound: readonly ServiceModel[];
  /** TrafficTargets whose destination is the workload's identity. */
  readonly access: readonly AccessModel[];
  /** Source workloads' IPs by identity (plaintext mode only: principals by address). */
  readonly sourceIps: Readonly<Record<string, readonly string[]>>;
}

const svcKey = (ns: string, name: string): string => `${ns}/${name}`;

function findWorkload(model: MeshModel, ref: WorkloadRef): WorkloadModel | null {
  return (
    model.workloads.find(
      (w) => w.kind === ref.kind && w.namespace === ref.namespace && w.name === ref.name,
    ) ?? null
  );
}

function identitiesOf(model: MeshModel, svc: ServiceModel): string[] {
  const ids = new Set<string>();
  for (const ref of svc.workloads) {
    const w = findWorkload(model, ref);
    if (w) ids.add(w.identity);
  }
  return [...ids].sort();
}

/** Computes the view of one proxy. */
export function proxyView(model: MeshModel, target: ProxyTarget): ProxyView {
  const mtls = target.mtls ?? true;
  const workload = findWorkload(model, target.workload);
  const empty: ProxyView = {
    flavor: target.flavor,
    mtls,
    settings: model.settings,
    workload: null,
    outbound: [],
    splits: [],
    serverIdentities: {},
    inbound: [],
    access: [],
    sourceIps: {},
  };
  if (!workload) return empty;
  const byKey = new Map(model.services.map((s) => [svcKey(s.namespace, s.name), s]));
  const allowedDestinations = new Set(
    model.access
      .filter((a) => a.sources.some((s) => s.identity === workload.identity))
      .map((a) => a.destination.identity),
  );
  const serverIdentities: Record<string, string[]> = {};
  const reachable = new Map<string, ServiceModel>();
  for (const s of model.services) {
    const ids = identitiesOf(model, s);
    const key = svcKey(s.namespace, s.name);
    serverIdentities[key] = ids;
    if (model.settings.permissive || ids.some((id) => allowedDestinations.has(id))) reachable.set(key, s);
  }
  // A split's backends are reachable whenever its root is: the root is what the caller dials.
  const splits = model.splits.filter((sp) => reachable.has(svcKey(sp.namespace, sp.rootService)));
  for (const sp of splits) {
    for (const b of sp.backends) {
      const s = byKey.get(svcKey(sp.namespace, b.service));
      if (s) reachable.set(svcKey(s.namespace, s.name), s);
    }
  }
  const outbound = [...reachable.values()].sort((a, b) =>
    svcKey(a.namespace, a.name) < svcKey(b.namespace, b.name) ? -1 : 1,
  );
  const inbound = workload.services
    .map((r) => byKey.get(svcKey(r.namespace, r.name)))
    .filter((s): s is ServiceModel => s !== undefined);
  const access = model.access.filter((a) => a.destination.identity === workload.identity);
  const sourceIps: Record<string, string[]> = {};
  if (!mtls) {
    for (const a of access) {
      for (const src of a.sources) {
        sourceIps[src.identity] = model.workloads
          .filter((w) => w.identity === src.identity)
          .flatMap((w) => w.ips)
          .sort();
      }
    }
  }
  const usedIds: Record<string, readonly string[]> = {};
  for (const s of outbound)
    usedIds[svcKey(s.namespace, s.name)] = serverIdentities[svcKey(s.namespace, s.name)] ?? [];
  return {
    ...empty,
    workload,
    outbound,
    splits,
    serverIdentities: usedIds,
    inbound,
    access,
    sourceIps,
  };
}

/** Content hash of a proxy's view: equal keys, equal translation. */
export function groupKey(model: MeshModel, target: ProxyTarget): string {
  const v = proxyView(model, target);
  // The workload's own name does not change its config except through what it backs and its
  // IPs (gRPC server listeners), so leave the name out and let replicas share.
  const w = v.workload
    ? {
        identity: v.workload.identity,
        ips: v.flavor === 'grpc' ? v.workload.ips : [],
        services: v.workload.services,
      }
    : null;
  return createHash('sha256')
    .update(JSON.stringify({ ...v, workload: w }))
    .digest('base64url')
    .slice(0, 22);
}

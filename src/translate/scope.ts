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
}

const svcKey = (ns: string, name: string): string => `${ns}/${name}`;

/** Lookups computed once per model and shared by every proxy's view. */
interface ModelIndex {
  readonly workloads: ReadonlyMap<string, WorkloadModel>;
  readonly services: ReadonlyMap<string, ServiceModel>;
  /** Serving identities of each service, sorted. */
  readonly serviceIdentities: ReadonlyMap<string, readonly string[]>;
  /** Services served by each identity. */
  readonly servicesOfIdentity: ReadonlyMap<string, readonly ServiceModel[]>;
  /** Destination identities each source identity may call. */
  readonly destinationsOf: ReadonlyMap<string, ReadonlySet<string>>;
  /** TrafficTargets by destination identity. */
  readonly accessTo: ReadonlyMap<string, readonly AccessModel[]>;
  /** Splits by root `<ns>/<service>`. */
  readonly splitOf: ReadonlyMap<string, SplitModel>;
}

const indexes = new WeakMap<MeshModel, ModelIndex>();

const workloadKey = (kind: string, ns: string, name: string): string => `${kind}/${ns}/${name}`;

function indexOf(model: MeshModel): ModelIndex {
  const hit = indexes.get(model);
  if (hit) return hit;
  const workloads = new Map(model.workloads.map((w) => [workloadKey(w.kind, w.namespace, w.name), w]));
  const services = new Map(model.services.map((s) => [svcKey(s.namespace, s.name), s]));
  const serviceIdentities = new Map<string, readonly string[]>();
  const servicesOfIdentity = new Map<string, ServiceModel[]>();
  for (const s of model.services) {
    const ids = new Set<string>();
    for (const ref of s.workloads) {
      const w = workloads.get(workloadKey(ref.kind, ref.namespace, ref.name));
      if (w) ids.add(w.identity);
    }
    const sorted = [...ids].sort();
    serviceIdentities.set(svcKey(s.namespace, s.name), sorted);
    for (const id of sorted) {
      const list = servicesOfIdentity.get(id) ?? [];
      list.push(s);
      servicesOfIdentity.set(id, list);
    }
  }
  const destinationsOf = new Map<string, Set<string>>();
  const accessTo = new Map<string, AccessModel[]>();
  for (const a of model.access) {
    for (const src of a.sources) {
      const set = destinationsOf.get(src.identity) ?? new Set<string>();
      set.add(a.destination.identity);
      destinationsOf.set(src.identity, set);
    }
    const list = accessTo.get(a.destination.identity) ?? [];
    list.push(a);
    accessTo.set(a.destination.identity, list);
  }
  const idx: ModelIndex = {
    workloads,
    services,
    serviceIdentities,
    servicesOfIdentity,
    destinationsOf,
    accessTo,
    splitOf: new Map(model.splits.map((sp) => [svcKey(sp.namespace, sp.rootService), sp])),
  };
  indexes.set(model, idx);
  return idx;
}

/** Computes the view of one proxy. */
export function proxyView(model: MeshModel, target: ProxyTarget): ProxyView {
  const mtls = target.mtls ?? true;
  const idx = indexOf(model);
  const workload =
    idx.workloads.get(workloadKey(target.workload.kind, target.workload.namespace, target.workload.name)) ??
    null;
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
  };
  if (!workload) return empty;
  const reachable = new Map<string, ServiceModel>();
  if (model.settings.permissive) {
    for (const [k, s] of idx.services) reachable.set(k, s);
  } else {
    for (const dest of idx.destinationsOf.get(workload.identity) ?? []) {
      for (const s of idx.servicesOfIdentity.get(dest) ?? []) reachable.set(svcKey(s.namespace, s.name), s);
    }
  }
  // A split's backends are reachable whenever its root is: the root is what the caller dials.
  const splits: SplitModel[] = [];
  for (const key of [...reachable.keys()]) {
    const sp = idx.splitOf.get(key);
    if (!sp) continue;
    splits.push(sp);
    for (const b of sp.backends) {
      const s = idx.services.get(svcKey(sp.namespace, b.service));
      if (s) reachable.set(svcKey(s.namespace, s.name), s);
    }
  }
  const keys = [...reachable.keys()].sort();
  const outbound = keys.map((k) => reachable.get(k)!);
  const serverIdentities: Record<string, readonly string[]> = {};
  for (const k of keys) serverIdentities[k] = idx.serviceIdentities.get(k) ?? [];
  const inbound = workload.services
    .map((r) => idx.services.get(svcKey(r.namespace, r.name)))
    .filter((s): s is ServiceModel => s !== undefined);
  const access = idx.accessTo.get(workload.identity) ?? [];
  splits.sort((a, b) => (svcKey(a.namespace, a.rootService) < svcKey(b.namespace, b.rootService) ? -1 : 1));
  return { ...empty, workload, outbound, splits, serverIdentities, inbound, access };
}

/**
 * Fingerprints of model objects. A view is made of the model's own objects (services, splits,
 * access rules), and one object appears in the views of many proxies, so each is serialized once
 * per model instead of once per proxy; that keeps a recompile of 1,000 groups linear in the model.
 */
const fingerprints = new WeakMap<object, string>();

function fingerprint(o: object): string {
  let f = fingerprints.get(o);
  if (f === undefined) {
    f = createHash('sha256').update(JSON.stringify(o)).digest('base64url').slice(0, 22);
    fingerprints.set(o, f);
  }
  return f;
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
  const list = (xs: readonly object[]): string => xs.map(fingerprint).join(',');
  return createHash('sha256')
    .update(
      JSON.stringify({
        flavor: v.flavor,
        mtls: v.mtls,
        settings: v.settings,
        workload: w,
        ids: v.serverIdentities,
      }),
    )
    .update(`|${list(v.outbound)}|${list(v.splits)}|${list(v.inbound)}|${list(v.access)}`)
    .digest('base64url')
    .slice(0, 22);
}

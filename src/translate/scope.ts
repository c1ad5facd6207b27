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

const workloadKey = (kind: string, ns: string, name: string): string => `${kind}/${ns}/${name}`;

/** Lookups by service, computed from the model's services and workloads. */
interface ServiceIndex {
  readonly services: ReadonlyMap<string, ServiceModel>;
  /** Serving identities of each service, sorted. */
  readonly serviceIdentities: ReadonlyMap<string, readonly string[]>;
  /** Services served by each identity. */
  readonly servicesOfIdentity: ReadonlyMap<string, readonly ServiceModel[]>;
}

/** Lookups by identity, computed from the model's TrafficTargets. */
interface AccessIndex {
  /** Destination identities each source identity may call. */
  readonly destinationsOf: ReadonlyMap<string, ReadonlySet<string>>;
  /** TrafficTargets by destination identity. */
  readonly accessTo: ReadonlyMap<string, readonly AccessModel[]>;
}

/** Lookups computed once per model and shared by every proxy's view. */
interface ModelIndex extends ServiceIndex, AccessIndex {
  readonly workloads: ReadonlyMap<string, WorkloadModel>;
  /** Splits by root `<ns>/<service>`. */
  readonly splitOf: ReadonlyMap<string, SplitModel>;
}

/** An index with the model it was computed for. */
interface Indexed {
  readonly model: MeshModel;
  readonly idx: ModelIndex;
}

const sameList = <T>(a: readonly T[] | undefined, b: readonly T[]): a is readonly T[] =>
  a !== undefined && a.length === b.length && a.every((x, i) => x === b[i]);

function serviceIndex(
  model: MeshModel,
  workloads: ReadonlyMap<string, WorkloadModel>,
  prev?: ServiceIndex,
): ServiceIndex {
  const services = new Map(model.services.map((s) => [svcKey(s.namespace, s.name), s]));
  const serviceIdentities = new Map<string, readonly string[]>();
  const servicesOfIdentity = new Map<string, ServiceModel[]>();
  for (const s of model.services) {
    const ids = new Set<string>();
    for (const ref of s.workloads) {
      const w = workloads.get(workloadKey(ref.kind, ref.namespace, ref.name));
      if (w) ids.add(w.identity);
    }
    const k = svcKey(s.namespace, s.name);
    const sorted = [...ids].sort();
    const before = prev?.serviceIdentities.get(k);
    serviceIdentities.set(k, sameList(before, sorted) ? before : sorted);
    for (const id of sorted) {
      const list = servicesOfIdentity.get(id) ?? [];
      list.push(s);
      servicesOfIdentity.set(id, list);
    }
  }
  const ofIdentity = new Map<string, readonly ServiceModel[]>();
  for (const [id, list] of servicesOfIdentity) {
    const before = prev?.servicesOfIdentity.get(id);
    ofIdentity.set(id, sameList(before, list) ? before : list);
  }
  return { services, serviceIdentities, servicesOfIdentity: ofIdentity };
}

function accessIndex(model: MeshModel, prev?: AccessIndex): AccessIndex {
  const destinations = new Map<string, Set<string>>();
  const to = new Map<string, AccessModel[]>();
  for (const a of model.access) {
    for (const src of a.sources) {
      const set = destinations.get(src.identity) ?? new Set<string>();
      set.add(a.destination.identity);
      destinations.set(src.identity, set);
    }
    const list = to.get(a.destination.identity) ?? [];
    list.push(a);
    to.set(a.destination.identity, list);
  }
  const destinationsOf = new Map<string, ReadonlySet<string>>();
  for (const [id, set] of destinations) {
    const before = prev?.destinationsOf.get(id);
    const same = before !== undefined && before.size === set.size && [...set].every((d) => before.has(d));
    destinationsOf.set(id, same ? before : set);
  }
  const accessTo = new Map<string, readonly AccessModel[]>();
  for (const [id, list] of to) {
    const before = prev?.accessTo.get(id);
    accessTo.set(id, sameList(before, list) ? before : list);
  }
  return { destinationsOf, accessTo };
}

/**
 * The index of `model`. With `prev`, the index of the model built before it: a part whose model
 * arrays are the same (a model built by `ModelBuilder` reuses unchanged arrays) is taken over
 * whole, and in a part computed again each value equal to `prev`'s is `prev`'s value. Lookups of
 * unchanged entries thus return the very same values, which is how {@link GroupKeys} tells which
 * views a change can have touched.
 */
function indexFor(model: MeshModel, prev?: Indexed): ModelIndex {
  const p = prev?.model;
  const workloads =
    p?.workloads === model.workloads
      ? prev!.idx.workloads
      : new Map(model.workloads.map((w) => [workloadKey(w.kind, w.namespace, w.name), w]));
  const services =
    p?.services === model.services && p.workloads === model.workloads
      ? prev!.idx
      : serviceIndex(model, workloads, prev?.idx);
  const access = p?.access === model.access ? prev!.idx : accessIndex(model, prev?.idx);
  return {
    workloads,
    services: services.services,
    serviceIdentities: services.serviceIdentities,
    servicesOfIdentity: services.servicesOfIdentity,
    destinationsOf: access.destinationsOf,
    accessTo: access.accessTo,
    splitOf:
      p?.splits === model.splits
        ? prev!.idx.splitOf
        : new Map(model.splits.map((sp) => [svcKey(sp.namespace, sp.rootService), sp])),
  };
}

const indexes = new WeakMap<MeshModel, ModelIndex>();

/** The index of a model, computed once per model. */
function indexOf(model: MeshModel): ModelIndex {
  let idx = indexes.get(model);
  if (!idx) {
    idx = indexFor(model);
    indexes.set(model, idx);
  }
  return idx;
}

/** The index lookups a view makes. */
type Lookup =
  | 'workloads'
  | 'services'
  | 'serviceIdentities'
  | 'servicesOfIdentity'
  | 'destinationsOf'
  | 'accessTo'
  | 'splitOf';

/** One lookup a view made and what it returned. `key` null: the whole map was read (permissive). */
interface Read {
  readonly lookup: Lookup;
  readonly key: string | null;
  readonly value: unknown;
}

function look<K extends Lookup>(
  idx: ModelIndex,
  lookup: K,
  key: string,
  reads: Read[] | undefined,
): ModelIndex[K] extends ReadonlyMap<string, infer V> ? V | undefined : never;
function look(idx: ModelIndex, lookup: Lookup, key: string, reads: Read[] | undefined): unknown {
  const value = idx[lookup].get(key);
  reads?.push({ lookup, key, value });
  return value;
}

/** Whether every lookup in `reads` returns the same value in `idx`. */
function unchanged(idx: ModelIndex, reads: readonly Read[]): boolean {
  for (const r of reads) {
    const now = r.key === null ? idx[r.lookup] : idx[r.lookup].get(r.key);
    if (now !== r.value) return false;
  }
  return true;
}

/** Computes the view of one proxy, recording each index lookup in `reads` when given. */
function viewOf(model: MeshModel, target: ProxyTarget, idx: ModelIndex, reads?: Read[]): ProxyView {
  const mtls = target.mtls ?? true;
  const workload =
    look(
      idx,
      'workloads',
      workloadKey(target.workload.kind, target.workload.namespace, target.workload.name),
      reads,
    ) ?? null;
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
    reads?.push({ lookup: 'services', key: null, value: idx.services });
    for (const [k, s] of idx.services) reachable.set(k, s);
  } else {
    for (const dest of look(idx, 'destinationsOf', workload.identity, reads) ?? []) {
      for (const s of look(idx, 'servicesOfIdentity', dest, reads) ?? [])
        reachable.set(svcKey(s.namespace, s.name), s);
    }
  }
  // A split's backends are reachable whenever its root is: the root is what the caller dials.
  const splits: SplitModel[] = [];
  for (const key of [...reachable.keys()]) {
    const sp = look(idx, 'splitOf', key, reads);
    if (!sp) continue;
    splits.push(sp);
    for (const b of sp.backends) {
      const s = look(idx, 'services', svcKey(sp.namespace, b.service), reads);
      if (s) reachable.set(svcKey(s.namespace, s.name), s);
    }
  }
  const keys = [...reachable.keys()].sort();
  const outbound = keys.map((k) => reachable.get(k)!);
  const serverIdentities: Record<string, readonly string[]> = {};
  for (const k of keys) serverIdentities[k] = look(idx, 'serviceIdentities', k, reads) ?? [];
  const inbound = workload.services
    .map((r) => look(idx, 'services', svcKey(r.namespace, r.name), reads))
    .filter((s): s is ServiceModel => s !== undefined);
  const access = look(idx, 'accessTo', workload.identity, reads) ?? [];
  splits.sort((a, b) => (svcKey(a.namespace, a.rootService) < svcKey(b.namespace, b.rootService) ? -1 : 1));
  return { ...empty, workload, outbound, splits, serverIdentities, inbound, access };
}

/** Computes the view of one proxy. */
export function proxyView(model: MeshModel, target: ProxyTarget): ProxyView {
  return viewOf(model, target, indexOf(model));
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

function keyOfView(v: ProxyView): string {
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

/** Content hash of a proxy's view: equal keys, equal translation. */
export function groupKey(model: MeshModel, target: ProxyTarget): string {
  return keyOfView(proxyView(model, target));
}

/** A group key and whether it had to be computed. */
export interface GroupKey {
  readonly key: string;
  /** False when no lookup the target's view makes returns anything new, so the key was kept. */
  readonly computed: boolean;
}

/** The last key computed for a target, with what its view was computed from. */
interface KeyMemo {
  readonly settings: MeshModel['settings'];
  readonly reads: readonly Read[];
  readonly key: string;
}

/**
 * {@link groupKey} for one model after another (the compiler's), computing a key only when
 * something its view reads changed. A view is a function of the target, the settings and what its
 * index lookups return; when all of those are the same values as for the last model, so is the
 * view, object for object, and so is its key. After a change, each unaffected proxy thus costs a
 * replay of its lookups rather than a view and a hash. Targets are remembered by object: pass the
 * same target object for the same proxy.
 */
export class GroupKeys {
  private last: Indexed | undefined;
  private readonly memos = new WeakMap<ProxyTarget, KeyMemo>();

  private index(model: MeshModel): ModelIndex {
    if (this.last?.model !== model) this.last = { model, idx: indexFor(model, this.last) };
    return this.last.idx;
  }

  /** `proxyView(model, target)`, from the index this object keeps up to date. */
  view(model: MeshModel, target: ProxyTarget): ProxyView {
    return viewOf(model, target, this.index(model));
  }

  /** The group key of `target` in `model`. */
  keyOf(model: MeshModel, target: ProxyTarget): GroupKey {
    const idx = this.index(model);
    const memo = this.memos.get(target);
    if (memo && memo.settings === model.settings && unchanged(idx, memo.reads))
      return { key: memo.key, computed: false };
    const reads: Read[] = [];
    const key = keyOfView(viewOf(model, target, idx, reads));
    this.memos.set(target, { settings: model.settings, reads, key });
    return { key, computed: true };
  }
}

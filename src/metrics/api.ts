/**
 * The SMI Traffic Metrics API (`metrics.smi-spec.io`, v1alpha1 and the v1alpha2 draft with
 * `trafficsplits`), answered from the {@link MetricsStore} and the mesh model. Pure apart from the
 * clock it is given: a path and a query in, a status and a JSON body out, so the admin server and
 * the aggregated API server share it.
 *
 * What the numbers are, per kind of resource:
 * - pods, and everything made of pods (namespaces, nodes, deployments, replicasets, statefulsets,
 *   daemonsets, jobs, replicationcontrollers): the traffic the resource's pods received, measured
 *   by their own sidecars (server side), summed over the pods;
 * - services: the calls that reached the service, counted by the client sidecars (client side);
 *   for a TrafficSplit's root service, the calls addressed to it, whichever backend took them;
 * - trafficsplits (v1alpha2): the calls client sidecars sent to the split's root service, before
 *   the split chose a backend; its edges are one item per backend, with `backend: {apex, name,
 *   weight}` and no edge resource, as the spec's example.
 *
 * Every item says which side measured it (`edge.side`, as the spec's final text has it). A
 * resource's own item is all it received: `direction: from`, `resource: {}`. Its edges
 * (`.../<name>/edges`) come from the client side: `direction: to` items are what the resource's
 * pods sent, per destination; `direction: from` items what others sent to it, per source. A sidecar
 * knows which Service it called, not which pod answered, so a destination is named in the
 * resource's own kind when every pod behind that Service belongs to one resource of that kind, and
 * as the Service otherwise. In v1alpha2 (the working draft, which adds routes) the edges of a
 * resource made of pods, or of a Service, also hold one item per route: what its pods received
 * through one HTTPRouteGroup match (`route: <group>/<match>`, `edge: {direction: from, side:
 * server}`, no edge resource), measured by their own sidecars; requests the access rules refused
 * took no route and are not in them. An A/B TrafficSplit's edges hold one item per match of the
 * split too (`side: client`): the calls its callers' sidecars sent through that match's route,
 * whichever backend took them.
 *
 * Pods are grouped into their controllers by their owner reference (a ReplicaSet, StatefulSet,
 * DaemonSet, Job or ReplicationController; a Deployment through its ReplicaSet, named
 * `<deployment>-<pod-template-hash>`), and into nodes by `spec.nodeName`. Pods written without
 * owner references (manifests in folder mode) are grouped by the names and labels Kubernetes gives
 * them: a Deployment's pods carry `pod-template-hash` and are named `<deployment>-<hash>-<suffix>`,
 * a StatefulSet's are `<name>-<ordinal>` with `statefulset.kubernetes.io/pod-name`, a Job's carry
 * `job-name`, a DaemonSet's `controller-revision-hash` and `pod-template-generation`.
 */
import type { MeshModel, WorkloadModel } from '../smi/model';
import { routeStatPrefix } from '../translate/names';
import { formatWindow, type MetricsStore, parseWindow, quantile, type Sample, type SeriesKey } from './store';

/** The API group. */
export const GROUP = 'metrics.smi-spec.io';
/** Versions served, oldest first. */
export const VERSIONS = ['v1alpha1', 'v1alpha2'] as const;
/** A served version. */
export type Version = (typeof VERSIONS)[number];

/** Default window when a request names none (as the spec's examples). */
export const DEFAULT_WINDOW_MS = 30_000;

/** A resource kind of the API: its plural (path segment) and Kubernetes kind. */
interface KindInfo {
  readonly plural: string;
  readonly kind: string;
  readonly namespaced: boolean;
  /** The versions that serve it. */
  readonly versions: readonly Version[];
}

/** Kinds served, in the order the resource list shows them. */
export const KINDS: readonly KindInfo[] = [
  { plural: 'namespaces', kind: 'Namespace', namespaced: false, versions: VERSIONS },
  { plural: 'nodes', kind: 'Node', namespaced: false, versions: VERSIONS },
  { plural: 'pods', kind: 'Pod', namespaced: true, versions: VERSIONS },
  { plural: 'replicationcontrollers', kind: 'ReplicationController', namespaced: true, versions: VERSIONS },
  { plural: 'deployments', kind: 'Deployment', namespaced: true, versions: VERSIONS },
  { plural: 'replicasets', kind: 'ReplicaSet', namespaced: true, versions: VERSIONS },
  { plural: 'statefulsets', kind: 'StatefulSet', namespaced: true, versions: VERSIONS },
  { plural: 'daemonsets', kind: 'DaemonSet', namespaced: true, versions: VERSIONS },
  { plural: 'jobs', kind: 'Job', namespaced: true, versions: VERSIONS },
  { plural: 'services', kind: 'Service', namespaced: true, versions: VERSIONS },
  { plural: 'trafficsplits', kind: 'TrafficSplit', namespaced: true, versions: ['v1alpha2'] },
];

/** A reference to a resource, as the API shows it. */
export interface ResourceRef {
  kind: string;
  namespace?: string;
  name?: string;
}

/** The spec's blank edge resource, `{}`: every source (or destination). */
export type EmptyRef = Record<string, never>;

/** Whether an edge names a resource (not the blank `{}`). */
export const namesResource = (r: ResourceRef | EmptyRef): r is ResourceRef => 'kind' in r;

/** One metric of a TrafficMetrics. */
export interface MetricValue {
  name: string;
  unit?: 'seconds';
  /** A Kubernetes quantity: `12m` seconds is 12 ms. */
  value: string;
}

/** A TrafficMetrics object. */
export interface TrafficMetrics {
  kind: 'TrafficMetrics';
  apiVersion: string;
  metadata: { name: string; namespace?: string; creationTimestamp: string };
  timestamp: string;
  window: string;
  resource: ResourceRef;
  /** `resource` is `{}` for all of the traffic (the spec's blank edge resource). */
  edge: { direction: 'to' | 'from'; side?: 'client' | 'server'; resource: ResourceRef | EmptyRef };
  /** v1alpha2: the route (`<group>/<match>`) the item is about; absent for the whole resource. */
  route?: string;
  /** v1alpha2, trafficsplit edges: the backend the item is about. */
  backend?: { apex: string; name: string; weight: number };
  metrics: MetricValue[];
}

/** What a request gets: an HTTP status and a JSON body. */
export interface ApiAnswer {
  status: number;
  body: unknown;
}

/** What the API reads besides the store. */
export interface ApiContext {
  model: MeshModel | undefined;
  store: MetricsStore;
  now: number;
  /** Whether the caller may read this namespace (`''` for cluster-wide lists). */
  visible: (namespace: string) => boolean;
}

/** Formats milliseconds as a quantity of seconds (`12m` = 12 ms, `1500u` = 1.5 ms). */
export function secondsQuantity(ms: number): string {
  if (Number.isInteger(ms)) return `${ms}m`;
  return `${Math.round(ms * 1000)}u`;
}

/** Parses a quantity of seconds as {@link secondsQuantity} writes it (and plain seconds) into ms. */
export function parseSecondsQuantity(q: string): number {
  const m = /^(-?\d+(?:\.\d+)?)(m|u|n)?$/.exec(q);
  if (!m) return Number.NaN;
  const v = Number(m[1]);
  return m[2] === 'm' ? v : m[2] === 'u' ? v / 1000 : m[2] === 'n' ? v / 1e6 : v * 1000;
}

/** The five metrics of a sample, latencies only when there are samples. */
export function metricsOf(s: Sample): MetricValue[] {
  const out: MetricValue[] = [];
  for (const [name, q] of [
    ['p99_response_latency', 0.99],
    ['p90_response_latency', 0.9],
    ['p50_response_latency', 0.5],
  ] as const) {
    const v = quantile(s, q);
    if (v !== undefined)
      out.push({ name, unit: 'seconds', value: secondsQuantity(Math.round(v * 1000) / 1000) });
  }
  out.push({ name: 'success_count', value: String(s.success) });
  out.push({ name: 'failure_count', value: String(s.failure) });
  return out;
}

// --- grouping pods into resources ------------------------------------------------------------

type Pod = WorkloadModel;

/** The name of the resource of `plural` that `pod` belongs to, if any. */
export function ownerOf(plural: string, pod: Pod): string | undefined {
  const l = pod.labels;
  const owner = pod.owner;
  if (owner) {
    const byOwner: Record<string, string> = {
      replicasets: 'ReplicaSet',
      statefulsets: 'StatefulSet',
      daemonsets: 'DaemonSet',
      jobs: 'Job',
      replicationcontrollers: 'ReplicationController',
    };
    if (byOwner[plural]) return owner.kind === byOwner[plural] ? owner.name : undefined;
    if (plural === 'deployments') {
      const h = l['pod-template-hash'];
      if (owner.kind !== 'ReplicaSet' || !h || !owner.name.endsWith(`-${h}`)) return undefined;
      return owner.name.slice(0, -h.length - 1);
    }
  }
  switch (plural) {
    case 'pods':
      return pod.name;
    case 'namespaces':
      return pod.namespace;
    case 'nodes':
      return pod.node;
    case 'deployments':
    case 'replicasets': {
      const h = l['pod-template-hash'];
      if (!h) return undefined;
      const m = new RegExp(`^(.+)-${h}-[a-z0-9]+$`).exec(pod.name);
      if (!m) return undefined;
      return plural === 'deployments' ? m[1] : `${m[1]}-${h}`;
    }
    case 'statefulsets': {
      if (l['statefulset.kubernetes.io/pod-name'] !== pod.name) return undefined;
      return /^(.+)-\d+$/.exec(pod.name)?.[1];
    }
    case 'jobs':
      return l['job-name'] ?? l['batch.kubernetes.io/job-name'];
    case 'daemonsets':
      if (!l['controller-revision-hash'] || !l['pod-template-generation']) return undefined;
      return /^(.+)-[a-z0-9]+$/.exec(pod.name)?.[1];
    default:
      return undefined;
  }
}

function podsOf(model: MeshModel | undefined): Pod[] {
  return (model?.workloads ?? []).filter((w) => w.kind === 'Pod');
}

const podKey = (p: { namespace: string; name: string }): string => `${p.namespace}/${p.name}`;

/** Resources of `plural` that exist (have pods, or are Services/TrafficSplits/Namespaces). */
function resourcesOf(plural: string, ctx: ApiContext): ResourceRef[] {
  const kind = KINDS.find((k) => k.plural === plural)!.kind;
  const m = ctx.model;
  const seen = new Map<string, ResourceRef>();
  const add = (namespace: string | undefined, name: string): void => {
    const r: ResourceRef = { kind, ...(namespace !== undefined ? { namespace } : {}), name };
    seen.set(`${namespace ?? ''}/${name}`, r);
  };
  if (plural === 'services') for (const s of m?.services ?? []) add(s.namespace, s.name);
  else if (plural === 'trafficsplits') for (const s of m?.splits ?? []) add(s.namespace, s.name);
  else if (plural === 'namespaces') {
    for (const n of m?.namespaces ?? []) add(undefined, n.name);
    for (const p of podsOf(m)) add(undefined, p.namespace);
  } else {
    const namespaced = KINDS.find((k) => k.plural === plural)!.namespaced;
    for (const p of podsOf(m)) {
      const o = ownerOf(plural, p);
      if (o) add(namespaced ? p.namespace : undefined, o);
    }
  }
  return [...seen.values()].sort((a, b) =>
    `${a.namespace ?? ''}/${a.name}`.localeCompare(`${b.namespace ?? ''}/${b.name}`),
  );
}

/** Pods (`<ns>/<name>`) that make up a resource of a pod-made kind. */
function membersOf(plural: string, r: ResourceRef, ctx: ApiContext): Set<string> {
  const out = new Set<string>();
  if (plural === 'services') {
    const s = ctx.model?.services.find((x) => x.namespace === r.namespace && x.name === r.name);
    for (const w of s?.workloads ?? []) if (w.kind === 'Pod') out.add(podKey(w));
    return out;
  }
  for (const p of podsOf(ctx.model)) {
    if (r.namespace !== undefined && p.namespace !== r.namespace) continue;
    if (ownerOf(plural, p) === r.name) out.add(podKey(p));
  }
  return out;
}

/** A destination Service named in `plural`'s kind when it maps to exactly one such resource. */
function destinationOf(plural: string, service: string, ctx: ApiContext): ResourceRef {
  const [namespace, name] = service.split('/') as [string, string];
  const asService: ResourceRef = { kind: 'Service', namespace, name };
  if (plural === 'services' || plural === 'trafficsplits') return asService;
  const s = ctx.model?.services.find((x) => x.namespace === namespace && x.name === name);
  const pods = podsOf(ctx.model);
  const owners = new Set<string>();
  for (const w of s?.workloads ?? []) {
    if (w.kind !== 'Pod') return asService;
    const p = pods.find((x) => x.namespace === w.namespace && x.name === w.name);
    const o = p ? ownerOf(plural, p) : undefined;
    if (!o) return asService;
    owners.add(o);
  }
  if (owners.size !== 1) return asService;
  return refIn(plural, namespace, [...owners][0]!);
}

/** The sources a client pod stands for in `plural`'s kind (services: each one the pod backs). */
function sourcesOf(plural: string, pod: string, ctx: ApiContext): ResourceRef[] {
  const [namespace, name] = pod.split('/') as [string, string];
  const p = podsOf(ctx.model).find((x) => x.namespace === namespace && x.name === name);
  const kind = KINDS.find((k) => k.plural === plural)!.kind;
  if (plural === 'services') {
    const svcs = p?.services ?? [];
    if (svcs.length === 0) return [{ kind: 'Pod', namespace, name }];
    return svcs.map((s) => ({ kind, namespace: s.namespace, name: s.name }));
  }
  const o = p ? ownerOf(plural, p) : plural === 'pods' ? name : undefined;
  if (!o) return [{ kind: 'Pod', namespace, name }];
  return [refIn(plural, namespace, o)];
}

/** A resource of `plural` named `name`, in `namespace` when the kind is namespaced. */
function refIn(plural: string, namespace: string, name: string): ResourceRef {
  const info = KINDS.find((k) => k.plural === plural)!;
  return info.namespaced ? { kind: info.kind, namespace, name } : { kind: info.kind, name };
}

const refKey = (r: ResourceRef): string => `${r.kind}/${r.namespace ?? ''}/${r.name ?? ''}`;

// --- label selectors --------------------------------------------------------------------------

type Requirement = (labels: Readonly<Record<string, string>>) => boolean;

/** One term of a label selector, as a LabelSelector's `matchExpressions` write it. */
interface SelectorTerm {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values: string[];
}

/**
 * Parses a label selector as Kubernetes writes them: `a=b`, `a==b`, `a!=b`, `a`, `!a`,
 * `a in (x,y)`, `a notin (x,y)`, joined by commas; throws naming the bad term.
 */
export function selectorTerms(text: string): SelectorTerm[] {
  const out: SelectorTerm[] = [];
  // Commas inside a set's parentheses do not split terms.
  for (const raw of text.match(/[^,(]+(?:\([^)]*\))?[^,]*/g) ?? []) {
    const t = raw.trim();
    if (t === '') continue;
    let m = /^([A-Za-z0-9./_-]+)\s*(==|=|!=)\s*([A-Za-z0-9._-]*)$/.exec(t);
    if (m) {
      out.push({ key: m[1]!, operator: m[2] === '!=' ? 'NotIn' : 'In', values: [m[3]!] });
      continue;
    }
    m = /^([A-Za-z0-9./_-]+)\s+(in|notin)\s*\(([^)]*)\)$/.exec(t);
    if (m) {
      const values = m[3]!
        .split(',')
        .map((v) => v.trim())
        .filter((v) => v !== '');
      out.push({ key: m[1]!, operator: m[2] === 'in' ? 'In' : 'NotIn', values });
      continue;
    }
    m = /^(!)?([A-Za-z0-9./_-]+)$/.exec(t);
    if (m) {
      out.push({ key: m[2]!, operator: m[1] ? 'DoesNotExist' : 'Exists', values: [] });
      continue;
    }
    throw new Error(
      `labelSelector term "${t}" is not key=value, key!=value, key in (a,b), key notin (a,b), key or !key`,
    );
  }
  return out;
}

/** The predicates of a label selector (see {@link selectorTerms}). */
export function parseSelector(text: string): Requirement[] {
  return selectorTerms(text).map(({ key, operator, values }) => {
    switch (operator) {
      case 'In':
        return (l) => key in l && values.includes(l[key]!);
      case 'NotIn':
        return (l) => !(key in l) || !values.includes(l[key]!);
      case 'Exists':
        return (l) => key in l;
      default:
        return (l) => !(key in l);
    }
  });
}

// --- answers ----------------------------------------------------------------------------------

function status(code: number, reason: string, message: string): ApiAnswer {
  return {
    status: code,
    body: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code },
  };
}

function resourceList(version: Version): unknown {
  return {
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion: `${GROUP}/${version}`,
    resources: KINDS.filter((k) => k.versions.includes(version)).flatMap((k) => [
      {
        name: k.plural,
        singularName: '',
        namespaced: k.namespaced,
        kind: 'TrafficMetrics',
        verbs: ['get', 'list'],
      },
      {
        name: `${k.plural}/edges`,
        singularName: '',
        namespaced: k.namespaced,
        kind: 'TrafficMetricsList',
        verbs: ['get'],
      },
    ]),
  };
}

/** The `APIGroup` document of `/apis/metrics.smi-spec.io`. */
export function apiGroup(): unknown {
  const versions = VERSIONS.map((v) => ({ groupVersion: `${GROUP}/${v}`, version: v }));
  return {
    kind: 'APIGroup',
    apiVersion: 'v1',
    name: GROUP,
    versions,
    preferredVersion: versions[versions.length - 1],
  };
}

interface Query {
  window?: string;
  labelSelector?: string;
}

/**
 * Answers a GET of `path` (under `/apis/metrics.smi-spec.io`, e.g. `/v1alpha1/namespaces/shop/pods`)
 * with `query`.
 */
export function answer(path: string, query: Query, ctx: ApiContext): ApiAnswer {
  const seg = path.split('/').filter((s) => s !== '');
  if (seg.length === 0) return { status: 200, body: apiGroup() };
  const version = seg[0] as Version;
  if (!VERSIONS.includes(version))
    return status(404, 'NotFound', `${GROUP} serves ${VERSIONS.join(' and ')}, not "${seg[0]}"`);
  if (seg.length === 1) return { status: 200, body: resourceList(version) };
  let windowMs = DEFAULT_WINDOW_MS;
  if (query.window !== undefined) {
    const w = parseWindow(query.window);
    if (w === undefined || w <= 0)
      return status(400, 'BadRequest', `window "${query.window}" is not a duration such as 30s, 1m or 5m`);
    windowMs = Math.min(w, ctx.store.retentionMs);
  }
  let selector: Requirement[] = [];
  try {
    selector = query.labelSelector ? parseSelector(query.labelSelector) : [];
  } catch (err) {
    return status(400, 'BadRequest', (err as Error).message);
  }
  // /<v>/<plural>[/<name>[/edges]] for cluster-wide kinds and lists across namespaces;
  // /<v>/namespaces/<ns>/<plural>[/<name>[/edges]] for namespaced ones.
  let namespace: string | undefined;
  let rest = seg.slice(1);
  if (rest[0] === 'namespaces' && rest.length >= 3 && rest[2] !== 'edges') {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  const [plural, name, sub, ...extra] = rest as [string, string | undefined, string | undefined];
  const info = KINDS.find((k) => k.plural === plural && k.versions.includes(version));
  if (!info || extra.length > 0 || (sub !== undefined && sub !== 'edges'))
    return status(404, 'NotFound', `no such resource: ${GROUP}/${version} ${seg.slice(1).join('/')}`);
  // A cluster-scoped kind under a namespace's path is no resource: answering it would show a
  // node's figures, summed over every namespace, to a caller allowed in that one namespace.
  if (!info.namespaced && namespace !== undefined)
    return status(
      404,
      'NotFound',
      `${plural} are cluster-scoped: GET /apis/${GROUP}/${version}/${plural}${name ? `/${name}` : ''}`,
    );
  if (info.namespaced && name !== undefined && namespace === undefined)
    return status(
      404,
      'NotFound',
      `${plural} are namespaced: GET /apis/${GROUP}/${version}/namespaces/<ns>/${plural}/${name}`,
    );
  const api = `${GROUP}/${version}`;
  const req = { info, api, windowMs, ctx };
  if (name === undefined) {
    // A list across namespaces shows the ones the caller may read, as the debug views do.
    if (namespace !== undefined && !ctx.visible(namespace))
      return status(403, 'Forbidden', `cannot list ${plural} in namespace ${namespace}`);
    const items = resourcesOf(plural, ctx)
      .filter((r) => namespace === undefined || r.namespace === namespace)
      .filter((r) => visibleRef(ctx, r))
      .filter((r) => selector.length === 0 || matchesSelector(plural, r, selector, ctx))
      .map((r) => itemOf(req, r));
    return {
      status: 200,
      body: {
        kind: 'TrafficMetricsList',
        apiVersion: api,
        metadata: {},
        resource: { kind: info.kind, ...(namespace ? { namespace } : {}) },
        ...(query.labelSelector ? { selector: selectorObject(query.labelSelector) } : {}),
        items,
      },
    };
  }
  const ns = info.namespaced ? namespace : undefined;
  if (!visibleRef(ctx, { kind: info.kind, ...(ns ? { namespace: ns } : {}), name }))
    return status(403, 'Forbidden', `cannot get ${plural} ${ns ? `${ns}/` : ''}${name}`);
  const r = resourcesOf(plural, ctx).find((x) => x.name === name && x.namespace === ns);
  if (!r)
    return status(
      404,
      'NotFound',
      `${info.kind} ${ns ? `${ns}/` : ''}${name} is not in the mesh (no such ${info.kind.toLowerCase()}, or none of its pods are known)`,
    );
  if (sub === undefined) return { status: 200, body: itemOf(req, r) };
  const items = edgesOf(req, r).filter(
    (i) => !namesResource(i.edge.resource) || visibleRef(ctx, i.edge.resource),
  );
  return {
    status: 200,
    body: { kind: 'TrafficMetricsList', apiVersion: api, metadata: {}, resource: r, items },
  };
}

/**
 * Whether the caller may read a resource: its namespace, a namespace itself, and for nodes (whose
 * figures sum pods of every namespace) all namespaces (`''`).
 */
function visibleRef(ctx: ApiContext, r: ResourceRef): boolean {
  if (r.kind === 'Namespace') return ctx.visible(r.name ?? '');
  return ctx.visible(r.namespace ?? '');
}

/** The selector as a LabelSelector (equalities as `matchLabels`, the rest as `matchExpressions`). */
function selectorObject(text: string): unknown {
  const matchLabels: Record<string, string> = {};
  const matchExpressions: SelectorTerm[] = [];
  for (const t of selectorTerms(text)) {
    if (t.operator === 'In' && t.values.length === 1 && !(t.key in matchLabels))
      matchLabels[t.key] = t.values[0]!;
    else matchExpressions.push(t);
  }
  return {
    ...(Object.keys(matchLabels).length > 0 ? { matchLabels } : {}),
    ...(matchExpressions.length > 0 ? { matchExpressions } : {}),
  };
}

/**
 * Whether a resource's own labels satisfy the selector: a namespace's, a Service's or a
 * TrafficSplit's labels, a node's pods' (Weft does not read Node objects), and for the kinds made of
 * pods, any of its pods' labels (a controller's pods carry its template's labels).
 */
function matchesSelector(plural: string, r: ResourceRef, sel: Requirement[], ctx: ApiContext): boolean {
  if (plural === 'services' || plural === 'trafficsplits') {
    // Kept out of the service and split models, which group keys hash (MeshModel.objectLabels).
    const byName =
      plural === 'services' ? ctx.model?.objectLabels.services : ctx.model?.objectLabels.trafficSplits;
    return sel.every((f) => f(byName?.[`${r.namespace}/${r.name}`] ?? {}));
  }
  if (plural === 'namespaces') {
    const labels = ctx.model?.namespaces.find((n) => n.name === r.name)?.labels ?? {};
    return sel.every((f) => f(labels));
  }
  const members = membersOf(plural, r, ctx);
  return podsOf(ctx.model).some((p) => members.has(podKey(p)) && sel.every((f) => f(p.labels)));
}

interface Req {
  info: KindInfo;
  api: string;
  windowMs: number;
  ctx: ApiContext;
}

function base(req: Req, r: ResourceRef, edge: TrafficMetrics['edge'], s: Sample): TrafficMetrics {
  const now = new Date(req.ctx.now).toISOString();
  return {
    kind: 'TrafficMetrics',
    apiVersion: req.api,
    metadata: {
      name: r.name ?? '',
      ...(r.namespace ? { namespace: r.namespace } : {}),
      creationTimestamp: now,
    },
    timestamp: now,
    window: formatWindow(req.windowMs),
    resource: r,
    edge,
    metrics: metricsOf(s),
  };
}

/**
 * The resource's own item: all the traffic it received, as the spec writes it (`direction: from`,
 * no edge resource), on the side that measured it.
 */
function itemOf(req: Req, r: ResourceRef): TrafficMetrics {
  const { ctx } = req;
  const plural = req.info.plural;
  let match: (k: SeriesKey) => boolean;
  if (plural === 'services') {
    const svc = `${r.namespace}/${r.name}`;
    // A split's root is dialed but its own cluster is not used: count what was addressed to it.
    const root = ctx.model?.splits.some((s) => s.namespace === r.namespace && s.rootService === r.name);
    const kind = root ? 'apex' : 'out';
    match = (k) => k.kind === kind && k.service === svc;
  } else if (plural === 'trafficsplits') {
    const split = ctx.model?.splits.find((s) => s.namespace === r.namespace && s.name === r.name);
    const root = `${r.namespace}/${split?.rootService ?? ''}`;
    match = (k) => k.kind === 'apex' && k.service === root;
  } else {
    const members = membersOf(plural, r, ctx);
    match = (k) => k.kind === 'in' && members.has(k.pod);
  }
  const side = plural === 'services' || plural === 'trafficsplits' ? 'client' : 'server';
  return base(req, r, { direction: 'from', side, resource: {} }, ctx.store.sum(match, req.windowMs, ctx.now));
}

/**
 * The route items of a resource (v1alpha2), one per route that counted traffic in the window: the
 * inbound routes its pods' sidecars counted (server side), or for a TrafficSplit the match routes
 * its callers' sidecars counted (client side). A route is named `<group>/<match>` by finding its
 * stat prefix among the namespace's HTTPRouteGroups (the prefix itself when none has it, e.g. a
 * group deleted since).
 */
function routesOf(req: Req, r: ResourceRef): TrafficMetrics[] {
  const { ctx } = req;
  let series: (k: SeriesKey) => boolean;
  let side: 'client' | 'server';
  if (req.info.plural === 'trafficsplits') {
    const split = ctx.model?.splits.find((s) => s.namespace === r.namespace && s.name === r.name);
    const root = `${r.namespace}/${split?.rootService ?? ''}`;
    series = (k) => k.kind === 'splitroute' && k.service === root;
    side = 'client';
  } else {
    const members = membersOf(req.info.plural, r, ctx);
    series = (k) => k.kind === 'route' && members.has(k.pod);
    side = 'server';
  }
  const byName = new Map<string, Set<string>>();
  for (const k of ctx.store.keys(req.windowMs, ctx.now)) {
    if (!series(k) || k.route === undefined) continue;
    const ns = k.kind === 'splitroute' ? k.service.split('/')[0]! : k.pod.split('/')[0]!;
    const name = routeName(ctx.model, ns, k.route);
    const prefixes = byName.get(name) ?? new Set<string>();
    prefixes.add(k.route);
    byName.set(name, prefixes);
  }
  return [...byName.keys()].sort().map((route) => {
    const prefixes = byName.get(route)!;
    const s = ctx.store.sum((k) => series(k) && prefixes.has(k.route ?? ''), req.windowMs, ctx.now);
    return { ...base(req, r, { direction: 'from', side, resource: {} }, s), route };
  });
}

/** `<group>/<match>` of a route's stat prefix in `namespace`, or the prefix itself. */
function routeName(model: MeshModel | undefined, namespace: string, prefix: string): string {
  for (const g of model?.httpRouteGroups ?? []) {
    if (g.namespace !== namespace) continue;
    for (const m of g.matches) if (routeStatPrefix(g.name, m.name) === prefix) return `${g.name}/${m.name}`;
  }
  return prefix;
}

function edgesOf(req: Req, r: ResourceRef): TrafficMetrics[] {
  const { ctx } = req;
  const plural = req.info.plural;
  const keys = ctx.store.keys(req.windowMs, ctx.now).filter((k) => k.kind === 'out');
  const out: TrafficMetrics[] = [];
  if (plural === 'trafficsplits') {
    const split = ctx.model?.splits.find((s) => s.namespace === r.namespace && s.name === r.name);
    for (const b of split?.backends ?? []) {
      const svc = `${r.namespace}/${b.service}`;
      const s = ctx.store.sum((k) => k.kind === 'out' && k.service === svc, req.windowMs, ctx.now);
      out.push({
        ...base(
          req,
          r,
          // As the spec's example: the backend is named in `backend`, not as an edge resource.
          { direction: 'from', side: 'client', resource: {} },
          s,
        ),
        backend: { apex: split!.rootService, name: b.service, weight: b.weight },
      });
    }
    // An A/B split's matches, as its callers counted them (trafficsplits are v1alpha2 only).
    return [...out, ...routesOf(req, r)];
  }
  const self = refKey(r);
  const members = membersOf(plural, r, ctx);
  // to: what the resource's pods sent, per destination.
  const to = new Map<string, { ref: ResourceRef; keys: Set<string> }>();
  // from: what others sent to the resource, per source.
  const from = new Map<string, { ref: ResourceRef; keys: Set<string> }>();
  const keyId = (k: SeriesKey): string => `${k.pod}|${k.service}`;
  for (const k of keys) {
    const d = destinationOf(plural, k.service, ctx);
    if (members.has(k.pod)) {
      const e = to.get(refKey(d)) ?? { ref: d, keys: new Set() };
      e.keys.add(keyId(k));
      to.set(refKey(d), e);
    }
    if (refKey(d) === self)
      for (const src of sourcesOf(plural, k.pod, ctx)) {
        const e = from.get(refKey(src)) ?? { ref: src, keys: new Set() };
        e.keys.add(keyId(k));
        from.set(refKey(src), e);
      }
  }
  for (const [dir, groups] of [
    ['to', to],
    ['from', from],
  ] as const)
    for (const id of [...groups.keys()].sort()) {
      const g = groups.get(id)!;
      const s = ctx.store.sum((k) => k.kind === 'out' && g.keys.has(keyId(k)), req.windowMs, ctx.now);
      out.push(base(req, r, { direction: dir, side: 'client', resource: g.ref }, s));
    }
  // Routes are the working draft's (v1alpha2); v1alpha1 answers keep to resources and edges.
  if (req.api.endsWith('/v1alpha2')) out.push(...routesOf(req, r));
  return out;
}

/**
 * `buildModel`: from raw Kubernetes objects to a resolved, sorted {@link MeshModel} plus
 * conditions.
 *
 * Pure: no I/O, no clock, no randomness, inputs never mutated, and the result depends only on the
 * set of inputs, not their order. Best effort: a bad object yields a condition and is left out;
 * everything else still builds.
 */

import { condition, type Subject, sortConditions } from './conditions';
import {
  type AccessModel,
  type AccessRule,
  type AppProtocol,
  type BuildResult,
  type Condition,
  DEFAULT_CLUSTER_DOMAIN,
  DEFAULT_TRUST_DOMAIN,
  type EndpointModel,
  type EndpointPortModel,
  type HttpMatch,
  type HttpRouteGroupModel,
  type IdentityModel,
  identityOf,
  type L4RouteModel,
  type MeshModel,
  type MeshSettings,
  type NamespaceModel,
  type ServiceModel,
  type ServicePortModel,
  type ServiceRef,
  type SplitBackendModel,
  type SplitModel,
  type WorkloadModel,
  type WorkloadRef,
} from './model';
import { displayName, nameProblem } from './names';
import {
  CLUSTER_SCOPED_KINDS,
  type Deployment,
  type EndpointSlice,
  fieldPath,
  type HttpRouteGroup,
  isProblem,
  type L4Route,
  type MeshConfig,
  type Namespace,
  type Normalized,
  normalizeObject,
  type Pod,
  type Service,
  type ServiceAccount,
  type Split,
  servedVersions,
  type TrafficTarget,
} from './normalize';
import { fitWeights, MAX_TOTAL_WEIGHT, RESCALED_TOTAL } from './quantity';
import { show } from './schemas';

// ---------------------------------------------------------------- small pure helpers

function cmp(a: string | number, b: string | number): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function key(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

/** `<namespace>/<name>` of a model object. */
function nsName(x: { readonly namespace: string; readonly name: string }): string {
  return key(x.namespace, x.name);
}

function subjectOf(o: Normalized): Subject {
  return { kind: o.kind, namespace: o.meta.namespace, name: o.meta.name };
}

function isRecord(x: unknown): x is Readonly<Record<string, unknown>> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** Whether every key of `selector` is in `labels` with the same value. */
function selects(
  selector: Readonly<Record<string, string>>,
  labels: Readonly<Record<string, string>>,
): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

function compareRefs(a: WorkloadRef, b: WorkloadRef): number {
  return cmp(a.namespace, b.namespace) || cmp(a.name, b.name) || cmp(a.kind, b.kind);
}

function uniqueRefs(refs: readonly WorkloadRef[]): WorkloadRef[] {
  const sorted = [...refs].sort(compareRefs);
  return sorted.filter((r, i) => i === 0 || compareRefs(r, sorted[i - 1]!) !== 0);
}

/**
 * Items of one namespace indexed by label, so a selector looks only at items that have at least
 * one of its labels instead of at every item.
 */
interface LabelIndex<T> {
  readonly byLabel: ReadonlyMap<string, readonly T[]>;
  readonly labelsOf: (item: T) => Readonly<Record<string, string>>;
}

function labelIndex<T>(
  items: readonly T[],
  labelsOf: (item: T) => Readonly<Record<string, string>>,
): LabelIndex<T> {
  const byLabel = new Map<string, T[]>();
  for (const item of items) {
    for (const [k, v] of Object.entries(labelsOf(item))) {
      const key = `${k}=${v}`;
      const list = byLabel.get(key);
      if (list) list.push(item);
      else byLabel.set(key, [item]);
    }
  }
  return { byLabel, labelsOf };
}

/**
 * The items a non-empty selector selects, in index order: candidates come from the selector's
 * rarest label, then every label is checked.
 */
function selectFrom<T>(index: LabelIndex<T> | undefined, selector: Readonly<Record<string, string>>): T[] {
  if (!index) return [];
  let candidates: readonly T[] | undefined;
  for (const [k, v] of Object.entries(selector)) {
    const list = index.byLabel.get(`${k}=${v}`) ?? [];
    if (candidates === undefined || list.length < candidates.length) candidates = list;
  }
  return (candidates ?? []).filter((item) => selects(selector, index.labelsOf(item)));
}

/** Per-namespace label indexes. */
function labelIndexes<T>(
  items: readonly T[],
  namespaceOf: (item: T) => string,
  labelsOf: (item: T) => Readonly<Record<string, string>>,
): Map<string, LabelIndex<T>> {
  const out = new Map<string, LabelIndex<T>>();
  for (const [ns, list] of groupBy(items, namespaceOf)) out.set(ns, labelIndex(list, labelsOf));
  return out;
}

/** Groups items by a key, keeping their order within each group. */
function groupBy<T>(items: readonly T[], keyOf: (item: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) {
    const k = keyOf(item);
    const list = out.get(k);
    if (list) list.push(item);
    else out.set(k, [item]);
  }
  return out;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** JSON with object keys sorted, for content-based tie-breaks that do not depend on input order. */
function canonicalJson(value: unknown): string {
  if (value instanceof Date) return JSON.stringify(value.toISOString());
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (isRecord(value)) {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** Orders API versions so newer sorts higher: v1 > v1beta2 > v1beta1 > v1alpha4 > ... */
function versionRank(apiVersion: string): number {
  const m = /v(\d+)(?:(alpha|beta)(\d+))?$/.exec(apiVersion);
  if (!m) return 0;
  const level = m[2] === undefined ? 3_000 : m[2] === 'beta' ? 2_000 + Number(m[3]) : 1_000 + Number(m[3]);
  return Number(m[1]) * 10_000 + level;
}

/**
 * A resourceVersion as a number for choosing between copies of one object. Kubernetes calls it
 * opaque, but the API server writes decimal counters; anything else ranks lowest.
 */
function resourceVersionRank(o: Normalized): number {
  const rv = o.meta.resourceVersion;
  return rv !== null && /^\d{1,15}$/.test(rv) ? Number(rv) : -1;
}

/**
 * Says which of several copies of one object is used, by what actually decided it (the copies are
 * sorted best first): the newest API version, else the highest resourceVersion, else content. A
 * copy is never named by a version or resourceVersion it shares with the copies it beat.
 */
function whichCopy(list: readonly { object: Normalized; raw: unknown }[]): string {
  const winner = list[0]!;
  const second = list[1]!;
  const version = winner.object.apiVersion;
  const rv = winner.object.meta.resourceVersion;
  if (versionRank(version) > versionRank(second.object.apiVersion)) {
    return `the ${version} copy${rv ? ` with resourceVersion ${rv}` : ''} (the newest version)`;
  }
  const all = list.every((c) => c.object.apiVersion === version) ? 'all' : 'the newest';
  if (resourceVersionRank(winner.object) > resourceVersionRank(second.object)) {
    return `${all} copies are ${version}; the one with resourceVersion ${rv} (the newest)`;
  }
  if (canonicalJson(winner.raw) === canonicalJson(second.raw)) {
    return `${all} copies are ${version} and the same; either one`;
  }
  return `${all} copies are ${version} with nothing to tell which is newer; the one whose content sorts first`;
}

/** Age order: older first; objects without a timestamp count as newest; ties broken by name. */
function compareAge(a: Normalized, b: Normalized): number {
  const ta = a.meta.creationTimestamp ?? Number.POSITIVE_INFINITY;
  const tb = b.meta.creationTimestamp ?? Number.POSITIVE_INFINITY;
  return ta !== tb ? (ta < tb ? -1 : 1) : cmp(a.meta.name, b.meta.name);
}

/**
 * The end of a "not found" sentence: `is not a <Kind> in namespace <ns>`, or, when an object of that
 * name was given but rejected, a pointer to that object's own condition.
 */
function notFound(rejected: ReadonlySet<string>, kind: string, namespace: string, name: string): string {
  return rejected.has(`${kind}/${namespace}/${name}`)
    ? `names ${kind} ${namespace}/${name}, which was rejected (see its own condition)`
    : `is not ${article(kind)} ${kind} in namespace ${namespace}`;
}

/** `a` or `an` before a kind name, by how it is read aloud (`an HTTPRouteGroup`, `a UDPRoute`). */
function article(kind: string): string {
  return /^(HTTP|[AEIO])/.test(kind) ? 'an' : 'a';
}

/** The fix that goes with {@link notFound}. */
function createOrFix(rejected: ReadonlySet<string>, kind: string, namespace: string, name: string): string {
  return rejected.has(`${kind}/${namespace}/${name}`)
    ? `fix ${kind} ${namespace}/${name}`
    : `create the ${kind} or fix the name`;
}

// ---------------------------------------------------------------- reading objects

interface Candidate {
  readonly object: Normalized;
  /** The raw input; its canonical JSON is the last tie-break between duplicates. */
  readonly raw: unknown;
}

/**
 * Expands `List` objects (`kind: List`, or `<Kind>List` from the API, whose items carry no kind)
 * into their items, without touching the inputs.
 */
function expandLists(objects: readonly unknown[]): unknown[] {
  const out: unknown[] = [];
  const visit = (raw: unknown, depth: number): void => {
    if (
      isRecord(raw) &&
      typeof raw.kind === 'string' &&
      raw.kind.endsWith('List') &&
      Array.isArray(raw.items) &&
      depth < 4
    ) {
      const itemKind = raw.kind === 'List' ? undefined : raw.kind.slice(0, -'List'.length);
      for (const item of raw.items) {
        if (itemKind !== undefined && isRecord(item) && item.kind === undefined) {
          visit({ apiVersion: raw.apiVersion, kind: itemKind, ...item }, depth + 1);
        } else {
          visit(item, depth + 1);
        }
      }
      return;
    }
    out.push(raw);
  };
  for (const raw of objects) visit(raw, 0);
  return out;
}

/** Identity of a raw object as far as it can be told, for conditions about objects that fail early. */
function rawIdentity(raw: Readonly<Record<string, unknown>>): {
  kind: string;
  namespace: string;
  name: string;
} {
  const kind = typeof raw.kind === 'string' && raw.kind !== '' ? raw.kind : 'Unknown';
  const metadata = isRecord(raw.metadata) ? raw.metadata : {};
  const name = typeof metadata.name === 'string' ? metadata.name : '';
  const ns =
    typeof metadata.namespace === 'string' && metadata.namespace !== '' ? metadata.namespace : 'default';
  return { kind, namespace: CLUSTER_SCOPED_KINDS.has(kind) ? '' : ns, name };
}

/** What reading one input gave: a candidate or nothing, and what was reported about it. */
interface ReadOutcome {
  readonly candidate: Candidate | null;
  /** `<kind>/<namespace>/<name>` of the candidate, the key duplicates share. */
  readonly key: string;
  readonly conditions: readonly Condition[];
  /** `<kind>/<namespace>/<name>` when the object was rejected, so references to it can say so. */
  readonly rejected: string | null;
}

/**
 * What reading each input object gave. Sources hand the compiler the same object again while it
 * is unchanged (informers replace an object on change and never mutate it; the folder source keeps
 * each file's parse), so a recompile after one change validates one object, not all of them.
 * Inputs must therefore not be mutated after they are passed in, which `buildModel` promises anyway.
 */
const readCache = new WeakMap<object, ReadOutcome>();

function readCached(raw: unknown): ReadOutcome {
  const known = isRecord(raw) ? readCache.get(raw) : undefined;
  if (known !== undefined) return known;
  const conditions: Condition[] = [];
  const rejected = new Set<string>();
  const candidate = readOne(raw, conditions, rejected);
  const outcome: ReadOutcome = {
    candidate,
    key: candidate
      ? `${candidate.object.kind}/${candidate.object.meta.namespace}/${candidate.object.meta.name}`
      : '',
    conditions,
    rejected: rejected.size > 0 ? [...rejected][0]! : null,
  };
  if (isRecord(raw)) readCache.set(raw, outcome);
  return outcome;
}

function readOne(raw: unknown, conditions: Condition[], rejected: Set<string>): Candidate | null {
  if (!isRecord(raw)) {
    conditions.push({
      object: 'Unknown//',
      type: 'Accepted',
      status: 'False',
      severity: 'Error',
      reason: 'InvalidObject',
      message: `An input is ${show(raw)} where a Kubernetes object (a mapping with apiVersion, kind and metadata.name) was expected; remove it or fix it`,
    });
    return null;
  }
  const rawId = rawIdentity(raw);
  // Conditions name the object with control characters escaped and huge names cut, so a hostile
  // name can neither forge text in a log nor blow up every message that mentions it.
  const id = {
    kind: displayName(rawId.kind),
    namespace: displayName(rawId.namespace),
    name: displayName(rawId.name),
  };
  const missing =
    typeof raw.apiVersion !== 'string' || raw.apiVersion === ''
      ? 'apiVersion'
      : typeof raw.kind !== 'string' || raw.kind === ''
        ? 'kind'
        : id.name === ''
          ? 'metadata.name'
          : null;
  if (missing !== null) {
    conditions.push(
      condition(
        id,
        'InvalidObject',
        `${missing} is missing or empty (got ${show(missing === 'metadata.name' ? (isRecord(raw.metadata) ? raw.metadata.name : undefined) : raw[missing])}); every object needs apiVersion, kind and metadata.name`,
        missing,
      ),
    );
    return null;
  }
  const apiVersion = raw.apiVersion as string;
  const kind = raw.kind as string;
  const result = normalizeObject(raw, apiVersion, kind);
  if (result === null || isProblem(result)) rejected.add(`${kind}/${rawId.namespace}/${rawId.name}`);
  if (result === null) {
    const versions = servedVersions(kind);
    conditions.push(
      versions.length > 0
        ? condition(
            id,
            'UnsupportedVersion',
            `apiVersion ${displayName(apiVersion)} is not served for ${kind}; the object is left out; use ${versions.length === 1 ? versions[0] : `one of ${versions.join(', ')}`}`,
            'apiVersion',
          )
        : condition(
            id,
            'UnknownKind',
            `kind ${id.kind} (${displayName(apiVersion)}) is not read by Weft and is ignored; remove it from the input if it was meant for the mesh`,
            'kind',
          ),
    );
    return null;
  }
  const badName = nameProblem(kind, rawId.name, isRecord(raw.metadata) ? raw.metadata.namespace : undefined);
  if (badName !== null) {
    rejected.add(`${kind}/${rawId.namespace}/${rawId.name}`);
    conditions.push(
      condition(
        id,
        'InvalidName',
        `${badName.field} ${badName.problem}; the object is left out; rename it`,
        badName.field,
      ),
    );
    return null;
  }
  if (isProblem(result)) {
    const where = result.field === '' ? 'the object' : result.field;
    const more = result.more > 0 ? ` (and ${plural(result.more, 'more problem')})` : '';
    conditions.push(
      condition(
        id,
        'InvalidSpec',
        `${where} ${result.problem}${more}; the object is left out; fix it to match ${apiVersion} ${kind}`,
        result.field === '' ? undefined : result.field,
      ),
    );
    return null;
  }
  return { object: result, raw };
}

/** Reads, normalizes and de-duplicates every input. Duplicates: newest apiVersion, then highest resourceVersion, then content order. */
function readObjects(
  objects: readonly unknown[],
  conditions: Condition[],
  rejected: Set<string>,
): Normalized[] {
  const groups = new Map<string, Candidate[]>();
  for (const raw of expandLists(objects)) {
    const read = readCached(raw);
    for (const c of read.conditions) conditions.push(c);
    if (read.rejected !== null) rejected.add(read.rejected);
    const c = read.candidate;
    if (c === null) continue;
    const list = groups.get(read.key);
    if (list) list.push(c);
    else groups.set(read.key, [c]);
  }
  const out: Normalized[] = [];
  for (const list of groups.values()) {
    if (list.length > 1) {
      // Only duplicates need the content tie-break, so canonical JSON is computed only for them.
      const canonical = new Map(list.map((c) => [c, canonicalJson(c.raw)]));
      list.sort(
        (a, b) =>
          versionRank(b.object.apiVersion) - versionRank(a.object.apiVersion) ||
          resourceVersionRank(b.object) - resourceVersionRank(a.object) ||
          cmp(canonical.get(a)!, canonical.get(b)!),
      );
    }
    const winner = list[0]!;
    if (list.length > 1) {
      const versions = list.map((c) => c.object.apiVersion).sort();
      conditions.push(
        condition(
          subjectOf(winner.object),
          'DuplicateObject',
          `given ${list.length} times (${versions.join(', ')}); ${whichCopy(list)} is used; remove the other copies`,
        ),
      );
    }
    out.push(winner.object);
  }
  return out;
}

// ---------------------------------------------------------------- settings

function resolveSettings(configs: readonly MeshConfig[], conditions: Condition[]): MeshSettings {
  const sorted = [...configs].sort(compareAge);
  const winner = sorted[0];
  for (const loser of sorted.slice(1)) {
    conditions.push(
      condition(
        subjectOf(loser),
        'MeshConfigConflict',
        `MeshConfig ${winner!.meta.name} is older (or as old and first by name) and is the one used; a mesh has one MeshConfig; delete this one or merge its settings into ${winner!.meta.name}`,
      ),
    );
  }
  return {
    trustDomain: winner?.trustDomain ?? DEFAULT_TRUST_DOMAIN,
    permissive: winner?.permissive ?? false,
    clusterDomain: winner?.clusterDomain ?? DEFAULT_CLUSTER_DOMAIN,
    outboundPassthrough: winner?.outboundPassthrough ?? true,
  };
}

// ---------------------------------------------------------------- inputs by kind

interface Inputs {
  readonly namespaces: Namespace[];
  readonly serviceAccounts: ServiceAccount[];
  readonly services: Service[];
  readonly slices: EndpointSlice[];
  readonly pods: Pod[];
  readonly deployments: Deployment[];
  readonly splits: Split[];
  readonly targets: TrafficTarget[];
  readonly httpRouteGroups: HttpRouteGroup[];
  readonly l4Routes: L4Route[];
  readonly meshConfigs: MeshConfig[];
}

/** Per kind, the set of objects a list was sorted from, to tell whether the kind changed. */
type Members = { readonly [K in keyof Inputs]: ReadonlySet<Normalized> };

function compareObjects(a: Normalized, b: Normalized): number {
  return cmp(a.kind, b.kind) || cmp(a.meta.namespace, b.meta.namespace) || cmp(a.meta.name, b.meta.name);
}

/**
 * Sorts objects into per-kind lists in content order, so every later loop visits them in an order
 * that does not depend on input order. A kind whose objects are the same as in `prev` (same
 * references, in any order) keeps `prev`'s list itself, which is what tells later stages that
 * nothing of that kind changed.
 */
function byKind(
  objects: readonly Normalized[],
  prev: { readonly inputs: Inputs; readonly members: Members } | undefined,
): { inputs: Inputs; members: Members } {
  const fresh: Inputs = {
    namespaces: [],
    serviceAccounts: [],
    services: [],
    slices: [],
    pods: [],
    deployments: [],
    splits: [],
    targets: [],
    httpRouteGroups: [],
    l4Routes: [],
    meshConfigs: [],
  };
  for (const o of objects) {
    switch (o.kind) {
      case 'Namespace':
        fresh.namespaces.push(o);
        break;
      case 'ServiceAccount':
        fresh.serviceAccounts.push(o);
        break;
      case 'Service':
        fresh.services.push(o);
        break;
      case 'EndpointSlice':
        fresh.slices.push(o);
        break;
      case 'Pod':
        fresh.pods.push(o);
        break;
      case 'Deployment':
        fresh.deployments.push(o);
        break;
      case 'TrafficSplit':
        fresh.splits.push(o);
        break;
      case 'TrafficTarget':
        fresh.targets.push(o);
        break;
      case 'HTTPRouteGroup':
        fresh.httpRouteGroups.push(o);
        break;
      case 'TCPRoute':
      case 'UDPRoute':
        fresh.l4Routes.push(o);
        break;
      case 'MeshConfig':
        fresh.meshConfigs.push(o);
        break;
    }
  }
  const members: Partial<Record<keyof Inputs, ReadonlySet<Normalized>>> = {};
  const keep = <K extends keyof Inputs>(k: K): Inputs[K] => {
    const list: Normalized[] = fresh[k];
    const before = prev?.members[k];
    if (prev && before && list.length === before.size && list.every((o) => before.has(o))) {
      members[k] = before;
      return prev.inputs[k];
    }
    members[k] = new Set(list);
    list.sort(compareObjects);
    return fresh[k];
  };
  const inputs: Inputs = {
    namespaces: keep('namespaces'),
    serviceAccounts: keep('serviceAccounts'),
    services: keep('services'),
    slices: keep('slices'),
    pods: keep('pods'),
    deployments: keep('deployments'),
    splits: keep('splits'),
    targets: keep('targets'),
    httpRouteGroups: keep('httpRouteGroups'),
    l4Routes: keep('l4Routes'),
    meshConfigs: keep('meshConfigs'),
  };
  return { inputs, members: members as Members };
}

// ---------------------------------------------------------------- workloads

/** A workload before the services it backs are known. */
interface WorkloadDraft {
  readonly ref: WorkloadRef;
  readonly labels: Readonly<Record<string, string>>;
  readonly serviceAccount: string;
  readonly ips: readonly string[];
}

/**
 * Pods are workloads. A Deployment stands for its pods when no Pod in its namespace matches its
 * `matchLabels` (its template labels when it has none), so manifests without Pods still give
 * workloads; once Pods appear they take over.
 */
function workloadDrafts(pods: readonly Pod[], deployments: readonly Deployment[]): WorkloadDraft[] {
  const podsByNamespace = groupBy(pods, (p) => p.meta.namespace);
  const drafts: WorkloadDraft[] = pods.map((p) => ({
    ref: { kind: 'Pod', namespace: p.meta.namespace, name: p.meta.name },
    labels: p.meta.labels,
    serviceAccount: p.serviceAccount,
    ips: p.ips,
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

// ---------------------------------------------------------------- services

/** The application protocol of a port; the rule is documented on {@link AppProtocol}. */
export function classifyPort(protocol: 'TCP' | 'UDP', name: string, appProtocol: string | null): AppProtocol {
  if (protocol === 'UDP') return 'udp';
  if (appProtocol !== null) {
    const value = appProtocol.toLowerCase();
    if (value === 'http' || value === 'http2' || value === 'h2c' || value === 'kubernetes.io/h2c')
      return 'http';
    if (value === 'grpc') return 'grpc';
    return 'tcp';
  }
  const prefix = name.toLowerCase().split('-')[0];
  if (prefix === 'http' || prefix === 'http2' || prefix === 'h2c') return 'http';
  if (prefix === 'grpc') return 'grpc';
  return 'tcp';
}

/** Endpoint being assembled: ports keyed by `name/protocol`. */
interface EndpointDraft {
  ready: boolean;
  readonly ports: Map<string, EndpointPortModel>;
  workload: WorkloadRef | null;
}

function finishEndpoints(drafts: ReadonlyMap<string, EndpointDraft>): EndpointModel[] {
  return [...drafts.entries()]
    .sort(([a], [b]) => cmp(a, b))
    .map(([ip, d]) => ({
      ip,
      ready: d.ready,
      ports: [...d.ports.values()].sort((a, b) => cmp(a.name, b.name) || cmp(a.port, b.port)),
      workload: d.workload,
    }));
}

interface ServiceContext {
  readonly settings: MeshSettings;
  /** Workloads by namespace, since selectors only select within one. */
  readonly draftsByNamespace: ReadonlyMap<string, LabelIndex<WorkloadDraft>>;
  readonly podsByNamespace: ReadonlyMap<string, LabelIndex<Pod>>;
  readonly podsByKey: ReadonlyMap<string, Pod>;
  readonly podByIp: ReadonlyMap<string, Pod>;
  readonly slicesByService: ReadonlyMap<string, EndpointSlice[]>;
  readonly conditions: Condition[];
}

function servicePorts(s: Service, conditions: Condition[]): { model: ServicePortModel; index: number }[] {
  const out: { model: ServicePortModel; index: number }[] = [];
  for (const [index, p] of s.ports.entries()) {
    if (p.protocol === 'SCTP') {
      conditions.push(
        condition(
          subjectOf(s),
          'UnsupportedProtocol',
          `spec.ports[${index}] (port ${p.port}) uses SCTP, which Weft does not proxy, so the port is not served; use TCP or UDP`,
          `spec.ports[${index}].protocol`,
        ),
      );
      continue;
    }
    out.push({
      index,
      model: {
        name: p.name,
        port: p.port,
        targetPort: p.targetPort,
        protocol: p.protocol,
        appProtocolRaw: p.appProtocol,
        appProtocol: classifyPort(p.protocol, p.name, p.appProtocol),
      },
    });
  }
  return out;
}

function endpointsFromSlices(
  s: Service,
  slices: readonly EndpointSlice[],
  ports: readonly ServicePortModel[],
  ctx: ServiceContext,
): Map<string, EndpointDraft> {
  const drafts = new Map<string, EndpointDraft>();
  const served = new Set(ports.map((p) => `${p.name}/${p.protocol}`));
  for (const slice of slices) {
    if (slice.addressType === 'FQDN') continue;
    const slicePorts = slice.ports.filter(
      (p): p is { name: string; port: number; protocol: 'TCP' | 'UDP' } =>
        p.port !== null && served.has(`${p.name}/${p.protocol}`),
    );
    for (const e of slice.endpoints) {
      for (const ip of e.addresses) {
        let workload: WorkloadRef | null = null;
        const podNs = e.pod?.namespace ?? s.meta.namespace;
        const named = e.pod ? ctx.podsByKey.get(key(podNs, e.pod.name)) : undefined;
        const byIp = ctx.podByIp.get(key(s.meta.namespace, ip));
        const pod = named ?? byIp;
        if (pod) workload = { kind: 'Pod', namespace: pod.meta.namespace, name: pod.meta.name };
        let d = drafts.get(ip);
        if (!d) {
          d = { ready: false, ports: new Map(), workload: null };
          drafts.set(ip, d);
        }
        d.ready ||= e.ready;
        d.workload ??= workload;
        for (const p of slicePorts)
          d.ports.set(`${p.name}/${p.protocol}`, { name: p.name, port: p.port, protocol: p.protocol });
      }
    }
  }
  return drafts;
}

function endpointsFromPods(
  s: Service,
  ports: readonly { model: ServicePortModel; index: number }[],
  ctx: ServiceContext,
): Map<string, EndpointDraft> {
  const drafts = new Map<string, EndpointDraft>();
  const unresolved = new Map<number, string[]>();
  const selector = s.selector;
  if (selector === null) return drafts;
  for (const pod of selectFrom(ctx.podsByNamespace.get(s.meta.namespace), selector)) {
    // Finished pods keep their IP in status but no longer serve it.
    if (pod.phase === 'Succeeded' || pod.phase === 'Failed' || pod.ips.length === 0) continue;
    const epPorts = new Map<string, EndpointPortModel>();
    for (const { model: p, index } of ports) {
      let target: number | null = null;
      if (typeof p.targetPort === 'number') target = p.targetPort;
      else {
        const cp = pod.containerPorts.find((c) => c.name === p.targetPort && c.protocol === p.protocol);
        if (cp) target = cp.port;
      }
      if (target === null) {
        const list = unresolved.get(index) ?? [];
        list.push(pod.meta.name);
        unresolved.set(index, list);
        continue;
      }
      epPorts.set(`${p.name}/${p.protocol}`, { name: p.name, port: target, protocol: p.protocol });
    }
    for (const ip of pod.ips) {
      drafts.set(ip, {
        ready: pod.ready,
        ports: new Map(epPorts),
        workload: { kind: 'Pod', namespace: pod.meta.namespace, name: pod.meta.name },
      });
    }
  }
  for (const [index, pods] of [...unresolved.entries()].sort(([a], [b]) => a - b)) {
    const p = ports.find((x) => x.index === index)!.model;
    const first = pods[0]!;
    const more = pods.length > 1 ? ` (and ${plural(pods.length - 1, 'more Pod')})` : '';
    ctx.conditions.push(
      condition(
        subjectOf(s),
        'UnresolvedTargetPort',
        `spec.ports[${index}].targetPort ${JSON.stringify(p.targetPort)} names no ${p.protocol} container port of Pod ${s.meta.namespace}/${first}${more}, so port ${p.port} is not served there; add a container port named ${JSON.stringify(p.targetPort)} or use a port number`,
        `spec.ports[${index}].targetPort`,
      ),
    );
  }
  return drafts;
}

function buildService(s: Service, ctx: ServiceContext): ServiceModel {
  const ports = servicePorts(s, ctx.conditions);
  const portModels = ports.map((p) => p.model).sort((a, b) => a.port - b.port || cmp(a.protocol, b.protocol));
  const slices = ctx.slicesByService.get(key(s.meta.namespace, s.meta.name)) ?? [];
  const endpointSource = slices.length > 0 ? 'EndpointSlice' : s.selector !== null ? 'Pods' : 'None';
  const drafts =
    endpointSource === 'EndpointSlice'
      ? endpointsFromSlices(s, slices, portModels, ctx)
      : endpointSource === 'Pods'
        ? endpointsFromPods(s, ports, ctx)
        : new Map<string, EndpointDraft>();
  const endpoints = finishEndpoints(drafts);
  const workloads: WorkloadRef[] = [];
  if (s.selector !== null) {
    for (const w of selectFrom(ctx.draftsByNamespace.get(s.meta.namespace), s.selector)) {
      workloads.push(w.ref);
    }
  }
  for (const e of endpoints) if (e.workload) workloads.push(e.workload);
  const headless = s.clusterIP === 'None';
  return {
    namespace: s.meta.namespace,
    name: s.meta.name,
    hostname: `${s.meta.name}.${s.meta.namespace}.svc.${ctx.settings.clusterDomain}`,
    type: s.type,
    clusterIP: headless ? null : s.clusterIP,
    headless,
    selector: s.selector,
    ports: portModels,
    endpointSource,
    endpoints,
    workloads: uniqueRefs(workloads),
  };
}

/** Reports slices that name no Service, or one that is not given, or that carry FQDNs. */
function checkSlices(
  slices: readonly EndpointSlice[],
  serviceKeys: ReadonlySet<string>,
  conditions: Condition[],
): void {
  const labelField = fieldPath(['metadata', 'labels', 'kubernetes.io/service-name']);
  for (const slice of slices) {
    if (slice.serviceName === null) {
      conditions.push(
        condition(
          subjectOf(slice),
          'EndpointSliceMissingServiceName',
          `has no kubernetes.io/service-name label, so it belongs to no Service and is ignored; add the label naming its Service`,
          labelField,
        ),
      );
    } else if (!serviceKeys.has(key(slice.meta.namespace, slice.serviceName))) {
      conditions.push(
        condition(
          subjectOf(slice),
          'EndpointSliceServiceNotFound',
          `label kubernetes.io/service-name names ${JSON.stringify(slice.serviceName)}, which is not a Service in namespace ${slice.meta.namespace}, so the slice is ignored; create the Service or fix the label`,
          labelField,
        ),
      );
    } else if (slice.addressType === 'FQDN') {
      conditions.push(
        condition(
          subjectOf(slice),
          'UnsupportedAddressType',
          `addressType FQDN is not supported, so its endpoints are not served; use IPv4 or IPv6 addresses`,
          'addressType',
        ),
      );
    }
  }
}

// ---------------------------------------------------------------- routes

/**
 * Builds a route group's model. Matches Envoy would refuse are left out and their names added to
 * `rejectedMatches` (as `<ns>/<group>/<match>`), so rules naming them can say why.
 */
function buildHttpRouteGroup(
  g: HttpRouteGroup,
  conditions: Condition[],
  rejectedMatches: Set<string>,
): HttpRouteGroupModel {
  const firstIndex = new Map<string, number>();
  const invalid = new Map(g.invalid.map((x) => [x.index, x]));
  const matches: HttpMatch[] = [];
  for (const [i, m] of g.matches.entries()) {
    const earlier = firstIndex.get(m.name);
    const bad = invalid.get(i);
    if (bad && earlier === undefined) {
      // The first match of a name claims it even when invalid, so a later duplicate does not
      // silently take its place.
      firstIndex.set(m.name, i);
      rejectedMatches.add(`${g.meta.namespace}/${g.meta.name}/${m.name}`);
      conditions.push(
        condition(
          subjectOf(g),
          'InvalidMatch',
          `${bad.field} ${bad.problem}, so match ${JSON.stringify(m.name)} is left out and allows or splits nothing; ${bad.fix}`,
          bad.field,
        ),
      );
      continue;
    }
    if (earlier !== undefined) {
      conditions.push(
        condition(
          subjectOf(g),
          'DuplicateMatchName',
          `${g.matchesPath}[${i}].name ${JSON.stringify(m.name)} repeats the name of ${g.matchesPath}[${earlier}], so only the first is used; give each match its own name`,
          `${g.matchesPath}[${i}].name`,
        ),
      );
      continue;
    }
    firstIndex.set(m.name, i);
    matches.push({ routeGroup: g.meta.name, ...m });
  }
  matches.sort((a, b) => cmp(a.name, b.name));
  return { namespace: g.meta.namespace, name: g.meta.name, matches };
}

function buildL4Route(r: L4Route): L4RouteModel {
  return {
    kind: r.kind,
    namespace: r.meta.namespace,
    name: r.meta.name,
    ports: r.ports,
    matchName: r.matchName,
  };
}

// ---------------------------------------------------------------- splits

type ServiceName = { ok: true; name: string } | { ok: false; namespace: string | null };

/**
 * Reads a split's service reference. SMI calls `spec.service` an FQDN, so besides a short name
 * `<name>.<ns>`, `<name>.<ns>.svc` and `<name>.<ns>.svc.<clusterDomain>` are accepted; the namespace
 * must be the split's own, since a split routes only within its namespace.
 */
function serviceName(text: string, namespace: string, clusterDomain: string): ServiceName {
  const parts = text.split('.');
  if (parts.length === 1) return { ok: true, name: text };
  const [name, ns, ...rest] = parts as [string, string, ...string[]];
  const suffix = rest.join('.');
  if (suffix !== '' && suffix !== 'svc' && suffix !== `svc.${clusterDomain}`)
    return { ok: false, namespace: null };
  return ns === namespace ? { ok: true, name } : { ok: false, namespace: ns };
}

interface SplitContext {
  readonly settings: MeshSettings;
  readonly rejected: ReadonlySet<string>;
  readonly services: ReadonlyMap<string, ServiceModel>;
  readonly groups: ReadonlyMap<string, HttpRouteGroupModel>;
  readonly conditions: Condition[];
}

function crossNamespace(split: Split, field: string, text: string, other: string): Condition {
  return condition(
    subjectOf(split),
    'CrossNamespaceService',
    `${field} ${JSON.stringify(text)} names namespace ${other}, but a TrafficSplit only routes to Services in its own namespace (${split.meta.namespace}); move the TrafficSplit to namespace ${other} or name a Service in ${split.meta.namespace}`,
    field,
  );
}

/** Resolves a split's root service; null (with a condition) when it does not resolve. */
function splitRoot(split: Split, ctx: SplitContext): ServiceModel | null {
  const ns = split.meta.namespace;
  const ref = serviceName(split.rootService, ns, ctx.settings.clusterDomain);
  if (!ref.ok && ref.namespace !== null) {
    ctx.conditions.push(crossNamespace(split, 'spec.service', split.rootService, ref.namespace));
    return null;
  }
  const root = ref.ok ? ctx.services.get(key(ns, ref.name)) : undefined;
  if (!root) {
    ctx.conditions.push(
      condition(
        subjectOf(split),
        'RootServiceNotFound',
        `spec.service ${JSON.stringify(split.rootService)} ${notFound(ctx.rejected, 'Service', ns, ref.ok ? ref.name : split.rootService)}, so the split is not served; ${createOrFix(ctx.rejected, 'Service', ns, ref.ok ? ref.name : split.rootService)}`,
        'spec.service',
      ),
    );
    return null;
  }
  return root;
}

function portList(ports: readonly number[]): string {
  return ports.join(', ');
}

function buildSplit(split: Split, root: ServiceModel, ctx: SplitContext): SplitModel | null {
  const ns = split.meta.namespace;
  const subject = subjectOf(split);
  const rootLabel = `Service ${ns}/${root.name}`;
  // Merged backends by service name: weight sum and where each was first listed.
  const merged = new Map<string, { weight: bigint; index: number; ports: number[] }>();
  for (const [i, b] of split.backends.entries()) {
    const field = `spec.backends[${i}].service`;
    const ref = serviceName(b.service, ns, ctx.settings.clusterDomain);
    if (!ref.ok && ref.namespace !== null) {
      ctx.conditions.push(crossNamespace(split, field, b.service, ref.namespace));
      continue;
    }
    const svc = ref.ok ? ctx.services.get(key(ns, ref.name)) : undefined;
    if (!svc) {
      ctx.conditions.push(
        condition(
          subject,
          'BackendNotFound',
          `${field} ${JSON.stringify(b.service)} ${notFound(ctx.rejected, 'Service', ns, ref.ok ? ref.name : b.service)}, so it gets no traffic; ${createOrFix(ctx.rejected, 'Service', ns, ref.ok ? ref.name : b.service)}`,
          field,
        ),
      );
      continue;
    }
    const earlier = merged.get(svc.name);
    if (earlier) {
      const total = earlier.weight + BigInt(b.weight);
      ctx.conditions.push(
        condition(
          subject,
          'DuplicateBackend',
          `${field} ${JSON.stringify(b.service)} repeats spec.backends[${earlier.index}], so their weights are added (${earlier.weight} + ${b.weight} = ${total}); list each Service once`,
          field,
        ),
      );
      earlier.weight = total;
      continue;
    }
    if (svc.name === root.name) {
      // SMI rules out self-referential splits because the root usually selects every version;
      // Weft still serves it (the root's share goes to the root's own endpoints) but says so.
      ctx.conditions.push(
        condition(
          subject,
          'SelfReferentialBackend',
          `${field} ${JSON.stringify(b.service)} is the root service itself, so its share goes to every endpoint of ${rootLabel}, whichever version; list a Service that selects only the version meant`,
          field,
        ),
      );
    }
    // SMI: a backend serves a root port only when it has a port with the same number.
    const ports: number[] = [];
    const missing: number[] = [];
    for (const rp of root.ports) {
      if (svc.ports.some((bp) => bp.port === rp.port && bp.protocol === rp.protocol)) ports.push(rp.port);
      else missing.push(rp.port);
    }
    if (ports.length === 0) {
      ctx.conditions.push(
        condition(
          subject,
          'BackendPortMismatch',
          `${field} ${JSON.stringify(b.service)} has none of the ports of root ${rootLabel} (${portList(missing) || 'none'}), so it gets no traffic; give Service ${ns}/${svc.name} the root's port numbers`,
          field,
          'Error',
        ),
      );
      continue;
    }
    if (missing.length > 0) {
      ctx.conditions.push(
        condition(
          subject,
          'BackendPortMismatch',
          `${field} ${JSON.stringify(b.service)} lacks port ${portList(missing)} of root ${rootLabel}, so it gets no traffic on ${missing.length === 1 ? 'that port' : 'those ports'}; add ${missing.length === 1 ? 'the port' : 'the ports'} to Service ${ns}/${svc.name}`,
          field,
        ),
      );
    }
    merged.set(svc.name, { weight: BigInt(b.weight), index: i, ports });
  }
  if (merged.size === 0) {
    ctx.conditions.push(
      condition(
        subject,
        'NoBackends',
        `spec.backends leaves no usable backend, so the split is not served and traffic to ${rootLabel} goes to its own endpoints; list at least one Service with the root's ports`,
        'spec.backends',
      ),
    );
    return null;
  }
  const names = [...merged.keys()].sort();
  const fitted = fitWeights(names.map((n) => merged.get(n)!.weight));
  if (fitted.rescaled || split.weightsRescaled) {
    ctx.conditions.push(
      condition(
        subject,
        'WeightsRescaled',
        `the weights in spec.backends add up to more than ${MAX_TOTAL_WEIGHT}, so they were scaled to a total of about ${RESCALED_TOTAL} keeping their ratios; use smaller weights`,
        'spec.backends',
      ),
    );
  }
  const backends: SplitBackendModel[] = names.map((n, i) => ({
    service: n,
    weight: fitted.weights[i]!,
    ports: merged.get(n)!.ports,
  }));
  if (backends.every((b) => b.weight === 0)) {
    ctx.conditions.push(
      condition(
        subject,
        'AllWeightsZero',
        `every backend in spec.backends has weight 0, so the calls this split covers for ${rootLabel} reach no backend and fail; give at least one backend a positive weight`,
        'spec.backends',
      ),
    );
  }
  let matches: HttpMatch[] | null = null;
  if (split.matches !== null) {
    const seen = new Set<string>();
    matches = [];
    for (const [i, ref] of split.matches.entries()) {
      const group = ctx.groups.get(key(ns, ref.name));
      if (!group) {
        ctx.conditions.push(
          condition(
            subject,
            'RouteGroupNotFound',
            `spec.matches[${i}].name ${JSON.stringify(ref.name)} ${notFound(ctx.rejected, 'HTTPRouteGroup', ns, ref.name)}, so the requests it would match are not split; ${createOrFix(ctx.rejected, 'HTTPRouteGroup', ns, ref.name)}`,
            `spec.matches[${i}].name`,
          ),
        );
        continue;
      }
      if (seen.has(group.name)) continue;
      seen.add(group.name);
      matches.push(...group.matches);
    }
    matches.sort((a, b) => cmp(a.routeGroup, b.routeGroup) || cmp(a.name, b.name));
  }
  return { namespace: ns, name: split.meta.name, rootService: root.name, backends, matches };
}

function buildSplits(splits: readonly Split[], ctx: SplitContext): SplitModel[] {
  const byRoot = new Map<string, { split: Split; root: ServiceModel }[]>();
  for (const split of splits) {
    const root = splitRoot(split, ctx);
    if (!root) continue;
    const k = key(root.namespace, root.name);
    const list = byRoot.get(k) ?? [];
    list.push({ split, root });
    byRoot.set(k, list);
  }
  const out: SplitModel[] = [];
  const sources = new Map<SplitModel, Split>();
  for (const list of byRoot.values()) {
    list.sort((a, b) => compareAge(a.split, b.split));
    const winner = list[0]!;
    for (const { split } of list.slice(1)) {
      ctx.conditions.push(
        condition(
          subjectOf(split),
          'SplitConflict',
          `spec.service ${JSON.stringify(split.rootService)} is already split by TrafficSplit ${winner.split.meta.namespace}/${winner.split.meta.name}, which is older (or as old and first by name); only one TrafficSplit per root service is served; delete one of them or merge their backends`,
          'spec.service',
        ),
      );
    }
    const model = buildSplit(winner.split, winner.root, ctx);
    if (model) {
      out.push(model);
      sources.set(model, winner.split);
    }
  }
  out.sort((a, b) => cmp(a.namespace, b.namespace) || cmp(a.rootService, b.rootService));
  reportSplitCycles(out, sources, ctx.conditions);
  return out;
}

/**
 * Splits do not chain: a call to a split's root goes straight to its backends' endpoints, never
 * through another split whose root is that backend. A cycle (b splits to c, c splits to b) is
 * therefore served as written, which swaps traffic rather than dividing it, and is almost surely a
 * mistake; each split on the cycle gets a `SplitCycle` warning naming the whole loop. Linear in
 * the number of splits and backends (Tarjan's strongly connected components).
 */
function reportSplitCycles(
  splits: readonly SplitModel[],
  sources: ReadonlyMap<SplitModel, Split>,
  conditions: Condition[],
): void {
  const byRoot = new Map<string, SplitModel>();
  for (const sp of splits) byRoot.set(key(sp.namespace, sp.rootService), sp);
  const next = (sp: SplitModel): SplitModel[] => {
    const out: SplitModel[] = [];
    for (const b of sp.backends) {
      if (b.service === sp.rootService) continue;
      const to = byRoot.get(key(sp.namespace, b.service));
      if (to) out.push(to);
    }
    return out;
  };
  // Tarjan, iteratively: a hostile input may chain thousands of splits.
  const index = new Map<SplitModel, number>();
  const low = new Map<SplitModel, number>();
  const onStack = new Set<SplitModel>();
  const stack: SplitModel[] = [];
  const component = new Map<SplitModel, number>();
  let counter = 0;
  let components = 0;
  for (const start of splits) {
    if (index.has(start)) continue;
    const work: { node: SplitModel; edges: SplitModel[]; i: number }[] = [];
    const enter = (n: SplitModel): void => {
      index.set(n, counter);
      low.set(n, counter);
      counter++;
      stack.push(n);
      onStack.add(n);
      work.push({ node: n, edges: next(n), i: 0 });
    };
    enter(start);
    while (work.length > 0) {
      const top = work[work.length - 1]!;
      if (top.i < top.edges.length) {
        const to = top.edges[top.i++]!;
        if (!index.has(to)) enter(to);
        else if (onStack.has(to)) low.set(top.node, Math.min(low.get(top.node)!, index.get(to)!));
        continue;
      }
      work.pop();
      const parent = work[work.length - 1];
      if (parent) low.set(parent.node, Math.min(low.get(parent.node)!, low.get(top.node)!));
      if (low.get(top.node) === index.get(top.node)) {
        for (;;) {
          const n = stack.pop()!;
          onStack.delete(n);
          component.set(n, components);
          if (n === top.node) break;
        }
        components++;
      }
    }
  }
  const sizes = new Map<number, number>();
  for (const c of component.values()) sizes.set(c, (sizes.get(c) ?? 0) + 1);
  for (const sp of splits) {
    const c = component.get(sp)!;
    if ((sizes.get(c) ?? 0) < 2) continue;
    const split = sources.get(sp)!;
    // The loop through this split: its first backend on the cycle, then back to its root.
    const path = cyclePath(sp, (n) => next(n).filter((x) => component.get(x) === c));
    const first = path[1]!;
    const at = split.backends.findIndex((b) => b.service === first.rootService);
    const loop = path.map((x) => x.rootService).join(' → ');
    conditions.push(
      condition(
        subjectOf(split),
        'SplitCycle',
        `spec.backends[${at}].service ${JSON.stringify(first.rootService)} is itself the root of TrafficSplit ${first.namespace}/${first.name}, and the splits loop back here (${loop}); splits do not chain, so calls to ${sp.rootService} go straight to the endpoints of its backends and the loop swaps traffic between these services; split each root only to Services that select one version`,
        `spec.backends[${at}].service`,
      ),
    );
  }
}

/** Shortest path from `from` back to itself along `edges` (breadth first), endpoints included. */
function cyclePath(from: SplitModel, edges: (n: SplitModel) => SplitModel[]): SplitModel[] {
  const parent = new Map<SplitModel, SplitModel>();
  const queue: SplitModel[] = [from];
  for (let i = 0; i < queue.length; i++) {
    const n = queue[i]!;
    for (const to of edges(n)) {
      if (to === from) {
        const path = [from];
        for (let x: SplitModel | undefined = n; x !== undefined && x !== from; x = parent.get(x))
          path.splice(1, 0, x);
        path.push(from);
        return path;
      }
      if (!parent.has(to)) {
        parent.set(to, n);
        queue.push(to);
      }
    }
  }
  return [from, from];
}

// ---------------------------------------------------------------- access

interface AccessContext {
  readonly settings: MeshSettings;
  readonly rejected: ReadonlySet<string>;
  readonly groups: ReadonlyMap<string, HttpRouteGroupModel>;
  readonly l4: ReadonlyMap<string, L4RouteModel>;
  /** HTTP matches left out of their groups, as `<ns>/<group>/<match>`. */
  readonly rejectedMatches: ReadonlySet<string>;
  /** `namespace/serviceAccount` pairs that are defined or used by a workload. */
  readonly knownAccounts: ReadonlySet<string>;
  /** Ports served to each identity: service ports, numeric target ports and endpoint ports. */
  readonly portsByIdentity: ReadonlyMap<string, ReadonlySet<number>>;
  /** Per identity, the target ports behind each Service port number of the Services it backs. */
  readonly targetsByIdentity: ReadonlyMap<string, ReadonlyMap<number, ReadonlySet<number>>>;
  readonly conditions: Condition[];
}

function identity(namespace: string, serviceAccount: string, settings: MeshSettings): IdentityModel {
  return { namespace, serviceAccount, identity: identityOf(namespace, serviceAccount, settings.trustDomain) };
}

function checkAccount(t: TrafficTarget, id: IdentityModel, field: string, ctx: AccessContext): void {
  // Kubernetes creates `default` in every namespace, so it is always known.
  if (id.serviceAccount === 'default' || ctx.knownAccounts.has(key(id.namespace, id.serviceAccount))) return;
  ctx.conditions.push(
    condition(
      subjectOf(t),
      'UnknownServiceAccount',
      `${field} names ServiceAccount ${id.namespace}/${id.serviceAccount}, which is neither defined nor used by any workload, so this part has no effect yet; create the ServiceAccount or fix the name`,
      field,
    ),
  );
}

const RULE_KINDS = ['HTTPRouteGroup', 'TCPRoute', 'UDPRoute'] as const;

/** Ports as the destination's inbound side sees them; the rule is on `L4AccessRule.inboundPorts`. */
function inboundPorts(identity: string, ports: readonly number[], ctx: AccessContext): number[] {
  const targets = ctx.targetsByIdentity.get(identity);
  const out = new Set(ports);
  for (const p of ports) for (const t of targets?.get(p) ?? []) out.add(t);
  return [...out].sort((a, b) => a - b);
}

function resolveRule(t: TrafficTarget, i: number, identity: string, ctx: AccessContext): AccessRule | null {
  const rule = t.rules[i]!;
  const field = `${t.paths.rules}[${i}]`;
  const subject = subjectOf(t);
  if (!(RULE_KINDS as readonly string[]).includes(rule.kind)) {
    ctx.conditions.push(
      condition(
        subject,
        'UnsupportedRuleKind',
        `${field}.kind ${JSON.stringify(rule.kind)} is not a route kind, so the rule is ignored; use HTTPRouteGroup, TCPRoute or UDPRoute`,
        `${field}.kind`,
      ),
    );
    return null;
  }
  const ns = rule.namespace ?? t.meta.namespace;
  const k = key(ns, rule.name);
  const found = rule.kind === 'HTTPRouteGroup' ? ctx.groups.get(k) : ctx.l4.get(`${rule.kind}/${k}`);
  if (!found) {
    ctx.conditions.push(
      condition(
        subject,
        'RouteNotFound',
        `${field}.name ${JSON.stringify(rule.name)} ${notFound(ctx.rejected, rule.kind, ns, rule.name)}, so the rule allows nothing; ${createOrFix(ctx.rejected, rule.kind, ns, rule.name)}`,
        `${field}.name`,
      ),
    );
    return null;
  }
  const names = rule.matches && rule.matches.length > 0 ? rule.matches : null;
  if ('kind' in found) {
    const l4Rule: AccessRule = {
      kind: found.kind,
      name: found.name,
      ports: found.ports,
      inboundPorts: found.ports === null ? null : inboundPorts(identity, found.ports, ctx),
    };
    if (names === null) return l4Rule;
    if (found.matchName === null) {
      ctx.conditions.push(
        condition(
          subject,
          'MatchesOnL4Route',
          `${field}.matches lists match names, but ${found.kind} ${ns}/${found.name} has no named match, so the rule is ignored rather than allow more than meant; remove matches from the rule or name the route's match (spec.matches.name)`,
          `${field}.matches`,
        ),
      );
      return null;
    }
    let named = false;
    for (const [j, n] of names.entries()) {
      if (n === found.matchName) {
        named = true;
        continue;
      }
      ctx.conditions.push(
        condition(
          subject,
          'MatchNotFound',
          `${field}.matches[${j}] names ${JSON.stringify(n)}, which ${found.kind} ${ns}/${found.name} does not have (it has: ${found.matchName}), so that name allows nothing; fix the name or add the match`,
          `${field}.matches[${j}]`,
        ),
      );
    }
    return named ? l4Rule : null;
  }
  if (names === null) return { kind: 'HTTPRouteGroup', name: found.name, matches: found.matches };
  const matches: HttpMatch[] = [];
  for (const [j, n] of names.entries()) {
    const m = found.matches.find((x) => x.name === n);
    if (m) {
      matches.push(m);
      continue;
    }
    if (ctx.rejectedMatches.has(`${ns}/${found.name}/${n}`)) {
      ctx.conditions.push(
        condition(
          subject,
          'MatchNotFound',
          `${field}.matches[${j}] names ${JSON.stringify(n)}, which HTTPRouteGroup ${ns}/${found.name} has but leaves out as invalid (see its own condition), so that name allows nothing; fix HTTPRouteGroup ${ns}/${found.name}`,
          `${field}.matches[${j}]`,
        ),
      );
      continue;
    }
    const available = found.matches.map((x) => x.name).join(', ') || 'none';
    ctx.conditions.push(
      condition(
        subject,
        'MatchNotFound',
        `${field}.matches[${j}] names ${JSON.stringify(n)}, which HTTPRouteGroup ${ns}/${found.name} does not have (it has: ${available}), so that name allows nothing; fix the name or add the match`,
        `${field}.matches[${j}]`,
      ),
    );
  }
  if (matches.length === 0) return null;
  return { kind: 'HTTPRouteGroup', name: found.name, matches };
}

/** Merges rules naming the same route (union of what they allow) and sorts them by kind then name. */
function mergeRules(rules: readonly AccessRule[]): AccessRule[] {
  const merged = new Map<string, AccessRule>();
  for (const r of rules) {
    const k = `${r.kind}/${r.name}`;
    const prev = merged.get(k);
    if (!prev) {
      merged.set(k, r);
    } else if (prev.kind === 'HTTPRouteGroup' && r.kind === 'HTTPRouteGroup') {
      const byName = new Map(prev.matches.map((m) => [m.name, m]));
      for (const m of r.matches) byName.set(m.name, m);
      merged.set(k, { ...prev, matches: [...byName.values()] });
    }
    // Two L4 rules naming the same route allow the same ports; keeping one is enough.
  }
  return [...merged.values()]
    .map((r) =>
      r.kind === 'HTTPRouteGroup' ? { ...r, matches: [...r.matches].sort((a, b) => cmp(a.name, b.name)) } : r,
    )
    .sort((a, b) => cmp(a.kind, b.kind) || cmp(a.name, b.name));
}

function checkPorts(
  t: TrafficTarget,
  dest: IdentityModel,
  resolved: readonly { readonly rule: AccessRule; readonly index: number }[],
  ctx: AccessContext,
): void {
  const served = ctx.portsByIdentity.get(dest.identity);
  // Nothing known about the destination's services: nothing to compare against.
  if (!served || served.size === 0) return;
  const who = `the workloads of ServiceAccount ${dest.namespace}/${dest.serviceAccount}`;
  if (t.destinationPort !== null && !served.has(t.destinationPort)) {
    ctx.conditions.push(
      condition(
        subjectOf(t),
        'PortNotServed',
        `${t.paths.destination}.port ${t.destinationPort} is not a port of any Service of ${who}, so this target allows nothing there; use one of ${[...served].sort((a, b) => a - b).join(', ')}`,
        `${t.paths.destination}.port`,
      ),
    );
  }
  for (const { rule: r, index } of resolved) {
    if (r.kind === 'HTTPRouteGroup' || r.ports === null) continue;
    const unserved = r.ports.filter((p) => !served.has(p));
    if (unserved.length === 0) continue;
    const routeNs = t.rules[index]!.namespace ?? t.meta.namespace;
    ctx.conditions.push(
      condition(
        subjectOf(t),
        'PortNotServed',
        `${r.kind} ${routeNs}/${r.name} allows port ${portList(unserved)}, which no Service of ${who} serves; check the port numbers in the ${r.kind}`,
        `${t.paths.rules}[${index}].name`,
      ),
    );
  }
}

function buildTarget(t: TrafficTarget, ctx: AccessContext): AccessModel | null {
  const ns = t.meta.namespace;
  const subject = subjectOf(t);
  const dField = t.paths.destination;
  if (t.destination.kind !== 'ServiceAccount') {
    ctx.conditions.push(
      condition(
        subject,
        'UnsupportedSubjectKind',
        `${dField}.kind ${JSON.stringify(t.destination.kind)} is not supported, so the TrafficTarget is not served; name a ServiceAccount (kind: ServiceAccount)`,
        `${dField}.kind`,
      ),
    );
    return null;
  }
  const destNs = t.destination.namespace ?? ns;
  if (destNs !== ns) {
    ctx.conditions.push(
      condition(
        subject,
        'DestinationNamespaceMismatch',
        `${dField}.namespace ${JSON.stringify(destNs)} differs from the TrafficTarget's namespace ${JSON.stringify(ns)}; access is granted only by a TrafficTarget in the destination's own namespace, so it is not served; move the TrafficTarget to namespace ${destNs}`,
        `${dField}.namespace`,
      ),
    );
    return null;
  }
  const destination = identity(ns, t.destination.name, ctx.settings);
  checkAccount(t, destination, `${dField}.name`, ctx);
  const sources = new Map<string, IdentityModel>();
  for (const [i, s] of t.sources.entries()) {
    const field = `${t.paths.sources}[${i}]`;
    if (s.kind !== 'ServiceAccount') {
      ctx.conditions.push(
        condition(
          subject,
          'UnsupportedSubjectKind',
          `${field}.kind ${JSON.stringify(s.kind)} is not supported, so this source is ignored; use kind ServiceAccount`,
          `${field}.kind`,
        ),
      );
      continue;
    }
    const id = identity(s.namespace ?? ns, s.name, ctx.settings);
    checkAccount(t, id, `${field}.name`, ctx);
    sources.set(id.identity, id);
  }
  const resolved: { rule: AccessRule; index: number }[] = [];
  for (let i = 0; i < t.rules.length; i++) {
    const rule = resolveRule(t, i, destination.identity, ctx);
    if (rule) resolved.push({ rule, index: i });
  }
  const rules = mergeRules(resolved.map((r) => r.rule));
  checkPorts(t, destination, resolved, ctx);
  if (sources.size === 0) {
    ctx.conditions.push(
      condition(
        subject,
        'NoSources',
        `${t.paths.sources} has no usable ServiceAccount, so this TrafficTarget allows nothing; list the ServiceAccounts that may call ${destination.namespace}/${destination.serviceAccount}`,
        t.paths.sources,
      ),
    );
  }
  if (rules.length === 0) {
    ctx.conditions.push(
      condition(
        subject,
        'NoRules',
        `${t.paths.rules} has no usable rule, so this TrafficTarget allows nothing; add a rule naming an HTTPRouteGroup, TCPRoute or UDPRoute`,
        t.paths.rules,
      ),
    );
  }
  return {
    namespace: ns,
    name: t.meta.name,
    destination,
    destinationPort: t.destinationPort,
    destinationInboundPorts:
      t.destinationPort === null ? null : inboundPorts(destination.identity, [t.destinationPort], ctx),
    sources: [...sources.values()].sort((a, b) => cmp(a.identity, b.identity)),
    rules,
  };
}

// ---------------------------------------------------------------- reuse between builds

/**
 * One stage of a build: its result, the conditions it reported, and the values it was computed
 * from. A stage reads nothing but its `deps` (and constants), so when every dep is the same value
 * (`===`) as in the previous build, the previous result is the result.
 */
interface Stage<T> {
  readonly deps: readonly unknown[];
  readonly value: T;
  readonly conditions: readonly Condition[];
}

function stage<T>(
  prev: Stage<T> | undefined,
  deps: readonly unknown[],
  compute: (conditions: Condition[]) => T,
): Stage<T> {
  if (prev && prev.deps.length === deps.length && prev.deps.every((d, i) => d === deps[i])) return prev;
  const conditions: Condition[] = [];
  const value = compute(conditions);
  return { deps, value, conditions };
}

/**
 * Deep equality of plain model data, key order included (two objects that differ only in key order
 * serialize differently, and fingerprints and golden files see the serialization), and of the Maps
 * and Sets stages pass on.
 */
function sameData(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (a instanceof Map || a instanceof Set) {
    // Build-time indexes, compared in iteration order (a difference in order only costs a rebuild).
    if (a.constructor !== b.constructor || a.size !== (b as typeof a).size) return false;
    const ea = [...a.entries()];
    const eb = [...(b as typeof a).entries()];
    return ea.every((e, i) => sameData(e[0], eb[i]![0]) && sameData(e[1], eb[i]![1]));
  }
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameData(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  const ra = a as Readonly<Record<string, unknown>>;
  const rb = b as Readonly<Record<string, unknown>>;
  for (let i = 0; i < ka.length; i++) {
    const k = ka[i]!;
    if (k !== kb[i] || !sameData(ra[k], rb[k])) return false;
  }
  return true;
}

/** Whether two lists hold the same items, by identity, in the same order. */
function sameList<T>(a: readonly T[] | undefined, b: readonly T[]): a is readonly T[] {
  return a !== undefined && a.length === b.length && a.every((x, i) => x === b[i]);
}

/** `prev` when it is equal to `fresh`, so that later stages see an unchanged value as the same value. */
function kept<T>(prev: T | undefined, fresh: T): T {
  return prev !== undefined && sameData(prev, fresh) ? prev : fresh;
}

/**
 * Swaps each freshly built item for the previous build's item of the same key when the two are
 * equal, and returns `prev` itself when nothing differs. Unchanged model objects thus keep their
 * identity across builds, which is what lets translation cache per object.
 */
function reuse<T>(
  fresh: readonly T[],
  prev: readonly T[] | undefined,
  keyOf: (item: T) => string,
): readonly T[] {
  if (!prev) return fresh;
  const before = new Map(prev.map((p) => [keyOf(p), p]));
  let same = fresh.length === prev.length;
  const out = fresh.map((item, i) => {
    const old = before.get(keyOf(item));
    const kept = old !== undefined && sameData(old, item) ? old : item;
    if (kept !== prev[i]) same = false;
    return kept;
  });
  return same ? prev : out;
}

interface PodIndex {
  readonly byKey: ReadonlyMap<string, Pod>;
  readonly byIp: ReadonlyMap<string, Pod>;
  readonly byNamespace: ReadonlyMap<string, LabelIndex<Pod>>;
}

interface DraftIndex {
  readonly drafts: readonly WorkloadDraft[];
  readonly byNamespace: ReadonlyMap<string, LabelIndex<WorkloadDraft>>;
}

interface RouteGroups {
  readonly list: readonly HttpRouteGroupModel[];
  readonly byKey: ReadonlyMap<string, HttpRouteGroupModel>;
  /** HTTP matches left out of their groups, as `<ns>/<group>/<match>`. */
  readonly rejectedMatches: ReadonlySet<string>;
}

interface L4Routes {
  readonly list: readonly L4RouteModel[];
  readonly byKey: ReadonlyMap<string, L4RouteModel>;
}

/** Everything a build keeps for the next one. */
interface BuildState {
  readonly inputs: Inputs;
  readonly members: Members;
  readonly settings: Stage<MeshSettings>;
  readonly pods: Stage<PodIndex>;
  readonly drafts: Stage<DraftIndex>;
  readonly services: Stage<Services>;
  readonly backs: Stage<ReadonlyMap<string, readonly ServiceRef[]>>;
  readonly workloads: Stage<readonly WorkloadModel[]>;
  readonly ports: Stage<IdentityPorts>;
  readonly routes: Stage<RouteGroups>;
  readonly l4: Stage<L4Routes>;
  readonly splits: Stage<readonly SplitModel[]>;
  readonly access: Stage<readonly AccessModel[]>;
  readonly namespaces: Stage<readonly NamespaceModel[]>;
  readonly model: MeshModel;
}

function podIndex(pods: readonly Pod[]): PodIndex {
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

/** A service as built, with what it was built from besides settings, pods and workloads. */
interface BuiltService {
  readonly slices: readonly EndpointSlice[];
  readonly model: ServiceModel;
  readonly conditions: readonly Condition[];
}

/** The services stage: the models, and each one as built, for the next build to reuse. */
interface Services {
  readonly list: readonly ServiceModel[];
  readonly built: ReadonlyMap<Service, BuiltService>;
  /** What every service was built against; `built` is reusable only while these are the same. */
  readonly settings: MeshSettings;
  readonly pods: PodIndex;
  readonly drafts: DraftIndex;
}

/**
 * Builds every service. A service whose input object and slices are those of `prev`, built against
 * the same settings, pods and workloads, is `prev`'s, conditions included: an endpoint change
 * rebuilds one service, not all of them.
 */
function buildServices(
  services: readonly Service[],
  slices: readonly EndpointSlice[],
  settings: MeshSettings,
  pods: PodIndex,
  drafts: DraftIndex,
  conditions: Condition[],
  prev: Services | undefined,
): Services {
  const serviceKeys = new Set(services.map((s) => key(s.meta.namespace, s.meta.name)));
  const slicesByService = new Map<string, EndpointSlice[]>();
  for (const slice of slices) {
    if (slice.serviceName === null) continue;
    const k = key(slice.meta.namespace, slice.serviceName);
    if (!serviceKeys.has(k)) continue;
    const list = slicesByService.get(k) ?? [];
    list.push(slice);
    slicesByService.set(k, list);
  }
  checkSlices(slices, serviceKeys, conditions);
  const reusable =
    prev && prev.settings === settings && prev.pods === pods && prev.drafts === drafts
      ? prev.built
      : undefined;
  const ctx: ServiceContext = {
    settings,
    draftsByNamespace: drafts.byNamespace,
    podsByNamespace: pods.byNamespace,
    podsByKey: pods.byKey,
    podByIp: pods.byIp,
    slicesByService,
    conditions,
  };
  const built = new Map<Service, BuiltService>();
  const list = services.map((s) => {
    const own = slicesByService.get(key(s.meta.namespace, s.meta.name)) ?? [];
    let b = reusable?.get(s);
    if (!b || !sameList(b.slices, own)) {
      const reported: Condition[] = [];
      b = { slices: own, model: buildService(s, { ...ctx, conditions: reported }), conditions: reported };
    }
    built.set(s, b);
    for (const c of b.conditions) conditions.push(c);
    return b.model;
  });
  return { list: reuse(list, prev?.list, nsName), built, settings, pods, drafts };
}

/** Services each workload backs, by `<kind>/<namespace>/<name>`. */
function backsOf(services: readonly ServiceModel[]): Map<string, ServiceRef[]> {
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

function buildWorkloads(
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
      services: [...(backs.get(`${d.ref.kind}/${d.ref.namespace}/${d.ref.name}`) ?? [])].sort(
        (a, b) => cmp(a.namespace, b.namespace) || cmp(a.name, b.name),
      ),
    }))
    .sort(compareRefs);
}

/** Ports served per identity, for checking and widening the ports TrafficTargets name. */
interface IdentityPorts {
  /** Ports served to each identity: service ports, numeric target ports and endpoint ports. */
  readonly portsByIdentity: ReadonlyMap<string, ReadonlySet<number>>;
  /** Per identity, the target ports behind each Service port number of the Services it backs. */
  readonly targetsByIdentity: ReadonlyMap<string, ReadonlyMap<number, ReadonlySet<number>>>;
}

function identityPorts(
  services: readonly ServiceModel[],
  workloads: readonly WorkloadModel[],
): IdentityPorts {
  const portsByIdentity = new Map<string, Set<number>>();
  const targetsByIdentity = new Map<string, Map<number, Set<number>>>();
  const workloadIdentity = new Map(workloads.map((w) => [`${w.kind}/${w.namespace}/${w.name}`, w.identity]));
  for (const s of services) {
    const ids = new Set<string>();
    for (const w of s.workloads) {
      const id = workloadIdentity.get(`${w.kind}/${w.namespace}/${w.name}`);
      if (id !== undefined) ids.add(id);
    }
    for (const id of ids) {
      const served = portsByIdentity.get(id) ?? new Set<number>();
      const targets = targetsByIdentity.get(id) ?? new Map<number, Set<number>>();
      for (const p of s.ports) {
        served.add(p.port);
        const behind = targets.get(p.port) ?? new Set<number>();
        // A named target port is resolved per endpoint; a number is the same everywhere.
        if (typeof p.targetPort === 'number') behind.add(p.targetPort);
        for (const e of s.endpoints) for (const ep of e.ports) if (ep.name === p.name) behind.add(ep.port);
        for (const b of behind) served.add(b);
        targets.set(p.port, behind);
      }
      portsByIdentity.set(id, served);
      targetsByIdentity.set(id, targets);
    }
  }
  return { portsByIdentity, targetsByIdentity };
}

function buildAccess(
  targets: readonly TrafficTarget[],
  serviceAccounts: readonly ServiceAccount[],
  workloads: readonly WorkloadModel[],
  ports: IdentityPorts,
  shared: Pick<AccessContext, 'settings' | 'rejected' | 'groups' | 'l4' | 'rejectedMatches' | 'conditions'>,
): AccessModel[] {
  const knownAccounts = new Set([
    ...serviceAccounts.map((a) => key(a.meta.namespace, a.meta.name)),
    ...workloads.map((w) => key(w.namespace, w.serviceAccount)),
  ]);
  const ctx: AccessContext = { ...shared, ...ports, knownAccounts };
  return targets.map((t) => buildTarget(t, ctx)).filter((a): a is AccessModel => a !== null);
}

/** One build, reusing whatever of `prev` its inputs did not change. */
function build(
  objects: readonly unknown[],
  prev: BuildState | undefined,
): { state: BuildState; result: BuildResult } {
  const readConditions: Condition[] = [];
  // Objects that were rejected, so that references to them say so instead of "not found".
  const rejected = new Set<string>();
  const { inputs, members } = byKind(readObjects(objects, readConditions, rejected), prev);
  // References to rejected objects are reported differently, so stages that resolve references
  // depend on the set; it is nearly always small, and its sorted text is a value `===` compares.
  const rejectedKey = [...rejected].sort().join('\n');

  const settings = stage(prev?.settings, [inputs.meshConfigs], (c) => {
    const fresh = resolveSettings(inputs.meshConfigs, c);
    return prev && sameData(prev.settings.value, fresh) ? prev.settings.value : fresh;
  });
  const pods = stage(prev?.pods, [inputs.pods], () => podIndex(inputs.pods));
  // Workloads first: services need their labels; workloads then need the services they back.
  const drafts = stage(prev?.drafts, [inputs.pods, inputs.deployments], () => {
    const list = workloadDrafts(inputs.pods, inputs.deployments);
    return {
      drafts: list,
      byNamespace: labelIndexes(
        list,
        (d) => d.ref.namespace,
        (d) => d.labels,
      ),
    };
  });
  const services = stage(
    prev?.services,
    [inputs.services, inputs.slices, settings.value, pods.value, drafts.value],
    (c) =>
      buildServices(
        inputs.services,
        inputs.slices,
        settings.value,
        pods.value,
        drafts.value,
        c,
        prev?.services.value,
      ),
  );
  // Workloads depend on services only through which services each one backs.
  const backs = stage(prev?.backs, [services.value.list], () =>
    kept(prev?.backs.value, backsOf(services.value.list)),
  );
  const workloads = stage(prev?.workloads, [drafts.value, backs.value, settings.value], () =>
    reuse(
      buildWorkloads(drafts.value.drafts, backs.value, settings.value),
      prev?.workloads.value,
      (w) => `${w.kind}/${w.namespace}/${w.name}`,
    ),
  );
  // TrafficTargets depend on services only through the ports each identity serves.
  const ports = stage(prev?.ports, [services.value.list, workloads.value], () =>
    kept(prev?.ports.value, identityPorts(services.value.list, workloads.value)),
  );
  const routes = stage(prev?.routes, [inputs.httpRouteGroups], (c) => {
    const rejectedMatches = new Set<string>();
    const list = reuse(
      inputs.httpRouteGroups.map((g) => buildHttpRouteGroup(g, c, rejectedMatches)),
      prev?.routes.value.list,
      nsName,
    );
    return { list, byKey: new Map(list.map((g) => [nsName(g), g])), rejectedMatches };
  });
  const l4 = stage(prev?.l4, [inputs.l4Routes], () => {
    const list = reuse(
      inputs.l4Routes
        .map(buildL4Route)
        .sort((a, b) => cmp(a.kind, b.kind) || cmp(a.namespace, b.namespace) || cmp(a.name, b.name)),
      prev?.l4.value.list,
      (r) => `${r.kind}/${nsName(r)}`,
    );
    return { list, byKey: new Map(list.map((r) => [`${r.kind}/${nsName(r)}`, r])) };
  });
  const splits = stage(
    prev?.splits,
    [inputs.splits, settings.value, rejectedKey, services.value.list, routes.value],
    (c) =>
      reuse(
        buildSplits(inputs.splits, {
          settings: settings.value,
          rejected,
          services: new Map(services.value.list.map((s) => [nsName(s), s])),
          groups: routes.value.byKey,
          conditions: c,
        }),
        prev?.splits.value,
        nsName,
      ),
  );
  const access = stage(
    prev?.access,
    [
      inputs.targets,
      inputs.serviceAccounts,
      settings.value,
      rejectedKey,
      routes.value,
      l4.value,
      ports.value,
      workloads.value,
    ],
    (c) =>
      reuse(
        buildAccess(inputs.targets, inputs.serviceAccounts, workloads.value, ports.value, {
          settings: settings.value,
          rejected,
          groups: routes.value.byKey,
          l4: l4.value.byKey,
          rejectedMatches: routes.value.rejectedMatches,
          conditions: c,
        }),
        prev?.access.value,
        nsName,
      ),
  );
  const namespaces = stage(prev?.namespaces, [inputs.namespaces], () =>
    inputs.namespaces.map((n) => ({ name: n.meta.name, labels: n.meta.labels })),
  );

  const parts: MeshModel = {
    settings: settings.value,
    namespaces: namespaces.value,
    services: services.value.list,
    workloads: workloads.value,
    splits: splits.value,
    access: access.value,
    httpRouteGroups: routes.value.list,
    l4Routes: l4.value.list,
  };
  const old = prev?.model;
  const model: MeshModel =
    old && (Object.keys(parts) as (keyof MeshModel)[]).every((k) => parts[k] === old[k]) ? old : parts;
  // The order stages report in is the order of a build from scratch; sorting makes it irrelevant
  // anyway, except between conditions that differ only in severity.
  const conditions = sortConditions([
    ...readConditions,
    ...settings.conditions,
    ...services.conditions,
    ...routes.conditions,
    ...splits.conditions,
    ...access.conditions,
  ]);
  return {
    state: {
      inputs,
      members,
      settings,
      pods,
      drafts,
      services,
      backs,
      workloads,
      ports,
      routes,
      l4,
      splits,
      access,
      namespaces,
      model,
    },
    result: { model, conditions },
  };
}

// ---------------------------------------------------------------- buildModel

/**
 * Builds the mesh model from raw objects: parsed YAML documents or API objects, in any order, of any
 * kind (kinds Weft does not read are reported and ignored; `List` objects are expanded).
 *
 * Pure and deterministic: the same set of inputs always gives a deep-equal result, whatever their
 * order; inputs are never mutated (frozen inputs work). Never throws on bad input: every problem is
 * a {@link Condition}, and the offending object, or part of it, is left out.
 */
export function buildModel(objects: readonly unknown[]): BuildResult {
  return build(objects, undefined).result;
}

/**
 * Builds models one after another, each exactly as {@link buildModel} would, but reusing the
 * previous build: a stage whose inputs are unchanged is not run again, and a model object (service,
 * workload, split, TrafficTarget, route group) that comes out equal to the previous one is that
 * previous object. A split change thus rebuilds the splits and nothing else, and every service
 * keeps its identity, so caches keyed by model objects (translation's fingerprints) stay warm.
 *
 * It relies on what sources promise anyway: an input object is never mutated after it is passed
 * in; a changed object is a new object.
 */
export class ModelBuilder {
  private state: BuildState | undefined;

  /** Builds the model of `objects`; same result as `buildModel(objects)`. */
  build(objects: readonly unknown[]): BuildResult {
    const { state, result } = build(objects, this.state);
    this.state = state;
    return result;
  }
}

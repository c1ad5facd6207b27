/**
 * The reading stage of a build: raw inputs to normalized objects (one per object, duplicates
 * resolved), then sorted into per-kind lists.
 */

import { condition } from './conditions';
import { cmp, isRecord, plural, subjectOf } from './helpers';
import type { Condition } from './model';
import { displayName, nameProblem } from './names';
import {
  CLUSTER_SCOPED_KINDS,
  type Deployment,
  type EndpointSlice,
  type HttpRouteGroup,
  type IdentityBinding,
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
import { show } from './schemas';

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
export function readObjects(
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

/** The normalized inputs, one content-sorted list per kind (TCPRoutes and UDPRoutes share one). */
export interface Inputs {
  readonly namespaces: Namespace[];
  readonly serviceAccounts: ServiceAccount[];
  readonly services: Service[];
  readonly slices: EndpointSlice[];
  readonly pods: Pod[];
  readonly deployments: Deployment[];
  readonly splits: Split[];
  readonly targets: TrafficTarget[];
  readonly identityBindings: IdentityBinding[];
  readonly httpRouteGroups: HttpRouteGroup[];
  readonly l4Routes: L4Route[];
  readonly meshConfigs: MeshConfig[];
}

/** Per kind, the set of objects a list was sorted from, to tell whether the kind changed. */
export type Members = { readonly [K in keyof Inputs]: ReadonlySet<Normalized> };

function compareObjects(a: Normalized, b: Normalized): number {
  return cmp(a.kind, b.kind) || cmp(a.meta.namespace, b.meta.namespace) || cmp(a.meta.name, b.meta.name);
}

/**
 * Sorts objects into per-kind lists in content order, so every later loop visits them in an order
 * that does not depend on input order. A kind whose objects are the same as in `prev` (same
 * references, in any order) keeps `prev`'s list itself, which is what tells later stages that
 * nothing of that kind changed.
 */
export function byKind(
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
    identityBindings: [],
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
      case 'IdentityBinding':
        fresh.identityBindings.push(o);
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
    identityBindings: keep('identityBindings'),
    httpRouteGroups: keep('httpRouteGroups'),
    l4Routes: keep('l4Routes'),
    meshConfigs: keep('meshConfigs'),
  };
  return { inputs, members: members as Members };
}

/**
 * Normalization: every served version of every kind is parsed with its own schema and turned into
 * ONE internal shape per kind, so nothing after this file knows about versions.
 *
 * The internal shapes keep what the object says, nothing more: references are still names here and
 * are resolved by `buildModel`. Absent values are `null`.
 */

import { isIP } from 'node:net';
import type { z } from 'zod';
import { fitWeights, parseQuantity, toRelativeIntegers } from './quantity';
import { re2Problem, regexSizeProblem } from './regex';
import {
  DeploymentV1,
  describeIssue,
  EndpointSliceV1,
  HTTPRouteGroupTopLevel,
  HTTPRouteGroupUnderSpec,
  IdentityBindingV1alpha4,
  type IssueLike,
  L4RouteV1alpha4,
  MeshConfigV1alpha1,
  NamespaceV1,
  type ObjectMetaSchema,
  PodV1,
  ServiceAccountV1,
  ServiceV1,
  show,
  TCPRouteNoPorts,
  TrafficSplitV1alpha1,
  TrafficSplitV1alpha2,
  TrafficSplitV1alpha3,
  TrafficSplitV1alpha4,
  TrafficTargetV1alpha1,
  TrafficTargetV1alpha1UnderSpec,
  TrafficTargetV1alpha2,
  TrafficTargetV1alpha3,
  TrafficTargetV1alpha4,
} from './schemas';

// ---------------------------------------------------------------- normalized shapes

/** The metadata every normalized object carries. */
export interface ObjectMeta {
  /** `metadata.namespace`, `default` when absent; `''` for cluster-scoped kinds. */
  readonly namespace: string;
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  /** `metadata.creationTimestamp` in epoch milliseconds, or null when absent or unparsable. */
  readonly creationTimestamp: number | null;
  readonly resourceVersion: string | null;
}

/** Fields every normalized object has. */
interface Base {
  /** The `apiVersion` the object was written in. */
  readonly apiVersion: string;
  readonly meta: ObjectMeta;
}

/** A TrafficSplit, any version. */
export interface Split extends Base {
  readonly kind: 'TrafficSplit';
  /** `spec.service` as written: a short name or a DNS name of a Service. */
  readonly rootService: string;
  /** Backends in the order written, with integer weights. */
  readonly backends: readonly { readonly service: string; readonly weight: number }[];
  /** HTTPRouteGroup references (v1alpha3+); null when the split has none. */
  readonly matches: readonly { readonly kind: 'HTTPRouteGroup'; readonly name: string }[] | null;
  /** True when the weights had to be scaled down to fit a proxy (see `fitWeights`). */
  readonly weightsRescaled: boolean;
}

/** A subject of a TrafficTarget: a ServiceAccount, or from v1alpha4 an IdentityBinding. */
export interface Subject {
  readonly kind: string;
  readonly name: string;
  /** As written; null means the TrafficTarget's namespace. */
  readonly namespace: string | null;
  /** v1alpha4 `group` as written (`access.smi-spec.io` for an IdentityBinding); null when absent. */
  readonly group: string | null;
}

/** A rule of a TrafficTarget: a route reference, optionally narrowed to named matches. */
export interface TargetRule {
  readonly kind: string;
  readonly name: string;
  /** Namespace of the route (v1alpha1 `specs[].namespace`); null means the TrafficTarget's. */
  readonly namespace: string | null;
  /** Match names; null means all matches of the route. */
  readonly matches: readonly string[] | null;
}

/** A TrafficTarget, any version. */
export interface TrafficTarget extends Base {
  readonly kind: 'TrafficTarget';
  readonly destination: Subject;
  /** `destination.port` (documented in v1alpha1 and v1alpha2, honoured in v1alpha3 too), or null. */
  readonly destinationPort: number | null;
  readonly sources: readonly Subject[];
  readonly rules: readonly TargetRule[];
  /**
   * Field paths of the parts, which differ by version (`destination` vs `spec.destination`,
   * `specs` vs `spec.rules`), so conditions name the field the user actually wrote.
   */
  readonly paths: { readonly destination: string; readonly sources: string; readonly rules: string };
}

/** One `podLabelSelectors` entry of an IdentityBinding. */
export interface PodLabelSelector {
  /** The entry's `name`, only for people; null when absent. */
  readonly name: string | null;
  /** Never empty (the schema refuses an empty selector). */
  readonly matchLabels: Readonly<Record<string, string>>;
}

/**
 * An IdentityBinding (`access.smi-spec.io/v1alpha4`): the identities a workload has for the
 * purposes of policy. A scheme that is absent or an empty list is null: it is not used.
 */
export interface IdentityBinding extends Base {
  readonly kind: 'IdentityBinding';
  readonly podLabelSelectors: readonly PodLabelSelector[] | null;
  /** As written, in order (validated by `buildModel`, which names the entry). */
  readonly spiffeIdentities: readonly string[] | null;
  readonly serviceAccount: string | null;
}

/** One named HTTP match, any version, both header encodings. */
export interface HttpMatchSpec {
  readonly name: string;
  /** Null when absent or empty. */
  readonly pathRegex: string | null;
  /** Upper-cased, sorted, de-duplicated; null when absent, empty or containing `*` (any method). */
  readonly methods: readonly string[] | null;
  /** Lower-cased names, sorted by name then value. */
  readonly headers: readonly { readonly name: string; readonly value: string }[];
}

/**
 * A match that Envoy would refuse (a regex RE2 does not accept, or a header name HTTP does not
 * allow). It is kept out of the model, so it cannot make proxies reject their configuration.
 */
export interface InvalidMatch {
  /** Index of the match in the group, as written. */
  readonly index: number;
  /** The match's name. */
  readonly name: string;
  /** Path of the offending field, e.g. `spec.matches[1].headers.user-agent`. */
  readonly field: string;
  /** The end of a sentence that starts with the field path, saying what is wrong. */
  readonly problem: string;
  /** What to do about it. */
  readonly fix: string;
}

/** An HTTPRouteGroup, any version. */
export interface HttpRouteGroup extends Base {
  readonly kind: 'HTTPRouteGroup';
  /** Matches in the order written, invalid ones included (duplicates are reported later). */
  readonly matches: readonly HttpMatchSpec[];
  /** Matches that must be left out, by index; at most one problem each. */
  readonly invalid: readonly InvalidMatch[];
  /** `matches` (v1alpha1, v1alpha2) or `spec.matches` (v1alpha3+). */
  readonly matchesPath: string;
}

/** A TCPRoute or UDPRoute, any version. */
export interface L4Route extends Base {
  readonly kind: 'TCPRoute' | 'UDPRoute';
  /** Sorted, de-duplicated ports; null (no ports, or an empty list) means all ports. */
  readonly ports: readonly number[] | null;
  /** v1alpha4 `spec.matches.name`, which a TrafficTarget rule may name; null when absent. */
  readonly matchName: string | null;
}

/** A port of a Service. */
export interface ServicePortSpec {
  /** `''` when unnamed. */
  readonly name: string;
  readonly port: number;
  /** Defaults to `port`. */
  readonly targetPort: number | string;
  readonly protocol: 'TCP' | 'UDP' | 'SCTP';
  readonly appProtocol: string | null;
}

/** A Service. */
export interface Service extends Base {
  readonly kind: 'Service';
  /** `ClusterIP` when absent. */
  readonly type: string;
  readonly clusterIP: string | null;
  /** Null when absent or empty: such a service selects nothing. */
  readonly selector: Readonly<Record<string, string>> | null;
  /** Ports in the order written. */
  readonly ports: readonly ServicePortSpec[];
}

/** An EndpointSlice. */
export interface EndpointSlice extends Base {
  readonly kind: 'EndpointSlice';
  /** The `kubernetes.io/service-name` label, or null. */
  readonly serviceName: string | null;
  readonly addressType: 'IPv4' | 'IPv6' | 'FQDN';
  readonly endpoints: readonly {
    readonly addresses: readonly string[];
    /** `conditions.ready`, absent counting as ready. */
    readonly ready: boolean;
    /** The `targetRef` when it names a Pod, else null. */
    readonly pod: { readonly namespace: string | null; readonly name: string } | null;
  }[];
  /** `name` is `''` when unnamed; `port` null when unset; protocol defaults to TCP. */
  readonly ports: readonly {
    readonly name: string;
    readonly port: number | null;
    readonly protocol: string;
  }[];
}

/** A container port of a pod (or pod template). */
export interface ContainerPortSpec {
  readonly name: string | null;
  readonly port: number;
  readonly protocol: string;
}

/** A Pod. */
export interface Pod extends Base {
  readonly kind: 'Pod';
  /** `default` when absent. */
  readonly serviceAccount: string;
  readonly containerPorts: readonly ContainerPortSpec[];
  /** `status.podIPs`, else `status.podIP`, sorted. */
  readonly ips: readonly string[];
  /** `status.phase`, or null. */
  readonly phase: string | null;
  /** The `Ready` condition, or phase `Running` when there are no conditions. */
  readonly ready: boolean;
  /** `spec.nodeName`, or null before the pod is scheduled. */
  readonly node: string | null;
  /** The owner reference marked `controller` (else the first), or null. */
  readonly owner: { readonly kind: string; readonly name: string } | null;
}

/** A Deployment; its pod template stands for its pods when none are given. */
export interface Deployment extends Base {
  readonly kind: 'Deployment';
  /** `spec.selector.matchLabels`, or null. */
  readonly selector: Readonly<Record<string, string>> | null;
  readonly templateLabels: Readonly<Record<string, string>>;
  /** The template's service account, `default` when absent. */
  readonly serviceAccount: string;
  readonly containerPorts: readonly ContainerPortSpec[];
}

/** A ServiceAccount. */
export interface ServiceAccount extends Base {
  readonly kind: 'ServiceAccount';
}

/** A Namespace (cluster-scoped: `meta.namespace` is `''`). */
export interface Namespace extends Base {
  readonly kind: 'Namespace';
}

/** Weft's MeshConfig with defaults not yet applied (null = not set). */
export interface MeshConfig extends Base {
  readonly kind: 'MeshConfig';
  readonly trustDomain: string | null;
  readonly permissive: boolean | null;
  readonly clusterDomain: string | null;
  readonly outboundPassthrough: boolean | null;
}

/** Any normalized object. */
export type Normalized =
  | Split
  | TrafficTarget
  | IdentityBinding
  | HttpRouteGroup
  | L4Route
  | Service
  | EndpointSlice
  | Pod
  | Deployment
  | ServiceAccount
  | Namespace
  | MeshConfig;

// ---------------------------------------------------------------- helpers

type Meta = z.infer<typeof ObjectMetaSchema>;

function normalizeMeta(m: Meta, clusterScoped: boolean): ObjectMeta {
  let created: number | null = null;
  if (m.creationTimestamp instanceof Date) created = m.creationTimestamp.getTime();
  else if (typeof m.creationTimestamp === 'string') created = Date.parse(m.creationTimestamp);
  return {
    namespace: clusterScoped ? '' : m.namespace || 'default',
    name: m.name,
    labels: sortKeys(m.labels ?? {}),
    creationTimestamp: created !== null && Number.isFinite(created) ? created : null,
    resourceVersion: m.resourceVersion ?? null,
  };
}

/** A copy of a string map with keys in sorted order, so serialized output is deterministic. */
export function sortKeys(map: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of Object.keys(map).sort()) out[k] = map[k]!;
  return out;
}

function sortedUnique<T extends string | number>(values: readonly T[]): T[] {
  return [...new Set(values)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

type ContainerIn = {
  readonly ports?:
    | readonly { name?: string | null; containerPort: number; protocol?: string | null }[]
    | null;
};

function containerPorts(containers: readonly ContainerIn[] | null | undefined): ContainerPortSpec[] {
  const out: ContainerPortSpec[] = [];
  for (const c of containers ?? []) {
    for (const p of c.ports ?? [])
      out.push({ name: p.name || null, port: p.containerPort, protocol: p.protocol ?? 'TCP' });
  }
  return out;
}

// ---------------------------------------------------------------- per-kind normalizers

function normalizeSplitV1alpha1(
  o: z.infer<typeof TrafficSplitV1alpha1>,
  apiVersion: string,
): Split | FieldProblem {
  const fractions = [];
  for (const [i, b] of o.spec.backends.entries()) {
    const f = parseQuantity(b.weight);
    if (f === null) {
      return {
        field: `spec.backends[${i}].weight`,
        problem: `must be a non-negative Kubernetes quantity such as 500m or 1, not ${JSON.stringify(b.weight)}`,
      };
    }
    fractions.push(f);
  }
  // v1alpha1 weights are quantities, so 500m and 1 are legal and only their ratio matters. They are
  // turned into the smallest integers with exactly the same ratios (500m, 1 -> 1, 2), then scaled
  // down only if their sum would not fit a proxy's uint32 weights.
  const fitted = fitWeights(toRelativeIntegers(fractions));
  return {
    kind: 'TrafficSplit',
    apiVersion,
    meta: normalizeMeta(o.metadata, false),
    rootService: o.spec.service,
    backends: o.spec.backends.map((b, i) => ({ service: b.service, weight: fitted.weights[i]! })),
    matches: null,
    weightsRescaled: fitted.rescaled,
  };
}

function normalizeSplitInt(
  o: z.infer<typeof TrafficSplitV1alpha3> | z.infer<typeof TrafficSplitV1alpha2>,
  apiVersion: string,
): Split {
  const refs = 'matches' in o.spec ? o.spec.matches : null;
  return {
    kind: 'TrafficSplit',
    apiVersion,
    meta: normalizeMeta(o.metadata, false),
    rootService: o.spec.service,
    backends: o.spec.backends.map((b) => ({ service: b.service, weight: b.weight })),
    matches: refs ? refs.map((r) => ({ kind: 'HTTPRouteGroup' as const, name: r.name })) : null,
    weightsRescaled: false,
  };
}

type SubjectIn = {
  kind: string;
  name: string;
  namespace?: string | null | undefined;
  group?: string | null | undefined;
};
type RuleIn = {
  kind: string;
  name: string;
  namespace?: string | null | undefined;
  matches?: string[] | null | undefined;
};

function subjectOf(s: SubjectIn): Subject {
  return { kind: s.kind, name: s.name, namespace: s.namespace || null, group: s.group || null };
}

function ruleOf(r: RuleIn): TargetRule {
  return { kind: r.kind, name: r.name, namespace: r.namespace || null, matches: r.matches ?? null };
}

function normalizeTarget(
  metadata: Meta,
  apiVersion: string,
  body: {
    destination: SubjectIn & { port?: number | null | undefined };
    sources?: SubjectIn[] | null | undefined;
    rules?: RuleIn[] | null | undefined;
  },
  paths: TrafficTarget['paths'],
): TrafficTarget {
  return {
    kind: 'TrafficTarget',
    apiVersion,
    meta: normalizeMeta(metadata, false),
    destination: subjectOf(body.destination),
    destinationPort: body.destination.port ?? null,
    sources: (body.sources ?? []).map(subjectOf),
    rules: (body.rules ?? []).map(ruleOf),
    paths,
  };
}

function normalizeBinding(o: z.infer<typeof IdentityBindingV1alpha4>, apiVersion: string): IdentityBinding {
  const { podLabelSelectors, spiffeIdentities, serviceAccount } = o.spec.schemes;
  return {
    kind: 'IdentityBinding',
    apiVersion,
    meta: normalizeMeta(o.metadata, false),
    podLabelSelectors:
      podLabelSelectors && podLabelSelectors.length > 0
        ? podLabelSelectors.map((p) => ({ name: p.name || null, matchLabels: sortKeys(p.matchLabels) }))
        : null,
    spiffeIdentities: spiffeIdentities && spiffeIdentities.length > 0 ? spiffeIdentities : null,
    serviceAccount: serviceAccount || null,
  };
}

/** Turns either header encoding into one sorted list of lower-cased name/value pairs. */
export function normalizeHeaders(
  headers: Readonly<Record<string, string>> | readonly Readonly<Record<string, string>>[] | null | undefined,
): { name: string; value: string }[] {
  const maps = headers == null ? [] : Array.isArray(headers) ? headers : [headers];
  const out: { name: string; value: string }[] = [];
  for (const m of maps as readonly Readonly<Record<string, string>>[]) {
    for (const [k, v] of Object.entries(m)) out.push({ name: k.toLowerCase(), value: v });
  }
  out.sort((a, b) =>
    a.name < b.name ? -1 : a.name > b.name ? 1 : a.value < b.value ? -1 : a.value > b.value ? 1 : 0,
  );
  // The same pair twice is one condition, not two.
  return out.filter((h, i) => i === 0 || h.name !== out[i - 1]!.name || h.value !== out[i - 1]!.value);
}

type HttpMatchIn = z.infer<typeof HTTPRouteGroupTopLevel>['matches'][number];

function normalizeHttpMatch(m: HttpMatchIn): HttpMatchSpec {
  const methods = (m.methods ?? []).map((x) => x.toUpperCase());
  return {
    name: m.name,
    pathRegex: m.pathRegex ? m.pathRegex : null,
    methods: methods.length === 0 || methods.includes('*') ? null : sortedUnique(methods),
    headers: normalizeHeaders(m.headers),
  };
}

/**
 * HTTP header names are tokens (RFC 9110: letters, digits and ``!#$%&'*+-.^_`|~``); HTTP/2
 * pseudo-headers such as `:authority` are a token after a colon.
 */
const HEADER_NAME = /^:?[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** The first thing in a match that Envoy would refuse, or null. */
function invalidMatch(m: HttpMatchIn, index: number, matchesPath: string): InvalidMatch | null {
  const at = `${matchesPath}[${index}]`;
  const bad = (field: string, problem: string, fix: string): InvalidMatch => ({
    index,
    name: m.name,
    field,
    problem,
    fix,
  });
  if (m.pathRegex) {
    const size = regexSizeProblem(m.pathRegex);
    if (size !== null) return bad(`${at}.pathRegex`, size, 'use a shorter regular expression');
    const problem = re2Problem(m.pathRegex);
    if (problem !== null) {
      return bad(
        `${at}.pathRegex`,
        `${show(m.pathRegex)} is not a valid RE2 regular expression (${problem})`,
        'fix the regular expression',
      );
    }
  }
  const encoded = m.headers == null ? [] : Array.isArray(m.headers) ? m.headers : [m.headers];
  for (const [j, map] of encoded.entries()) {
    for (const [name, value] of Object.entries(map)) {
      const path: (string | number)[] = Array.isArray(m.headers) ? ['headers', j, name] : ['headers', name];
      const field = `${at}.${fieldPath(path)}`;
      if (!HEADER_NAME.test(name)) {
        return bad(
          field,
          `names header ${show(name)}, which is not a valid HTTP header name`,
          'use a header name made of letters, digits and -',
        );
      }
      if (value === '') {
        // Proxies need a non-empty regex; guessing "any value" would allow more than was written.
        return bad(field, 'is an empty regular expression', 'use .* to match any value');
      }
      const size = regexSizeProblem(value);
      if (size !== null) return bad(field, size, 'use a shorter regular expression');
      const problem = re2Problem(value);
      if (problem !== null) {
        return bad(
          field,
          `${show(value)} is not a valid RE2 regular expression (${problem})`,
          'fix the regular expression',
        );
      }
    }
  }
  return null;
}

function httpRouteGroup(
  metadata: Meta,
  apiVersion: string,
  matches: readonly HttpMatchIn[],
  matchesPath: string,
): HttpRouteGroup {
  const invalid: InvalidMatch[] = [];
  for (const [i, m] of matches.entries()) {
    const problem = invalidMatch(m, i, matchesPath);
    if (problem) invalid.push(problem);
  }
  return {
    kind: 'HTTPRouteGroup',
    apiVersion,
    meta: normalizeMeta(metadata, false),
    matches: matches.map(normalizeHttpMatch),
    invalid,
    matchesPath,
  };
}

function l4Route(
  kind: 'TCPRoute' | 'UDPRoute',
  metadata: Meta,
  apiVersion: string,
  match:
    | { name?: string | null | undefined; ports?: readonly number[] | null | undefined }
    | null
    | undefined,
): L4Route {
  const ports = match?.ports;
  return {
    kind,
    apiVersion,
    meta: normalizeMeta(metadata, false),
    ports: ports && ports.length > 0 ? sortedUnique(ports) : null,
    matchName: match?.name || null,
  };
}

function normalizeService(o: z.infer<typeof ServiceV1>, apiVersion: string): Service {
  const spec = o.spec ?? {};
  const selector = spec.selector && Object.keys(spec.selector).length > 0 ? sortKeys(spec.selector) : null;
  return {
    kind: 'Service',
    apiVersion,
    meta: normalizeMeta(o.metadata, false),
    type: spec.type || 'ClusterIP',
    clusterIP: spec.clusterIP || null,
    selector,
    ports: (spec.ports ?? []).map((p) => ({
      name: p.name ?? '',
      port: p.port,
      targetPort: p.targetPort ?? p.port,
      protocol: p.protocol ?? 'TCP',
      appProtocol: p.appProtocol || null,
    })),
  };
}

function normalizeSlice(
  o: z.infer<typeof EndpointSliceV1>,
  apiVersion: string,
): EndpointSlice | FieldProblem {
  const meta = normalizeMeta(o.metadata, false);
  // A malformed address would make proxies reject the endpoints of every port of the Service.
  const family = o.addressType === 'IPv4' ? 4 : o.addressType === 'IPv6' ? 6 : null;
  if (family !== null) {
    for (const [i, e] of (o.endpoints ?? []).entries()) {
      for (const [j, address] of e.addresses.entries()) {
        if (isIP(address) !== family) {
          return {
            field: `endpoints[${i}].addresses[${j}]`,
            problem: `must be an ${o.addressType} address (addressType is ${o.addressType}), not ${show(address)}`,
          };
        }
      }
    }
  }
  return {
    kind: 'EndpointSlice',
    apiVersion,
    meta,
    serviceName: meta.labels['kubernetes.io/service-name'] || null,
    addressType: o.addressType,
    endpoints: (o.endpoints ?? []).map((e) => ({
      addresses: e.addresses,
      ready: e.conditions?.ready ?? true,
      pod:
        e.targetRef && (e.targetRef.kind ?? 'Pod') === 'Pod' && e.targetRef.name
          ? { namespace: e.targetRef.namespace || null, name: e.targetRef.name }
          : null,
    })),
    ports: (o.ports ?? []).map((p) => ({
      name: p.name ?? '',
      port: p.port ?? null,
      protocol: p.protocol ?? 'TCP',
    })),
  };
}

function normalizePod(o: z.infer<typeof PodV1>, apiVersion: string): Pod {
  const status = o.status ?? {};
  const ips =
    status.podIPs && status.podIPs.length > 0
      ? status.podIPs.map((p) => p.ip)
      : status.podIP
        ? [status.podIP]
        : [];
  const readyCondition = (status.conditions ?? []).find((c) => c.type === 'Ready');
  const phase = status.phase ?? null;
  return {
    kind: 'Pod',
    apiVersion,
    meta: normalizeMeta(o.metadata, false),
    serviceAccount: o.spec?.serviceAccountName || o.spec?.serviceAccount || 'default',
    containerPorts: containerPorts(o.spec?.containers),
    ips: sortedUnique(ips.filter((ip) => ip !== '')),
    phase,
    ready: readyCondition ? readyCondition.status === 'True' : phase === 'Running',
    node: o.spec?.nodeName || null,
    owner: ownerOf(o.metadata.ownerReferences),
  };
}

function ownerOf(
  refs: readonly { kind: string; name: string; controller?: boolean | null }[] | null | undefined,
) {
  const r = refs?.find((x) => x.controller) ?? refs?.[0];
  return r ? { kind: r.kind, name: r.name } : null;
}

function normalizeDeployment(o: z.infer<typeof DeploymentV1>, apiVersion: string): Deployment {
  const t = o.spec.template;
  const matchLabels = o.spec.selector?.matchLabels;
  return {
    kind: 'Deployment',
    apiVersion,
    meta: normalizeMeta(o.metadata, false),
    selector: matchLabels && Object.keys(matchLabels).length > 0 ? sortKeys(matchLabels) : null,
    templateLabels: sortKeys(t.metadata?.labels ?? {}),
    serviceAccount: t.spec?.serviceAccountName || t.spec?.serviceAccount || 'default',
    containerPorts: containerPorts(t.spec?.containers),
  };
}

// ---------------------------------------------------------------- registry

/** A problem found while normalizing one object: where, and the end of a sentence saying what. */
export interface NormalizeProblem {
  readonly field: string;
  readonly problem: string;
  /** How many more problems the object has beyond this one. */
  readonly more: number;
}

/** A problem a converter finds after the schema passed. */
type FieldProblem = { readonly field: string; readonly problem: string };

/** How one apiVersion + kind is read. */
interface Reader {
  readonly read: (raw: unknown, apiVersion: string) => Normalized | NormalizeProblem;
}

/** Parses with a schema, phrasing every issue with {@link describeIssue}. */
function parseWith<S extends z.ZodType, R extends Normalized>(
  schema: S,
  raw: unknown,
  convert: (parsed: z.infer<S>) => R | FieldProblem,
  pathPrefix: readonly (string | number)[] = [],
): R | NormalizeProblem {
  const result = schema.safeParse(raw, {
    reportInput: true,
    error: (iss) => describeIssue(iss as IssueLike),
  });
  if (!result.success) {
    const issues = result.error.issues;
    const first = issues[0]!;
    return {
      field: fieldPath([...pathPrefix, ...first.path]),
      problem: first.message,
      more: issues.length - 1,
    };
  }
  const out = convert(result.data);
  return 'problem' in out ? { ...out, more: 0 } : out;
}

/** Renders a path as `spec.backends[1].service`, quoting keys that are not identifiers. */
export function fieldPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else if (typeof p === 'string' && /^[A-Za-z_][A-Za-z0-9_-]*$/.test(p)) out += out === '' ? p : `.${p}`;
    else out += `[${JSON.stringify(String(p))}]`;
  }
  return out;
}

function hasKey(raw: unknown, key: string): boolean {
  return typeof raw === 'object' && raw !== null && key in raw;
}

function specHas(raw: unknown, key: string): boolean {
  return hasKey(raw, 'spec') && hasKey((raw as { spec: unknown }).spec, key);
}

/**
 * HTTPRouteGroup: the spec documents `matches` at the top level in v1alpha1 and v1alpha2 and under
 * `spec` from v1alpha3, but manifests (and CRDs) in the wild mix the two, so every version accepts
 * both. The documented place is tried first, so a group with neither is reported there.
 */
function readHttpRouteGroup(raw: unknown, apiVersion: string): Normalized | NormalizeProblem {
  const topLevelFirst = apiVersion.endsWith('/v1alpha1') || apiVersion.endsWith('/v1alpha2');
  const topLevel = topLevelFirst
    ? !(!hasKey(raw, 'matches') && specHas(raw, 'matches'))
    : hasKey(raw, 'matches') && !specHas(raw, 'matches');
  return topLevel
    ? parseWith(HTTPRouteGroupTopLevel, raw, (o) =>
        httpRouteGroup(o.metadata, apiVersion, o.matches, 'matches'),
      )
    : parseWith(HTTPRouteGroupUnderSpec, raw, (o) =>
        httpRouteGroup(o.metadata, apiVersion, o.spec.matches, 'spec.matches'),
      );
}

const TT_V1ALPHA1_PATHS = { destination: 'destination', sources: 'sources', rules: 'specs' };
const TT_V1ALPHA1_SPEC_PATHS = {
  destination: 'spec.destination',
  sources: 'spec.sources',
  rules: 'spec.specs',
};
const TT_PATHS = { destination: 'spec.destination', sources: 'spec.sources', rules: 'spec.rules' };

/**
 * Every served apiVersion and kind, keyed `<apiVersion> <kind>`. Adding a version is adding a line
 * here and, when its shape is new, a schema.
 */
const READERS: ReadonlyMap<string, Reader> = new Map<string, Reader>([
  [
    'split.smi-spec.io/v1alpha1 TrafficSplit',
    { read: (r, v) => parseWith(TrafficSplitV1alpha1, r, (o) => normalizeSplitV1alpha1(o, v)) },
  ],
  [
    'split.smi-spec.io/v1alpha2 TrafficSplit',
    { read: (r, v) => parseWith(TrafficSplitV1alpha2, r, (o) => normalizeSplitInt(o, v)) },
  ],
  [
    'split.smi-spec.io/v1alpha3 TrafficSplit',
    { read: (r, v) => parseWith(TrafficSplitV1alpha3, r, (o) => normalizeSplitInt(o, v)) },
  ],
  [
    'split.smi-spec.io/v1alpha4 TrafficSplit',
    { read: (r, v) => parseWith(TrafficSplitV1alpha4, r, (o) => normalizeSplitInt(o, v)) },
  ],
  [
    'access.smi-spec.io/v1alpha1 TrafficTarget',
    {
      // v1alpha1 puts destination/sources/specs at the top level; accept them under `spec` too.
      read: (r, v) =>
        !hasKey(r, 'destination') && specHas(r, 'destination')
          ? parseWith(TrafficTargetV1alpha1UnderSpec, r, (o) =>
              normalizeTarget(o.metadata, v, { ...o.spec, rules: o.spec.specs }, TT_V1ALPHA1_SPEC_PATHS),
            )
          : parseWith(TrafficTargetV1alpha1, r, (o) =>
              normalizeTarget(o.metadata, v, { ...o, rules: o.specs }, TT_V1ALPHA1_PATHS),
            ),
    },
  ],
  [
    'access.smi-spec.io/v1alpha2 TrafficTarget',
    {
      read: (r, v) =>
        parseWith(TrafficTargetV1alpha2, r, (o) => normalizeTarget(o.metadata, v, o.spec, TT_PATHS)),
    },
  ],
  [
    'access.smi-spec.io/v1alpha3 TrafficTarget',
    {
      read: (r, v) =>
        parseWith(TrafficTargetV1alpha3, r, (o) => normalizeTarget(o.metadata, v, o.spec, TT_PATHS)),
    },
  ],
  [
    'access.smi-spec.io/v1alpha4 TrafficTarget',
    {
      read: (r, v) =>
        parseWith(TrafficTargetV1alpha4, r, (o) => normalizeTarget(o.metadata, v, o.spec, TT_PATHS)),
    },
  ],
  [
    'access.smi-spec.io/v1alpha4 IdentityBinding',
    { read: (r, v) => parseWith(IdentityBindingV1alpha4, r, (o) => normalizeBinding(o, v)) },
  ],
  ...(['v1alpha1', 'v1alpha2', 'v1alpha3', 'v1alpha4'] as const).map(
    (ver) => [`specs.smi-spec.io/${ver} HTTPRouteGroup`, { read: readHttpRouteGroup }] as const,
  ),
  ...(['v1alpha1', 'v1alpha2', 'v1alpha3'] as const).map(
    (ver) =>
      [
        `specs.smi-spec.io/${ver} TCPRoute`,
        {
          read: (r: unknown, v: string) =>
            parseWith(TCPRouteNoPorts, r, (o) => l4Route('TCPRoute', o.metadata, v, null)),
        },
      ] as const,
  ),
  [
    'specs.smi-spec.io/v1alpha4 TCPRoute',
    {
      read: (r, v) =>
        parseWith(L4RouteV1alpha4, r, (o) => l4Route('TCPRoute', o.metadata, v, o.spec?.matches)),
    },
  ],
  [
    'specs.smi-spec.io/v1alpha4 UDPRoute',
    {
      read: (r, v) =>
        parseWith(L4RouteV1alpha4, r, (o) => l4Route('UDPRoute', o.metadata, v, o.spec?.matches)),
    },
  ],
  [
    'v1 Namespace',
    {
      read: (r, v) =>
        parseWith(NamespaceV1, r, (o) => ({
          kind: 'Namespace' as const,
          apiVersion: v,
          meta: normalizeMeta(o.metadata, true),
        })),
    },
  ],
  [
    'v1 ServiceAccount',
    {
      read: (r, v) =>
        parseWith(ServiceAccountV1, r, (o) => ({
          kind: 'ServiceAccount' as const,
          apiVersion: v,
          meta: normalizeMeta(o.metadata, false),
        })),
    },
  ],
  ['v1 Service', { read: (r, v) => parseWith(ServiceV1, r, (o) => normalizeService(o, v)) }],
  [
    'discovery.k8s.io/v1 EndpointSlice',
    { read: (r, v) => parseWith(EndpointSliceV1, r, (o) => normalizeSlice(o, v)) },
  ],
  ['v1 Pod', { read: (r, v) => parseWith(PodV1, r, (o) => normalizePod(o, v)) }],
  ['apps/v1 Deployment', { read: (r, v) => parseWith(DeploymentV1, r, (o) => normalizeDeployment(o, v)) }],
  [
    'weft.dev/v1alpha1 MeshConfig',
    {
      read: (r, v) =>
        parseWith(MeshConfigV1alpha1, r, (o) => ({
          kind: 'MeshConfig' as const,
          apiVersion: v,
          // The mesh has one MeshConfig; where it lives does not matter, so it is treated as cluster-scoped.
          meta: normalizeMeta(o.metadata, true),
          trustDomain: o.spec?.trustDomain ?? null,
          permissive: o.spec?.permissive ?? null,
          clusterDomain: o.spec?.clusterDomain ?? null,
          outboundPassthrough: o.spec?.outboundPassthrough ?? null,
        })),
    },
  ],
]);

/** The SMI kinds (split, access and specs groups), which Weft reads in every served version. */
export const SMI_KINDS: ReadonlySet<string> = new Set([
  'TrafficSplit',
  'TrafficTarget',
  'IdentityBinding',
  'HTTPRouteGroup',
  'TCPRoute',
  'UDPRoute',
]);

/** Kinds that are cluster-scoped, so their condition object has an empty namespace. */
export const CLUSTER_SCOPED_KINDS: ReadonlySet<string> = new Set(['Namespace', 'MeshConfig']);

/** The served apiVersions of a kind, sorted; empty when the kind is not read at all. */
export function servedVersions(kind: string): string[] {
  const out: string[] = [];
  for (const key of READERS.keys()) {
    const [apiVersion, k] = key.split(' ') as [string, string];
    if (k === kind) out.push(apiVersion);
  }
  return out.sort();
}

/**
 * Reads one object of a known apiVersion and kind. Returns the normalized object, a problem (the
 * object does not match its schema), or null when this apiVersion + kind is not served.
 */
export function normalizeObject(
  raw: unknown,
  apiVersion: string,
  kind: string,
): Normalized | NormalizeProblem | null {
  const reader = READERS.get(`${apiVersion} ${kind}`);
  return reader ? reader.read(raw, apiVersion) : null;
}

/** Whether a {@link normalizeObject} result is a problem rather than an object. */
export function isProblem(x: Normalized | NormalizeProblem): x is NormalizeProblem {
  return 'problem' in x;
}

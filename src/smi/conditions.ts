/**
 * Conditions: the reasons the input stage reports, and helpers that build them consistently.
 *
 * Severity rule: `Error` when something the user asked for is not served (an object, or part of
 * one, is left out); `Warning` when everything is served but probably not as meant, or when an
 * input is ignored without loss.
 */
import { cmp } from './helpers';
import type { Condition } from './model';

/** How a reason is reported: condition type, status and default severity, and what it means. */
export interface ReasonInfo {
  /** See {@link Condition.type}. */
  readonly type: 'Accepted' | 'ResolvedRefs' | 'Conflicted';
  /**
   * `Accepted`=`False` only when the object is left out entirely; an object that is used with a
   * part dropped is `Accepted`=`True` with severity `Error`. `ResolvedRefs` is always `False` and
   * `Conflicted` always `True` when reported.
   */
  readonly status: 'True' | 'False';
  readonly severity: 'Error' | 'Warning';
  /** What happened to the object. */
  readonly effect: string;
}

const A_OUT = { type: 'Accepted', status: 'False', severity: 'Error' } as const;
const A_PART = { type: 'Accepted', status: 'True', severity: 'Error' } as const;
const A_WARN = { type: 'Accepted', status: 'True', severity: 'Warning' } as const;
const A_IGNORED = { type: 'Accepted', status: 'False', severity: 'Warning' } as const;
const REF_ERR = { type: 'ResolvedRefs', status: 'False', severity: 'Error' } as const;
const REF_WARN = { type: 'ResolvedRefs', status: 'False', severity: 'Warning' } as const;
const CONFLICT = { type: 'Conflicted', status: 'True', severity: 'Error' } as const;

/**
 * Every reason the input stage produces, with how it is reported. Reasons are API: tools and tests
 * match on them, so they are only ever added, never renamed.
 */
export const REASONS = {
  // Reading objects.
  YamlParseError: { ...A_OUT, effect: 'a YAML document could not be parsed and is left out' },
  InvalidObject: { ...A_OUT, effect: 'not a Kubernetes object (apiVersion, kind, metadata.name); left out' },
  FileUnreadable: {
    ...A_OUT,
    effect: 'a file or folder of the config folder cannot be read; what it last held keeps serving',
  },
  UnknownKind: { ...A_IGNORED, effect: 'a kind Weft does not read; ignored' },
  UnsupportedVersion: { ...A_OUT, effect: 'a kind Weft reads, in a version it does not serve; left out' },
  InvalidName: {
    ...A_OUT,
    effect: 'metadata.name or metadata.namespace breaks the Kubernetes name rules for its kind; left out',
  },
  InvalidSpec: { ...A_OUT, effect: 'does not match its schema; left out' },
  LastGoodKept: {
    ...A_PART,
    effect: 'a new version does not match its schema; it is refused and the last good version keeps serving',
  },
  DuplicateObject: { ...A_WARN, effect: 'the same object given more than once; one copy is used' },
  MeshConfigConflict: { ...CONFLICT, effect: 'a second MeshConfig; the oldest is used' },
  // Services and endpoints.
  UnsupportedProtocol: { ...A_PART, effect: 'an SCTP service port; that port is not served' },
  UnresolvedTargetPort: {
    ...REF_ERR,
    effect: 'a named targetPort a Pod does not have; not served on that Pod',
  },
  EndpointSliceServiceNotFound: { ...REF_WARN, effect: 'a slice for a Service that is not given; ignored' },
  EndpointSliceMissingServiceName: { ...A_IGNORED, effect: 'a slice without a service-name label; ignored' },
  UnsupportedAddressType: { ...A_OUT, effect: 'an FQDN slice; its endpoints are not served' },
  MissingClusterIP: {
    ...A_PART,
    effect: 'a Service without a cluster IP that an Envoy sidecar may call; it cannot route those calls',
  },
  // HTTPRouteGroups.
  DuplicateMatchName: { ...A_PART, effect: 'a match name used twice in a group; only the first is used' },
  InvalidMatch: {
    ...A_PART,
    effect: 'a match with a regex RE2 rejects or a bad header name; that match is left out',
  },
  // TrafficSplits.
  CrossNamespaceService: { ...REF_ERR, effect: 'a split names a Service in another namespace; not used' },
  RootServiceNotFound: { ...REF_ERR, effect: 'the root service is not a Service; the split is left out' },
  SplitCycle: {
    ...A_WARN,
    effect: 'split backends loop back to this root; splits do not chain, so the loop swaps traffic',
  },
  SplitConflict: { ...CONFLICT, effect: 'another split on the same root is older; this one is left out' },
  BackendNotFound: { ...REF_ERR, effect: 'a backend is not a Service; it is left out' },
  DuplicateBackend: { ...A_WARN, effect: 'a backend listed twice; the weights are added' },
  BackendPortMismatch: { ...REF_WARN, effect: 'a backend lacks some root ports (Error when it has none)' },
  NoBackends: { ...A_OUT, effect: 'no usable backend is left; the split is left out' },
  AllWeightsZero: {
    ...A_WARN,
    effect: 'every weight is 0; the traffic the split covers goes nowhere (calls fail)',
  },
  SelfReferentialBackend: {
    ...A_WARN,
    effect: 'the root service is also a backend; its share goes to every version behind the root',
  },
  WeightsRescaled: { ...A_WARN, effect: 'weights too large for a proxy were scaled, ratios kept' },
  RouteGroupNotFound: {
    ...REF_ERR,
    effect: 'a split names a missing HTTPRouteGroup; its requests are not split',
  },
  // IdentityBindings.
  IdentityBindingNoScheme: { ...A_OUT, effect: 'an IdentityBinding with no scheme; left out' },
  IdentityBindingConflictingSchemes: {
    ...A_OUT,
    effect: 'an IdentityBinding with both podLabelSelectors and serviceAccount (exclusive); left out',
  },
  InvalidSpiffeId: {
    ...A_PART,
    effect: 'a spiffeIdentities entry that is not a SPIFFE ID; that entry is left out',
  },
  SpiffeIdOutsideNamespace: {
    ...A_PART,
    effect: "a SPIFFE ID of a ServiceAccount outside the binding's namespace; that entry is left out",
  },
  SharedServiceAccount: {
    ...A_PART,
    effect: 'selected pods share a ServiceAccount with pods not selected; that ServiceAccount is not bound',
  },
  // TrafficTargets.
  UnsupportedSubjectKind: {
    ...REF_ERR,
    effect: 'a subject that is not a ServiceAccount (or, in v1alpha4, an IdentityBinding); not used',
  },
  IdentityBindingNotFound: {
    ...REF_WARN,
    effect: 'a subject names a missing IdentityBinding; it grants nothing until the binding appears',
  },
  IdentityBindingInOtherNamespace: {
    ...REF_WARN,
    effect: 'a subject names an IdentityBinding that exists only in another namespace; it grants nothing',
  },
  DestinationNamespaceMismatch: { ...A_OUT, effect: 'the destination is in another namespace; left out' },
  UnknownServiceAccount: { ...REF_WARN, effect: 'a ServiceAccount neither defined nor used by a workload' },
  UnsupportedRuleKind: { ...REF_ERR, effect: 'a rule of a kind other than the SMI routes; left out' },
  RouteNotFound: { ...REF_ERR, effect: 'a rule names a missing route; the rule is left out' },
  MatchNotFound: { ...REF_ERR, effect: 'a rule names a missing match; that name allows nothing' },
  MatchesOnL4Route: {
    ...REF_ERR,
    effect: 'match names on a rule whose route has no named match; rule left out',
  },
  PortNotServed: { ...REF_WARN, effect: 'an allowed port no Service of the destination serves' },
  NoDestination: {
    ...A_WARN,
    effect: 'the destination IdentityBinding binds no ServiceAccount; the target applies to no workload',
  },
  NoSources: { ...A_WARN, effect: 'no usable source; the target allows nothing' },
  NoRules: { ...A_WARN, effect: 'no usable rule; the target allows nothing' },
} as const satisfies Record<string, ReasonInfo>;

/** One of the keys of {@link REASONS}. */
export type ConditionReason = keyof typeof REASONS;

/** The `<Kind>/<namespace>/<name>` string that identifies an object in a condition. */
export function objectKey(kind: string, namespace: string, name: string): string {
  return `${kind}/${namespace}/${name}`;
}

/** How an object is named at the start of a message: `TrafficSplit default/ab`, or `Namespace prod`. */
export function objectLabel(kind: string, namespace: string, name: string): string {
  return namespace === '' ? `${kind} ${name}` : `${kind} ${namespace}/${name}`;
}

/** An object a condition is about. */
export interface Subject {
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
}

/**
 * Builds a condition whose message starts with the object's kind, namespace and name; type, status
 * and severity come from {@link REASONS} unless `severity` overrides the default.
 */
export function condition(
  subject: Subject,
  reason: ConditionReason,
  text: string,
  field?: string,
  severity?: 'Error' | 'Warning',
): Condition {
  const info: ReasonInfo = REASONS[reason];
  const base = {
    object: objectKey(subject.kind, subject.namespace, subject.name),
    type: info.type,
    status: info.status,
    severity: severity ?? info.severity,
    reason,
  };
  const message = `${objectLabel(subject.kind, subject.namespace, subject.name)}: ${text}`;
  return field === undefined ? { ...base, message } : { ...base, field, message };
}

/** Orders conditions by object, type, reason, field, message; the order of inputs never matters. */
export function compareConditions(a: Condition, b: Condition): number {
  return (
    cmp(a.object, b.object) ||
    cmp(a.type, b.type) ||
    cmp(a.reason, b.reason) ||
    cmp(a.field ?? '', b.field ?? '') ||
    cmp(a.message, b.message)
  );
}

/** Sorts conditions and drops exact duplicates (the same problem found twice is reported once). */
export function sortConditions(conditions: readonly Condition[]): Condition[] {
  const sorted = [...conditions].sort(compareConditions);
  return sorted.filter(
    (c, i) => i === 0 || compareConditions(c, sorted[i - 1]!) !== 0 || c.severity !== sorted[i - 1]!.severity,
  );
}

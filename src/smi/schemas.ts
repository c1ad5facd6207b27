/**
 * zod schemas for every object kind and version Weft reads: the SMI kinds (TrafficSplit,
 * TrafficTarget, IdentityBinding, HTTPRouteGroup, TCPRoute, UDPRoute) in every served version, the
 * core Kubernetes objects they refer to, and Weft's own MeshConfig.
 *
 * The schemas check shape only, as the API server would with the CRDs; meaning (references,
 * conflicts, weights) is checked later by `buildModel`. Unknown fields are dropped silently, as the
 * API server prunes them. Optional fields accept `null` too, because objects read from the API
 * server carry explicit nulls.
 */
import { isIP } from 'node:net';
import { z } from 'zod';

// ---------------------------------------------------------------- shared pieces

/** A non-empty string, used for names and references. */
const name = z.string().min(1);

/** String-to-string maps such as labels and selectors. */
const stringMap = z.record(z.string(), z.string());

/** A TCP or UDP port number. */
const portNumber = z.number().int().min(1).max(65535);

/**
 * An IPv4 or IPv6 address. Addresses end up in listener and endpoint configuration, where a
 * malformed one makes proxies reject the whole resource, so they are checked on the way in.
 */
const ipAddress = z.string().refine((s) => isIP(s) !== 0, {
  error: (iss) => `must be an IPv4 or IPv6 address, not ${show(iss.input)}`,
});

/** Kubernetes timestamps: strings in YAML and JSON, `Date` objects from some client libraries. */
const timestamp = z.union([z.string(), z.date()], {
  error: (iss) => `must be an RFC 3339 timestamp, not ${show(iss.input)}`,
});

/** The part of `metadata` Weft reads. */
export const ObjectMetaSchema = z.object({
  name,
  namespace: z.string().nullish(),
  labels: stringMap.nullish(),
  creationTimestamp: timestamp.nullish(),
  resourceVersion: z.string().nullish(),
});

/** `metadata` of any object, for the fields every kind shares. */
const meta = { metadata: ObjectMetaSchema };

// ---------------------------------------------------------------- split.smi-spec.io

/** A v1alpha1 weight: a Kubernetes quantity such as `500m`, or a plain number. */
const quantityWeight = z.union([z.string(), z.number()], {
  error: (iss) => `must be a non-negative Kubernetes quantity such as 500m or 1, not ${show(iss.input)}`,
});

/** A v1alpha2+ weight: a whole, non-negative number. */
const intWeight = z.number().int().nonnegative();

/** TrafficSplit `split.smi-spec.io/v1alpha1`: quantity weights, no matches. */
export const TrafficSplitV1alpha1 = z.object({
  ...meta,
  spec: z.object({
    service: name,
    backends: z.array(z.object({ service: name, weight: quantityWeight })),
  }),
});

/** TrafficSplit `split.smi-spec.io/v1alpha2`: integer weights. */
export const TrafficSplitV1alpha2 = z.object({
  ...meta,
  spec: z.object({
    service: name,
    backends: z.array(z.object({ service: name, weight: intWeight })),
  }),
});

/** A reference from a split to an HTTPRouteGroup in its namespace (v1alpha3, v1alpha4). */
const splitMatchRef = z.object({
  kind: z.literal('HTTPRouteGroup'),
  name,
  apiGroup: z.string().nullish(),
});

/** TrafficSplit `split.smi-spec.io/v1alpha3`: adds `matches`, references to HTTPRouteGroups. */
export const TrafficSplitV1alpha3 = z.object({
  ...meta,
  spec: z.object({
    service: name,
    backends: z.array(z.object({ service: name, weight: intWeight })),
    matches: z.array(splitMatchRef).nullish(),
  }),
});

/** TrafficSplit `split.smi-spec.io/v1alpha4`: same shape as v1alpha3. */
export const TrafficSplitV1alpha4 = TrafficSplitV1alpha3;

// ---------------------------------------------------------------- access.smi-spec.io

/** Who a TrafficTarget names: in the versions Weft serves, a ServiceAccount. */
const subject = z.object({ kind: name, name, namespace: z.string().nullish() });

/** A v1alpha1/v1alpha2 destination, which may also name one port. */
const destinationWithPort = subject.extend({ port: portNumber.nullish() });

/** A reference from a TrafficTarget to a route (`specs[]` in v1alpha1, `rules[]` later). */
const targetRule = z.object({ kind: name, name, matches: z.array(name).nullish() });

/** The body of a v1alpha1 TrafficTarget, which in that version sits at the top level. */
const trafficTargetV1alpha1Body = {
  destination: destinationWithPort,
  sources: z.array(subject).nullish(),
  specs: z.array(targetRule.extend({ namespace: z.string().nullish() })).nullish(),
};

/** TrafficTarget `access.smi-spec.io/v1alpha1`: `destination`, `sources` and `specs` at the top level. */
export const TrafficTargetV1alpha1 = z.object({ ...meta, ...trafficTargetV1alpha1Body });

/**
 * The same v1alpha1 body written under `spec`, as some tools emit it. Accepted too, so that the
 * version's odd layout is not a trap.
 */
export const TrafficTargetV1alpha1UnderSpec = z.object({
  ...meta,
  spec: z.object(trafficTargetV1alpha1Body),
});

/** TrafficTarget `access.smi-spec.io/v1alpha2`: `spec.destination` (with `port`), `spec.rules`. */
export const TrafficTargetV1alpha2 = z.object({
  ...meta,
  spec: z.object({
    destination: destinationWithPort,
    sources: z.array(subject).nullish(),
    rules: z.array(targetRule).nullish(),
  }),
});

/**
 * TrafficTarget `access.smi-spec.io/v1alpha3`: the v1alpha2 shape; the spec dropped
 * `destination.port` in favour of TCPRoute ports. A `port` that is still written is honoured, not
 * dropped: dropping it would silently allow every port, and access should only ever be narrower
 * than written, never wider.
 */
export const TrafficTargetV1alpha3 = z.object({
  ...meta,
  spec: z.object({
    destination: destinationWithPort,
    sources: z.array(subject).nullish(),
    rules: z.array(targetRule).nullish(),
  }),
});

/** A v1alpha4 subject: a ServiceAccount or an IdentityBinding, with the API group of the latter. */
const subjectV1alpha4 = subject.extend({ group: z.string().nullish() });

/**
 * TrafficTarget `access.smi-spec.io/v1alpha4`: the v1alpha3 shape whose destination and sources may
 * also name an IdentityBinding (`kind: IdentityBinding`, `group: access.smi-spec.io`). A written
 * `destination.port` is honoured as in v1alpha3, for the same reason.
 */
export const TrafficTargetV1alpha4 = z.object({
  ...meta,
  spec: z.object({
    destination: subjectV1alpha4.extend({ port: portNumber.nullish() }),
    sources: z.array(subjectV1alpha4).nullish(),
    rules: z.array(targetRule).nullish(),
  }),
});

/**
 * One `podLabelSelectors` entry of an IdentityBinding. Only `matchLabels` is read, and it must name
 * at least one label: an empty selector would select every pod of the namespace, and a
 * `matchExpressions` Weft ignored would select more pods than written, so both are refused rather
 * than widen what the binding grants.
 */
const podLabelSelector = z.object({
  name: z.string().nullish(),
  matchLabels: stringMap.refine((m) => Object.keys(m).length > 0, {
    error: 'must name at least one label; an empty selector would select every pod of the namespace',
  }),
  matchExpressions: z
    .array(z.unknown())
    .max(0, { error: 'is not supported; select pods with matchLabels only' })
    .nullish(),
});

/**
 * IdentityBinding `access.smi-spec.io/v1alpha4`: the identities of a workload, by up to three
 * schemes (`podLabelSelectors`, `spiffeIdentities`, `serviceAccount`). Which combinations are
 * allowed and whether each SPIFFE ID is well formed is checked by `buildModel`, which can name the
 * scheme and the entry.
 */
export const IdentityBindingV1alpha4 = z.object({
  ...meta,
  spec: z.object({
    schemes: z.object({
      podLabelSelectors: z.array(podLabelSelector).nullish(),
      spiffeIdentities: z.array(name).nullish(),
      serviceAccount: z.string().nullish(),
    }),
  }),
});

// ---------------------------------------------------------------- specs.smi-spec.io

/** HTTP methods the spec allows, plus `*` for any. Checked case-insensitively. */
export const HTTP_METHODS = [
  '*',
  'GET',
  'HEAD',
  'PUT',
  'POST',
  'DELETE',
  'CONNECT',
  'OPTIONS',
  'TRACE',
  'PATCH',
] as const;

const httpMethod = z.string().refine((m) => (HTTP_METHODS as readonly string[]).includes(m.toUpperCase()), {
  error: (iss) => `must be one of ${HTTP_METHODS.join(', ')}, not ${show(iss.input)}`,
});

/**
 * Header filters in both encodings found in the wild: a map (`{user-agent: ".*Firefox.*"}`, the Go
 * SDK's type) and a list of single-key maps (`[{user-agent: ".*Firefox.*"}]`, the CRD's schema).
 */
const headers = z.union([stringMap, z.array(stringMap)], {
  error: (iss) => {
    // Usually the shape is right and one value is not a string (YAML reads `yes` or `1` unquoted
    // as a boolean or a number): name that value rather than the whole field.
    const maps = Array.isArray(iss.input) ? iss.input : [iss.input];
    for (const m of maps) {
      if (typeof m !== 'object' || m === null || Array.isArray(m)) continue;
      for (const [k, v] of Object.entries(m)) {
        if (typeof v !== 'string') {
          return `must map each header name to a regex string, but ${JSON.stringify(k)} is ${show(v)}; quote the value in YAML`;
        }
      }
    }
    return `must be a map of header name to regex, or a list of such maps, not ${show(iss.input)}`;
  },
});

/** One named HTTP match; the same in every version. */
const httpMatch = z.object({
  name,
  pathRegex: z.string().nullish(),
  methods: z.array(httpMethod).nullish(),
  headers: headers.nullish(),
});

/**
 * HTTPRouteGroup with `matches` at the top level, as the spec documents for `v1alpha1` and
 * `v1alpha2`.
 */
export const HTTPRouteGroupTopLevel = z.object({ ...meta, matches: z.array(httpMatch) });

/** HTTPRouteGroup with `spec.matches`, as the spec documents for `v1alpha3` and `v1alpha4`. */
export const HTTPRouteGroupUnderSpec = z.object({
  ...meta,
  spec: z.object({ matches: z.array(httpMatch) }),
});

/** TCPRoute `specs.smi-spec.io/v1alpha1` to `v1alpha3`: no fields beyond metadata (all ports). */
export const TCPRouteNoPorts = z.object(meta);

/**
 * TCPRoute and UDPRoute `specs.smi-spec.io/v1alpha4`: one optional match, `spec.matches`, with
 * `ports` and an optional `name` a TrafficTarget rule may refer to.
 */
export const L4RouteV1alpha4 = z.object({
  ...meta,
  spec: z
    .object({
      matches: z.object({ name: z.string().nullish(), ports: z.array(portNumber).nullish() }).nullish(),
    })
    .nullish(),
});

// ---------------------------------------------------------------- core Kubernetes objects

/** A port protocol as Kubernetes spells it. */
const protocol = z.enum(['TCP', 'UDP', 'SCTP']);

const containerPort = z.object({
  name: z.string().nullish(),
  containerPort: portNumber,
  protocol: protocol.nullish(),
});

/** The part of a pod spec Weft reads. */
const podSpec = z.object({
  serviceAccountName: z.string().nullish(),
  // Deprecated alias of serviceAccountName that older manifests still use.
  serviceAccount: z.string().nullish(),
  containers: z
    .array(z.object({ name: z.string().nullish(), ports: z.array(containerPort).nullish() }))
    .nullish(),
  // Read by TrafficMetrics only (a node's figures): a malformed value counts as unscheduled rather
  // than dropping the Pod, and with it the workload's config.
  nodeName: z.string().nullish().catch(null),
});

/** Namespace `v1`. */
export const NamespaceV1 = z.object(meta);

/** ServiceAccount `v1`. */
export const ServiceAccountV1 = z.object(meta);

/** Service `v1`. */
export const ServiceV1 = z.object({
  ...meta,
  spec: z
    .object({
      type: z.string().nullish(),
      // `None` for a headless service, empty while not yet allocated.
      clusterIP: z
        .string()
        .refine((s) => s === '' || s === 'None' || isIP(s) !== 0, {
          error: (iss) => `must be an IP address, None or empty, not ${show(iss.input)}`,
        })
        .nullish(),
      selector: stringMap.nullish(),
      ports: z
        .array(
          z.object({
            name: z.string().nullish(),
            port: portNumber,
            targetPort: z
              .union([portNumber, z.string().min(1)], {
                error: (iss) => `must be a port number or a port name, not ${show(iss.input)}`,
              })
              .nullish(),
            protocol: protocol.nullish(),
            appProtocol: z.string().nullish(),
          }),
        )
        .nullish(),
    })
    .nullish(),
});

/** EndpointSlice `discovery.k8s.io/v1`. */
export const EndpointSliceV1 = z.object({
  ...meta,
  addressType: z.enum(['IPv4', 'IPv6', 'FQDN']),
  endpoints: z
    .array(
      z.object({
        addresses: z.array(z.string()),
        conditions: z.object({ ready: z.boolean().nullish() }).nullish(),
        targetRef: z
          .object({ kind: z.string().nullish(), name: z.string().nullish(), namespace: z.string().nullish() })
          .nullish(),
      }),
    )
    .nullish(),
  ports: z
    .array(
      z.object({
        name: z.string().nullish(),
        port: portNumber.nullish(),
        protocol: protocol.nullish(),
      }),
    )
    .nullish(),
});

/** Pod `v1`. */
export const PodV1 = z.object({
  metadata: ObjectMetaSchema.extend({
    // TrafficMetrics groups pods by their controller (a ReplicationController's pods carry no
    // label that names it). Nothing else reads the field, so a malformed list (an entry without
    // `name`, `controller: "true"`) counts as absent, and the Pod is grouped by its names and labels
    // instead: rejecting the Pod would take its workload's config away over a metrics detail.
    ownerReferences: z
      .array(z.object({ kind: z.string(), name: z.string(), controller: z.boolean().nullish() }))
      .nullish()
      .catch(null),
  }),
  spec: podSpec.nullish(),
  status: z
    .object({
      podIP: z
        .string()
        .refine((s) => s === '' || isIP(s) !== 0, {
          error: (iss) => `must be an IPv4 or IPv6 address, not ${show(iss.input)}`,
        })
        .nullish(),
      podIPs: z.array(z.object({ ip: ipAddress })).nullish(),
      phase: z.string().nullish(),
      conditions: z.array(z.object({ type: z.string(), status: z.string() })).nullish(),
    })
    .nullish(),
});

/** Deployment `apps/v1`. */
export const DeploymentV1 = z.object({
  ...meta,
  spec: z.object({
    selector: z.object({ matchLabels: stringMap.nullish() }).nullish(),
    template: z.object({
      metadata: z.object({ labels: stringMap.nullish() }).nullish(),
      spec: podSpec.nullish(),
    }),
  }),
});

// ---------------------------------------------------------------- weft.dev

/** A SPIFFE trust domain or DNS domain: lower-case letters, digits, dots, dashes, underscores. */
const domain = z.string().regex(/^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$/, {
  error: (iss) => `must be a lower-case domain such as cluster.local, not ${show(iss.input)}`,
});

/** Weft's mesh settings, `weft.dev/v1alpha1` MeshConfig. Every field has a default. */
export const MeshConfigV1alpha1 = z.object({
  ...meta,
  spec: z
    .object({
      trustDomain: domain.nullish(),
      permissive: z.boolean().nullish(),
      clusterDomain: domain.nullish(),
      outboundPassthrough: z.boolean().nullish(),
    })
    .nullish(),
});

// ---------------------------------------------------------------- issue messages

/** The subset of a zod issue that {@link describeIssue} reads. */
export interface IssueLike {
  readonly code?: string;
  readonly input?: unknown;
  readonly expected?: unknown;
  readonly origin?: unknown;
  readonly minimum?: unknown;
  readonly maximum?: unknown;
  readonly values?: readonly unknown[];
  readonly message?: string;
}

const NOUNS: Readonly<Record<string, string>> = {
  string: 'a string',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
  object: 'a mapping',
  array: 'a list',
  record: 'a mapping',
  date: 'a timestamp',
};

/** Renders a value for a message: short, and unambiguous about its type. */
export function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value === 'string')
    return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  if (Array.isArray(value)) return 'a list';
  if (value === null) return 'null';
  if (typeof value === 'object') return 'a mapping';
  return String(value);
}

/**
 * Phrases a schema problem as the end of a sentence that starts with the field path, e.g.
 * `must be a whole number, not 1.5` or `is required`. Used as the zod error map for every parse,
 * so messages do not depend on zod's own wording.
 */
export function describeIssue(issue: IssueLike): string {
  switch (issue.code) {
    case 'invalid_type':
      if (issue.input === undefined) return 'is required';
      return `must be ${NOUNS[String(issue.expected)] ?? String(issue.expected)}, not ${show(issue.input)}`;
    case 'too_small':
      if (issue.origin === 'string') return 'must not be empty';
      if (issue.origin === 'array') return `must have at least ${String(issue.minimum)} items`;
      return `must be at least ${String(issue.minimum)}, not ${show(issue.input)}`;
    case 'too_big':
      return `must be at most ${String(issue.maximum)}, not ${show(issue.input)}`;
    case 'invalid_value':
      return `must be ${(issue.values ?? []).map((v) => JSON.stringify(v)).join(' or ')}, not ${show(issue.input)}`;
    default:
      return issue.message ?? 'is invalid';
  }
}

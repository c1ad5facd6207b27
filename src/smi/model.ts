/**
 * The mesh model: the one data structure between the input stage (`src/smi`) and translation
 * (`src/translate`).
 *
 * Contract, relied on by every later stage:
 * - Plain data. Every value is a string, number, boolean, `null`, array or plain object, so a model
 *   survives `JSON.parse(JSON.stringify(model))` unchanged (deep-equal). Absent values are `null`,
 *   never `undefined` and never a missing key.
 * - Read-only. Nothing downstream may mutate it; the types say so with `readonly` everywhere.
 * - Sorted. Every array has a documented order that depends only on content, never on the order
 *   in which objects arrived, so the same inputs always give the same model and the same bytes.
 * - Resolved. References between objects (split backends, route groups named by splits and
 *   TrafficTargets, ServiceAccounts named as identities) are already looked up. A reference that
 *   does not resolve is left out of the model and reported as a {@link Condition} instead, so
 *   translation never has to handle a dangling name.
 *
 * Names in the model are Kubernetes object names; namespaced things always carry their namespace.
 */

/** A problem found while building the model, reported against one input object. */
export interface Condition {
  /**
   * The object the condition is about, as `<Kind>/<namespace>/<name>`. Cluster-scoped objects have
   * an empty namespace (`Namespace//prod`); an input file that fails to parse is `File//<source>`.
   */
  readonly object: string;
  /**
   * The aspect of the object that the condition describes, in the style of Kubernetes status
   * conditions: `Accepted` (the object is used; `False` means it was left out), `ResolvedRefs` (its
   * references resolve; `False` means some part of it was dropped) or `Conflicted` (`True` means
   * another object won the same slot and this one was left out).
   */
  readonly type: string;
  /** Whether the condition `type` holds. */
  readonly status: 'True' | 'False';
  /** `Error`: the object, or part of it, is not served. `Warning`: served, but probably not as meant. */
  readonly severity: 'Error' | 'Warning';
  /** A stable, PascalCase machine-readable cause. The full list is `ConditionReason` in `conditions.ts`. */
  readonly reason: string;
  /** Path of the offending field inside the object, e.g. `spec.backends[1].service`, when there is one. */
  readonly field?: string;
  /** One sentence for a person: names the object, the field and the fix. */
  readonly message: string;
}

/** Mesh-wide settings, from Weft's `MeshConfig` object (`weft.dev/v1alpha1`), or defaults. */
export interface MeshSettings {
  /** SPIFFE trust domain of every identity in the mesh. Default `cluster.local`. */
  readonly trustDomain: string;
  /**
   * When true, every workload may talk to every other and TrafficTargets are not needed (they are
   * still resolved and reported). Default false: access is deny-by-default.
   */
  readonly permissive: boolean;
  /** DNS suffix of the cluster, used to build service host names. Default `cluster.local`. */
  readonly clusterDomain: string;
  /**
   * Envoy sidecars: where a call to a destination outside the mesh goes (an address no Service of
   * the mesh has, or a port it does not serve). True (default): passed through to the address the
   * app dialed, unchanged, as without a sidecar. False: refused, the connection is closed.
   */
  readonly outboundPassthrough: boolean;
}

/**
 * How traffic on a service port is handled, from most to least specific knowledge:
 * - `udp`: the port's `protocol` is UDP (nothing else applies to UDP).
 * - otherwise the port's `appProtocol`, when set, decides: `http`, `http2`, `h2c` and
 *   `kubernetes.io/h2c` give `http`; `grpc` gives `grpc`; any other value (`tcp`, `https`, `tls`,
 *   `mysql`, ...) gives `tcp`, because an explicit value that is not plain-text HTTP means "do not
 *   look inside".
 * - otherwise the port name, Istio-style `<protocol>` or `<protocol>-<suffix>` (case-insensitive):
 *   `http`, `http2`, `h2c` give `http` (`http-web`, `http2`); `grpc` gives `grpc` (`grpc-api`); anything
 *   else, including `https-...` and `tcp-...`, gives `tcp`.
 * - otherwise (no name) `tcp`.
 */
export type AppProtocol = 'http' | 'grpc' | 'tcp' | 'udp';

/** Transport protocol of a port. SCTP ports are not served and are reported. */
export type TransportProtocol = 'TCP' | 'UDP';

/** A reference to a workload. See {@link WorkloadModel} for what the kinds mean. */
export interface WorkloadRef {
  readonly kind: 'Pod' | 'Deployment';
  readonly namespace: string;
  readonly name: string;
}

/** A reference to a service. */
export interface ServiceRef {
  readonly namespace: string;
  readonly name: string;
}

/** One port of a Kubernetes Service. */
export interface ServicePortModel {
  /** The port's name; `''` for the single unnamed port a Service may have. */
  readonly name: string;
  /** The port clients dial on the service's cluster IP. */
  readonly port: number;
  /**
   * Where the port goes on the workload: a number, or a container port name that each endpoint
   * resolves (see {@link EndpointPortModel}). Defaults to `port`, as in Kubernetes.
   */
  readonly targetPort: number | string;
  readonly protocol: TransportProtocol;
  /** The port's `appProtocol` exactly as written, or null. */
  readonly appProtocolRaw: string | null;
  /** Classification of the traffic on this port; the rule is on {@link AppProtocol}. */
  readonly appProtocol: AppProtocol;
}

/** A port of one endpoint: where a service port lands on that endpoint. */
export interface EndpointPortModel {
  /** Name of the service port this is for (`''` for an unnamed port); join on {@link ServicePortModel.name}. */
  readonly name: string;
  /** The concrete port number on the endpoint (a resolved target port). */
  readonly port: number;
  readonly protocol: TransportProtocol;
}

/** One network endpoint (usually one pod) behind a service. */
export interface EndpointModel {
  /** IPv4 or IPv6 address. */
  readonly ip: string;
  /**
   * Whether the endpoint takes new traffic: EndpointSlice `conditions.ready` (absent counts as
   * ready, as in Kubernetes); for endpoints derived from Pods, the Pod's `Ready` condition, or phase
   * `Running` when the Pod has no conditions.
   */
  readonly ready: boolean;
  /** The service ports on this endpoint, sorted by name then port. */
  readonly ports: readonly EndpointPortModel[];
  /**
   * The workload this endpoint belongs to: the Pod named by the slice's `targetRef`, else the Pod
   * with this IP in the service's namespace, else null (for example a manually managed slice).
   */
  readonly workload: WorkloadRef | null;
}

/** A Kubernetes Service, with its endpoints and backing workloads resolved. */
export interface ServiceModel {
  readonly namespace: string;
  readonly name: string;
  /** `<name>.<namespace>.svc.<clusterDomain>`. */
  readonly hostname: string;
  /** Service `type` as written (`ClusterIP` when absent). */
  readonly type: string;
  /** The cluster IP; null when headless (`None`) or not yet allocated. */
  readonly clusterIP: string | null;
  /** True when `clusterIP` is `None`. */
  readonly headless: boolean;
  /** The pod selector, or null for a service without one (its endpoints are managed by hand). */
  readonly selector: Readonly<Record<string, string>> | null;
  /** Served ports, sorted by port then protocol. */
  readonly ports: readonly ServicePortModel[];
  /**
   * Where `endpoints` came from: `EndpointSlice` when at least one slice names this service (label
   * `kubernetes.io/service-name`), else `Pods` when the service has a selector (Pods, not
   * Deployments, matching it), else `None`.
   */
  readonly endpointSource: 'EndpointSlice' | 'Pods' | 'None';
  /** Endpoints, merged across slices by IP, sorted by IP. */
  readonly endpoints: readonly EndpointModel[];
  /**
   * Workloads that back this service: those whose labels match the selector (same namespace) plus
   * those named by endpoints. Sorted by namespace, name, kind.
   */
  readonly workloads: readonly WorkloadRef[];
}

/**
 * A workload: something that runs with one identity. Either a Pod, or a Deployment standing for its
 * pods when no Pod in its namespace matches the Deployment's `spec.selector.matchLabels` (so a
 * folder of manifests, which has Deployments but no Pods, still yields workloads).
 */
export interface WorkloadModel {
  readonly kind: 'Pod' | 'Deployment';
  readonly namespace: string;
  readonly name: string;
  /** Pod labels (for a Deployment, its pod template's labels). */
  readonly labels: Readonly<Record<string, string>>;
  /** `spec.serviceAccountName` (template's for a Deployment), `default` when absent. */
  readonly serviceAccount: string;
  /** The SPIFFE ID of `serviceAccount`, see {@link identityOf}. */
  readonly identity: string;
  /** Pod IPs (`status.podIPs`, else `status.podIP`), sorted; empty for a Deployment. */
  readonly ips: readonly string[];
  /** Services this workload backs, sorted by namespace then name. */
  readonly services: readonly ServiceRef[];
  /** A Pod's node (`spec.nodeName`), when scheduled. Read by TrafficMetrics, not by translation. */
  readonly node?: string;
  /** A Pod's controller (its owner reference). Read by TrafficMetrics, not by translation. */
  readonly owner?: { readonly kind: string; readonly name: string };
}

/** One HTTP header condition: the header `name` must be present and match the regex `value`. */
export interface HeaderMatch {
  /** Header name, lower-cased (HTTP header names are case-insensitive). */
  readonly name: string;
  /** RE2 regular expression for the header value, as written. */
  readonly value: string;
}

/**
 * One named HTTP match of an HTTPRouteGroup, normalized from every version. A request matches when
 * every present part matches (AND); absent parts match everything.
 */
export interface HttpMatch {
  /** The HTTPRouteGroup the match comes from (same namespace as its user). */
  readonly routeGroup: string;
  /** The match's name inside its group. */
  readonly name: string;
  /**
   * RE2 regular expression for the request path, anchored at the start only (`/api` matches
   * `/api/x`); null matches every path.
   */
  readonly pathRegex: string | null;
  /**
   * Upper-cased methods, sorted and de-duplicated; null means any method (absent, empty, or
   * containing `*`).
   */
  readonly methods: readonly string[] | null;
  /** Header conditions (all must match), sorted by name then value; empty when none. */
  readonly headers: readonly HeaderMatch[];
}

/** An HTTPRouteGroup: named HTTP matches. */
export interface HttpRouteGroupModel {
  readonly namespace: string;
  readonly name: string;
  /**
   * Matches sorted by name; names are unique within a group. Every regex in them is accepted by
   * RE2 and every header name is an HTTP token; matches that were not are left out and reported.
   */
  readonly matches: readonly HttpMatch[];
}

/** A TCPRoute or UDPRoute: a set of ports. */
export interface L4RouteModel {
  readonly kind: 'TCPRoute' | 'UDPRoute';
  readonly namespace: string;
  readonly name: string;
  /**
   * Destination ports, sorted and de-duplicated; null means every port of the destination (no
   * ports given, as in TCPRoute v1alpha1-v1alpha3 which have no ports at all).
   */
  readonly ports: readonly number[] | null;
  /** The name of its match (v1alpha4 `spec.matches.name`), which TrafficTarget rules may name; or null. */
  readonly matchName: string | null;
}

/** One backend of a split. */
export interface SplitBackendModel {
  /**
   * A Service in the split's namespace. It may be the root service itself (reported with a
   * warning): that share then goes to the root's own endpoints.
   */
  readonly service: string;
  /**
   * Relative integer weight (0 means this backend gets no traffic; when every weight is 0 the split
   * cannot route and is reported). v1alpha1 quantities are converted so the ratios are kept exactly
   * (see `normalize.ts`); weights of one split sum to at most 2^32-1.
   */
  readonly weight: number;
  /**
   * The root service ports this backend serves, sorted: root ports for which the backend Service
   * has a port with the same number. On other root ports this backend gets no traffic.
   */
  readonly ports: readonly number[];
}

/** A TrafficSplit, resolved. At most one per root service. */
export interface SplitModel {
  readonly namespace: string;
  /** Name of the TrafficSplit object. */
  readonly name: string;
  /** The root Service (same namespace) whose traffic is split, as a short name. */
  readonly rootService: string;
  /** Backends sorted by service name; at least one. */
  readonly backends: readonly SplitBackendModel[];
  /**
   * Null: all traffic to the root service is split. Otherwise (v1alpha3+ `matches`) only requests
   * matching one of these are split and every other request goes to the root service; the HTTP
   * matches of all named route groups are merged, sorted by route group then name. An empty list
   * (every named group missing) splits nothing.
   */
  readonly matches: readonly HttpMatch[] | null;
}

/** A ServiceAccount identity used by access rules. */
export interface IdentityModel {
  readonly namespace: string;
  readonly serviceAccount: string;
  /** The SPIFFE ID, see {@link identityOf}. */
  readonly identity: string;
}

/** An HTTP access rule: requests matching any of `matches` are allowed. */
export interface HttpAccessRule {
  readonly kind: 'HTTPRouteGroup';
  /** The route group's name. */
  readonly name: string;
  /** The allowed matches (a rule without `matches` allows all of the group's matches). */
  readonly matches: readonly HttpMatch[];
}

/** A TCP or UDP access rule: all traffic on `ports` is allowed (on TCP, HTTP included). */
export interface L4AccessRule {
  readonly kind: 'TCPRoute' | 'UDPRoute';
  /** The route's name. */
  readonly name: string;
  /** Allowed destination ports as written in the route, sorted; null means every port. */
  readonly ports: readonly number[] | null;
  /**
   * The same ports as the destination's inbound side sees them, sorted; null means every port.
   * SMI does not say whether a route's port is a Service port or a container port, so both
   * readings are served: each written port itself, plus the target port behind a Service port of
   * that number on any Service that the destination's workloads back.
   */
  readonly inboundPorts: readonly number[] | null;
}

/** One resolved access rule. */
export type AccessRule = HttpAccessRule | L4AccessRule;

/** A TrafficTarget, resolved: who may reach which identity, with what traffic. */
export interface AccessModel {
  readonly namespace: string;
  /** Name of the TrafficTarget object. */
  readonly name: string;
  /**
   * The destination identity; always in the TrafficTarget's own namespace. A TrafficTarget whose
   * destination is an IdentityBinding has one AccessModel per ServiceAccount the binding resolves
   * to, alike but for this field (and the ports derived from it).
   */
  readonly destination: IdentityModel;
  /**
   * `destination.port` (v1alpha1, v1alpha2; honoured in v1alpha3 too when written): the only
   * destination port this target allows, compared with the destination workload's ports (target
   * ports, as seen on the inbound side) and service ports alike; null for every port.
   */
  readonly destinationPort: number | null;
  /** `destinationPort` as the inbound side sees it, by the rule on {@link L4AccessRule.inboundPorts}. */
  readonly destinationInboundPorts: readonly number[] | null;
  /** Allowed source identities, sorted by identity, de-duplicated. */
  readonly sources: readonly IdentityModel[];
  /**
   * Allowed peers that are no ServiceAccount of this mesh: SPIFFE IDs from the `spiffeIdentities`
   * of source IdentityBindings in another trust domain, or not of the `/ns/<ns>/sa/<sa>` form.
   * They are matched by certificate only (RBAC principals). Sorted, de-duplicated; empty without
   * such bindings.
   */
  readonly peerIdentities: readonly string[];
  /**
   * Rules; traffic is allowed when it matches any rule. Sorted by kind then name. Empty means the
   * target allows nothing (reported).
   */
  readonly rules: readonly AccessRule[];
}

/** A Namespace object. */
export interface NamespaceModel {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
}

/**
 * Objects' own labels by `<namespace>/<name>`, for objects that have any. TrafficMetrics' label
 * selectors read them; translation does not. They are kept apart from {@link ServiceModel} and
 * {@link SplitModel} because those objects are fingerprinted into proxies' group keys: a
 * label-only change must not re-translate every proxy that reads the Service or TrafficSplit.
 */
export interface ObjectLabels {
  /** Services' labels, from every Service read. */
  readonly services: Readonly<Record<string, Readonly<Record<string, string>>>>;
  /** TrafficSplits' labels, from every TrafficSplit read (winning or not). */
  readonly trafficSplits: Readonly<Record<string, Readonly<Record<string, string>>>>;
}

/** Everything translation needs, resolved and sorted. */
export interface MeshModel {
  readonly settings: MeshSettings;
  /** Namespace objects given as input, sorted by name. */
  readonly namespaces: readonly NamespaceModel[];
  /** Services sorted by namespace then name. */
  readonly services: readonly ServiceModel[];
  /** Workloads sorted by namespace, name, kind. */
  readonly workloads: readonly WorkloadModel[];
  /** Winning splits, sorted by namespace then root service. */
  readonly splits: readonly SplitModel[];
  /**
   * Resolved TrafficTargets, sorted by namespace then name (then destination identity, for a
   * TrafficTarget whose IdentityBinding destination resolves to several ServiceAccounts).
   */
  readonly access: readonly AccessModel[];
  /** HTTPRouteGroups, sorted by namespace then name. */
  readonly httpRouteGroups: readonly HttpRouteGroupModel[];
  /** TCPRoutes and UDPRoutes, sorted by kind, namespace, name. */
  readonly l4Routes: readonly L4RouteModel[];
  /** Services' and TrafficSplits' own labels (TrafficMetrics only; see {@link ObjectLabels}). */
  readonly objectLabels: ObjectLabels;
}

/** What {@link buildModel} returns: the model and every condition found, sorted. */
export interface BuildResult {
  readonly model: MeshModel;
  /** Sorted by object, type, reason, field, message. */
  readonly conditions: Condition[];
}

/** The SPIFFE ID of a ServiceAccount: `spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>`. */
export function identityOf(namespace: string, serviceAccount: string, trustDomain: string): string {
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
}

/** Default trust domain when no MeshConfig sets one. */
export const DEFAULT_TRUST_DOMAIN = 'cluster.local';
/** Default cluster DNS domain when no MeshConfig sets one. */
export const DEFAULT_CLUSTER_DOMAIN = 'cluster.local';

/**
 * The input stage: SMI and core Kubernetes objects in, a resolved {@link MeshModel} and conditions
 * out. See `model.ts` for the contract translation relies on.
 *
 * Where the SMI documents leave a choice, Weft decides as follows (each decision is also stated
 * where it is implemented):
 * - TrafficSplit root: must be a Service in the split's namespace, because its cluster IP and ports
 *   are what clients dial and what the split applies to; otherwise the split is left out
 *   (`RootServiceNotFound`). `spec.service` may be a short name or `<name>.<ns>[.svc[.<domain>]]`
 *   with the split's own namespace; another namespace is `CrossNamespaceService`.
 * - Backends: a missing backend is dropped and the remaining weights keep their ratios; a backend
 *   serves only the root's port numbers it also has (SMI's port rule); a backend listed twice has
 *   its weights added. The root as its own backend is served (its share goes to the root's own
 *   endpoints) with a `SelfReferentialBackend` warning, since SMI rules such splits out. All
 *   weights 0 keeps the split in the model and warns: 0 means no traffic, so the calls it covers
 *   go to an endpoint-less cluster and fail.
 * - v1alpha1 quantity weights become the smallest integers with the same ratios; weights whose sum
 *   does not fit uint32 are scaled to about 1,000,000 with ratios kept.
 * - `matches` on a split: the HTTP matches of every named group are merged; when none resolve the
 *   split covers no request (everything goes to the root), never every request.
 * - Several splits on one root: the oldest `creationTimestamp` wins, ties by name, objects without
 *   a timestamp count as newest.
 * - TrafficTarget: ServiceAccount subjects, and from v1alpha4 IdentityBindings; the destination
 *   must be in the TrafficTarget's own namespace (only a service owner grants access to it); a
 *   rule without `matches` allows every match of its route; unknown match names allow nothing;
 *   match names on a TCP/UDP rule must name the route's v1alpha4 `spec.matches.name`, else the
 *   rule is dropped rather than widened.
 *   No sources or no rules allows nothing. Ports in TCP/UDP routes and `destination.port` are
 *   served as Service ports and as container ports alike (`inboundPorts`). Next to HTTPRouteGroup
 *   rules in one target, TCPRoute rules narrow the HTTP rules to their ports and open nothing
 *   (the spec's L7 example); a TCPRoute-only target allows all traffic on its ports.
 * - IdentityBinding (access v1alpha4): every scheme resolves to ServiceAccounts of the binding's
 *   namespace, since a peer is known by its ServiceAccount certificate; a label selector binds a
 *   ServiceAccount only when it selects every workload running as it (`SharedServiceAccount`);
 *   SPIFFE IDs outside the mesh's ServiceAccounts are kept as peer principals. Both or no exclusive
 *   schemes leave the binding out. See `bindings.ts`.
 * - HTTPRouteGroup `matches` is accepted at the top level or under `spec` in every version, and
 *   `headers` as a map or a list of single-key maps; duplicate match names keep the first. A match
 *   whose `pathRegex` or header regex RE2 rejects, or whose header name is not an HTTP token, is
 *   left out (`InvalidMatch`), so it narrows what is allowed or split rather than making proxies
 *   refuse their configuration.
 * - Addresses (Pod IPs, cluster IPs, EndpointSlice addresses) must be well-formed IPs, for the same
 *   reason; a malformed one rejects its object (`InvalidSpec`).
 * - A Deployment stands for its pods only while no Pod in its namespace matches its selector.
 */
export { buildModel, ModelBuilder } from './build';
export { type ConditionReason, REASONS, type ReasonInfo } from './conditions';
export { type ParsedYaml, parseYamlObjects, type YamlParseError } from './load';
export * from './model';
export type {
  Deployment,
  EndpointSlice,
  HttpMatchSpec,
  HttpRouteGroup,
  IdentityBinding,
  InvalidMatch,
  L4Route,
  MeshConfig,
  Namespace,
  Normalized,
  ObjectMeta,
  Pod,
  PodLabelSelector,
  Service,
  ServiceAccount,
  ServicePortSpec,
  Split,
  Subject,
  TargetRule,
  TrafficTarget,
} from './normalize';
export { normalizeHeaders, normalizeObject, SMI_KINDS, servedVersions } from './normalize';
export { re2Problem } from './regex';
export { classifyPort } from './services';

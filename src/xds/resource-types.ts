/**
 * The xDS resource types Weft serves, as literal type URLs, and the order in which an ADS stream
 * pushes them. The order is Envoy's make-before-break rule: a cluster must exist (with its
 * endpoints) before a listener or route points at it, and secrets before the clusters and
 * listeners whose TLS contexts name them.
 */

/** Type URL of envoy.config.listener.v3.Listener. */
export const LISTENER = 'type.googleapis.com/envoy.config.listener.v3.Listener' as const;
/** Type URL of envoy.config.route.v3.RouteConfiguration. */
export const ROUTE = 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration' as const;
/** Type URL of envoy.config.cluster.v3.Cluster. */
export const CLUSTER = 'type.googleapis.com/envoy.config.cluster.v3.Cluster' as const;
/** Type URL of envoy.config.endpoint.v3.ClusterLoadAssignment. */
export const ENDPOINT = 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment' as const;
/** Type URL of envoy.extensions.transport_sockets.tls.v3.Secret. */
export const SECRET = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret' as const;

/** One of the five resource type URLs served. */
export type ResourceTypeUrl =
  | typeof LISTENER
  | typeof ROUTE
  | typeof CLUSTER
  | typeof ENDPOINT
  | typeof SECRET;

/** Push order on an ADS stream (see the module comment). */
export const PUSH_ORDER: readonly ResourceTypeUrl[] = [SECRET, CLUSTER, ENDPOINT, LISTENER, ROUTE];

/** Short names used in logs, metrics and the CLI. */
export const SHORT_NAME: Record<ResourceTypeUrl, string> = {
  [LISTENER]: 'lds',
  [ROUTE]: 'rds',
  [CLUSTER]: 'cds',
  [ENDPOINT]: 'eds',
  [SECRET]: 'sds',
};

/**
 * Types whose state-of-the-world responses must always carry every resource the client
 * subscribes to (Envoy treats a missing Listener or Cluster as a deletion). RDS, EDS and SDS
 * responses may carry a subset.
 */
export const FULL_STATE_TYPES: ReadonlySet<string> = new Set([LISTENER, CLUSTER]);

/** Is `url` one of the served type URLs? */
export function isResourceType(url: string): url is ResourceTypeUrl {
  return url === LISTENER || url === ROUTE || url === CLUSTER || url === ENDPOINT || url === SECRET;
}

/** Full protobuf message name of a type URL (the part after the last slash). */
export function messageNameOf(url: string): string {
  return url.slice(url.lastIndexOf('/') + 1);
}

/**
 * Every name Weft generates for Envoy and gRPC resources. Users patch resources by these names
 * (EnvoyPatch `target.name`), so they are API: they change only with a version note.
 *
 * | resource | name | example |
 * |---|---|---|
 * | outbound cluster of a service port | `outbound\|<port>\|<namespace>/<service>` | `outbound\|14001\|bookstore/bookstore-v1` |
 * | its ClusterLoadAssignment | same as the cluster | |
 * | outbound route configuration of a service port | `route\|<port>\|<namespace>/<service>` | `route\|14001\|bookstore/bookstore` |
 * | its virtual host | `<namespace>/<service>\|<port>` | `bookstore/bookstore\|14001` |
 * | route for split match `m` of HTTPRouteGroup `g` | `split\|<g>/<m>` | `split\|ab-test/chrome` |
 * | route for the whole split | `split` | |
 * | catch-all route to the service itself | `default` | |
 * | gRPC client listener (one per host form) | `<host>:<port>` | `bookstore.bookstore:14001` |
 * | gRPC server listener | `grpc/server?xds.resource.listening_address=<ip>:<port>` | |
 * | Envoy outbound listener | `outbound` (port 15001) | |
 * | Envoy inbound listener | `inbound` (port 15003) | |
 * | Envoy outbound filter chain | `outbound\|<port>\|<namespace>/<service>` | |
 * | Envoy inbound filter chain | `inbound\|<port>` | |
 * | inbound route configuration / cluster (Envoy) | `inbound\|<port>` | `inbound\|14001` |
 * | inbound route configuration (gRPC server) | `inbound\|<port>` | |
 * | RBAC policy of a TrafficTarget rule | `<namespace>/<traffictarget>\|<kind>/<name>` | |
 * | SDS secret: workload certificate and key | `weft-identity` | |
 * | SDS secret: trust bundle | `weft-ca` | |
 * | gRPC certificate provider instances | `weft-identity`, `weft-ca` | |
 */

/** Port of the Envoy outbound listener (where iptables sends outgoing traffic). */
export const OUTBOUND_PORT = 15001;
/** Port of the Envoy inbound listener (where iptables sends incoming traffic). */
export const INBOUND_PORT = 15003;

/** SDS secret (Envoy) and certificate provider instance (gRPC) holding the workload certificate. */
export const IDENTITY_SECRET = 'weft-identity';
/** SDS secret (Envoy) and certificate provider instance (gRPC) holding the trust bundle. */
export const TRUST_SECRET = 'weft-ca';

/** Outbound cluster (and ClusterLoadAssignment) of a service port. */
export function outboundCluster(namespace: string, service: string, port: number): string {
  return `outbound|${port}|${namespace}/${service}`;
}

/** Outbound route configuration of a service port. */
export function outboundRoute(namespace: string, service: string, port: number): string {
  return `route|${port}|${namespace}/${service}`;
}

/** Virtual host of a service port. */
export function virtualHost(namespace: string, service: string, port: number): string {
  return `${namespace}/${service}|${port}`;
}

/** Route for one split match. */
export function splitMatchRoute(routeGroup: string, match: string): string {
  return `split|${routeGroup}/${match}`;
}

/** Route carrying a split without matches. */
export const SPLIT_ROUTE = 'split';
/** The catch-all route to the service itself. */
export const DEFAULT_ROUTE = 'default';

/** gRPC client listener for one host form of a service port. */
export function grpcClientListener(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** gRPC server listener for an address a server binds. */
export function grpcServerListener(ip: string, port: number): string {
  return `grpc/server?xds.resource.listening_address=${ip.includes(':') ? `[${ip}]` : ip}:${port}`;
}

/** Envoy outbound listener. */
export const OUTBOUND_LISTENER = 'outbound';
/** Envoy inbound listener. */
export const INBOUND_LISTENER = 'inbound';

/** Outbound filter chain of a service port (Envoy). */
export function outboundChain(namespace: string, service: string, port: number): string {
  return outboundCluster(namespace, service, port);
}

/** Inbound filter chain, route configuration and local cluster of a workload port. */
export function inbound(port: number): string {
  return `inbound|${port}`;
}

/** RBAC policy name of one TrafficTarget rule. */
export function rbacPolicy(namespace: string, target: string, kind: string, name: string): string {
  return `${namespace}/${target}|${kind}/${name}`;
}

/** Every host form a client may dial for a service (gRPC listeners, Envoy virtual host domains). */
export function hostForms(
  service: string,
  namespace: string,
  clusterDomain: string,
  clusterIP: string | null,
): string[] {
  const forms = [
    service,
    `${service}.${namespace}`,
    `${service}.${namespace}.svc`,
    `${service}.${namespace}.svc.${clusterDomain}`,
  ];
  if (clusterIP) forms.push(clusterIP);
  return forms;
}

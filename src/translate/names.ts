/**
 * Every name Weft generates for Envoy and proxyless gRPC resources. Users patch resources by these
 * names (EnvoyPatch `target.name`), dashboards read the stat prefixes, and proxies subscribe to
 * listeners by name, so the names are API: they change only with a version note.
 *
 * Placeholders: `<ns>` and `<svc>` are a Service's namespace and name, `<port>` a Service port
 * number, `<target>` a port on the workload itself (a resolved `targetPort`), `<host>` one host
 * form of a service (see {@link hostForms}), `<ip>` an address a gRPC server binds, `<tt>` a
 * TrafficTarget name, `<kind>/<name>` one of its rules, `<group>/<match>` a match of an
 * HTTPRouteGroup.
 *
 * | resource | flavor | name | example |
 * |---|---|---|---|
 * | outbound Cluster of a service port | both | `outbound\|<port>\|<ns>/<svc>` | `outbound\|14001\|bookstore/bookstore-v1` |
 * | its ClusterLoadAssignment | both | same as the Cluster | |
 * | Cluster (and assignment) with no endpoints, for splits whose weights are all 0 | both | `blackhole` | |
 * | outbound RouteConfiguration of a service port | both | `route\|<port>\|<ns>/<svc>` | `route\|14001\|bookstore/bookstore` |
 * | its VirtualHost | both | `<ns>/<svc>\|<port>` | `bookstore/bookstore\|14001` |
 * | Route for a split match | both | `split\|<group>/<match>`; Envoy: stat prefix `<group>__<match>`, each part escaped (see {@link routeStatPrefix}) | `split\|ab-test/chrome`, stat prefix `ab-test__chrome` |
 * | Route for a split without matches | both | `split` | |
 * | inbound Route of an HTTPRouteGroup match an access rule allows on the port (per-route figures) | Envoy | `match\|<group>/<match>`, stat prefix `<group>__<match>`, each part escaped (see {@link routeStatPrefix}) | `match\|api-routes/books`, stat prefix `api-routes__books` |
 * | catch-all Route to the service itself (outbound), or to the app (inbound) | both | `default` | |
 * | client Listener, one per host form of a service port | gRPC | `<host>:<port>` | `bookstore.bookstore:14001`, `[fd00::1]:80` |
 * | server Listener, one per bound address of a served port | gRPC | `grpc/server?xds.resource.listening_address=<ip>:<target>` | `...=0.0.0.0:8080`, `...=[::]:8080` |
 * | server filter chain, inline RouteConfiguration and VirtualHost | gRPC | `inbound\|<target>` | `inbound\|8080` |
 * | outbound Listener (port 15001) | Envoy | `outbound` | |
 * | outbound FilterChain of a service port | Envoy | `outbound\|<port>\|<ns>/<svc>` | |
 * | outbound default FilterChain and its ORIGINAL_DST Cluster (destinations outside the mesh) | Envoy | `passthrough` | |
 * | default FilterChain that refuses: inbound ports the workload does not serve, outbound without passthrough (to `blackhole`) | Envoy | `refuse` | |
 * | inbound Listener (port 15003) | Envoy | `inbound` | |
 * | inbound FilterChain, RouteConfiguration, VirtualHost and local app Cluster of a workload port | Envoy | `inbound\|<target>` | `inbound\|8080` |
 * | RBAC policy of one TrafficTarget rule | both | `<ns>/<tt>\|<kind>/<name>` | `bookstore/reader\|HTTPRouteGroup/routes` |
 * | RBAC policy allowing everything (permissive mode) | both | `permissive` | |
 * | stat prefix of a connection manager, TCP proxy or RBAC filter, and a Cluster's `alt_stat_name` | Envoy | its filter chain's or cluster's name with `\|` and `/` as `_` (see {@link statName}) | `outbound_80_shop_api`, `inbound_8080` |
 * | stat prefix of a connection manager or RBAC filter | gRPC | the name of its filter chain | `inbound\|8080` |
 * | SDS secret: workload certificate and key | Envoy | `weft-identity` | |
 * | SDS secret: trust bundle | Envoy | `weft-ca` | |
 * | certificate provider instances (bootstrap) | gRPC | `weft-identity`, `weft-ca` | |
 *
 * Filters use Envoy's well-known names (`envoy.filters.network.http_connection_manager`,
 * `envoy.filters.http.rbac`, ...), listed in {@link FILTER}.
 *
 * Every name is free of spaces and stable: it depends only on the Kubernetes names and port
 * numbers it is built from, never on order, counts or time.
 */

/** Port of the Envoy outbound listener (where iptables sends outgoing TCP). */
export const OUTBOUND_PORT = 15001;
/** Port of the Envoy inbound listener (where iptables sends incoming TCP). */
export const INBOUND_PORT = 15003;

/** SDS secret (Envoy) and certificate provider instance (gRPC) holding the workload certificate. */
export const IDENTITY_SECRET = 'weft-identity';
/** SDS secret (Envoy) and certificate provider instance (gRPC) holding the trust bundle. */
export const TRUST_SECRET = 'weft-ca';

/** Well-known Envoy filter and transport socket names. */
export const FILTER = {
  hcm: 'envoy.filters.network.http_connection_manager',
  tcpProxy: 'envoy.filters.network.tcp_proxy',
  networkRbac: 'envoy.filters.network.rbac',
  httpRbac: 'envoy.filters.http.rbac',
  router: 'envoy.filters.http.router',
  originalDst: 'envoy.filters.listener.original_dst',
  tls: 'envoy.transport_sockets.tls',
} as const;

/** Outbound cluster (and ClusterLoadAssignment) of a service port. */
export function outboundCluster(namespace: string, service: string, port: number): string {
  return `outbound|${port}|${namespace}/${service}`;
}

/** Outbound route configuration of a service port. */
export function outboundRoute(namespace: string, service: string, port: number): string {
  return `route|${port}|${namespace}/${service}`;
}

/** Virtual host of a service port's outbound route configuration. */
export function virtualHost(namespace: string, service: string, port: number): string {
  return `${namespace}/${service}|${port}`;
}

/** Route for one split match. */
export function splitMatchRoute(routeGroup: string, match: string): string {
  return `split|${routeGroup}/${match}`;
}

/**
 * Inbound route of one HTTPRouteGroup match, there so that Envoy counts each match's requests
 * (route statistics): access itself is decided on the virtual host.
 */
export function inboundMatchRoute(routeGroup: string, match: string): string {
  return `match|${routeGroup}/${match}`;
}

/**
 * The stat prefix of an inbound match route and of a split's match route (Envoy): the group and the
 * match name, each escaped, joined by `__` (`api-routes`, `books` → `api-routes__books`;
 * `api.routes`, `books` → `api_2eroutes__books`). Escaping writes every character outside
 * `[A-Za-z0-9-]`, `_` itself included, as `_` and two lowercase hex digits per UTF-8 byte (a lone
 * surrogate as the three bytes WTF-8 gives it), so the prefix uses only `[A-Za-z0-9_-]`: Envoy's tag
 * extractor takes a route's name from its stat prefix only when the prefix has no `.` or `/`, which
 * the Prometheus output and the metrics sink need. The function is one-to-one, because the
 * TrafficMetrics API maps a prefix back to `<group>/<match>` by looking it up among the namespace's
 * HTTPRouteGroups, and two matches sharing a prefix would share their counts: an escape's `_` is
 * always followed by two hex digits, so `__` never comes out of escaping and the join is
 * unambiguous, and distinct strings escape differently.
 */
export function routeStatPrefix(routeGroup: string, match: string): string {
  return `${escapeStatPart(routeGroup)}__${escapeStatPart(match)}`;
}

/** `[A-Za-z0-9-]` stays; every other character becomes `_xx` per UTF-8 byte (see {@link routeStatPrefix}). */
function escapeStatPart(s: string): string {
  let out = '';
  // for...of walks code points, so a surrogate pair is one character of four bytes.
  for (const ch of s) {
    if (/^[A-Za-z0-9-]$/.test(ch)) {
      out += ch;
      continue;
    }
    for (const b of utf8Bytes(ch.codePointAt(0)!)) out += `_${b.toString(16).padStart(2, '0')}`;
  }
  return out;
}

/**
 * The UTF-8 bytes of one code point, written out rather than through TextEncoder because that
 * would turn every lone surrogate into the same U+FFFD and so make two names share a prefix.
 */
function utf8Bytes(cp: number): number[] {
  if (cp < 0x80) return [cp];
  if (cp < 0x800) return [0xc0 | (cp >> 6), 0x80 | (cp & 0x3f)];
  if (cp < 0x10000) return [0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f)];
  return [0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3f), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f)];
}

/** Route carrying a split without matches. */
export const SPLIT_ROUTE = 'split';
/** The catch-all route: to the service itself (outbound), to the local app (inbound). */
export const DEFAULT_ROUTE = 'default';
/** Cluster without endpoints: where a split whose weights are all 0 sends its calls. */
export const BLACKHOLE_CLUSTER = 'blackhole';
/** Envoy's default outbound filter chain and its ORIGINAL_DST cluster. */
export const PASSTHROUGH = 'passthrough';
/** Envoy's default filter chain that closes the connection (see the table). */
export const REFUSE_CHAIN = 'refuse';
/** RBAC policy allowing everything, used in permissive mode. */
export const PERMISSIVE_POLICY = 'permissive';

/** Brackets an IPv6 address so that `<address>:<port>` is unambiguous. */
function hostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** gRPC client listener for one host form of a service port: exactly what the client dials. */
export function grpcClientListener(host: string, port: number): string {
  return hostPort(host, port);
}

/**
 * gRPC server listener for an address a server binds, from the template
 * `grpc/server?xds.resource.listening_address=%s` the bootstrap names; `%s` is `ip:port`, with
 * IPv6 addresses in brackets as gRPC formats them.
 */
export function grpcServerListener(ip: string, port: number): string {
  return `grpc/server?xds.resource.listening_address=${hostPort(ip, port)}`;
}

/** Envoy outbound listener. */
export const OUTBOUND_LISTENER = 'outbound';
/** Envoy inbound listener. */
export const INBOUND_LISTENER = 'inbound';

/** Outbound filter chain of a service port (Envoy), and the stat prefix of its filters. */
export function outboundChain(namespace: string, service: string, port: number): string {
  return outboundCluster(namespace, service, port);
}

/**
 * Inbound filter chain, route configuration, virtual host and local app cluster of a workload
 * port, and the stat prefix of their filters.
 */
export function inbound(port: number): string {
  return `inbound|${port}`;
}

/** RBAC policy name of one TrafficTarget rule. */
export function rbacPolicy(namespace: string, target: string, kind: string, name: string): string {
  return `${namespace}/${target}|${kind}/${name}`;
}

/**
 * Every host form a client may dial for a service, in this order: `<svc>`, `<svc>.<ns>`,
 * `<svc>.<ns>.svc`, `<svc>.<ns>.svc.<clusterDomain>`, then the cluster IP when there is one.
 */
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

/**
 * The name Envoy's statistics use for a filter chain or cluster: `|` and `/` become `_`
 * (`outbound|80|shop/api` → `outbound_80_shop_api`). Envoy splits stat names at `.` and its
 * Prometheus output replaces every character outside `[a-zA-Z0-9_]` in a metric name, so names
 * with `|` and `/` came out mangled; Kubernetes names have no `.` or `_`, so these stay readable
 * and distinct per chain.
 */
export function statName(resourceName: string): string {
  return resourceName.replace(/[|/]/g, '_');
}

/**
 * Small pure builders shared by both flavors, one per Envoy message. Everything is canonical
 * proto3 JSON (proto field names) as the codec expects.
 */
import type { AccessModel, HttpMatch, ServiceModel, ServicePortModel } from '../smi/model';
import * as names from './names';

/** Canonical JSON object. */
export type Json = { [key: string]: unknown };

/** Type URLs of the typed configs Weft emits. */
export const T = {
  hcm: 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
  router: 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router',
  httpRbac: 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC',
  networkRbac: 'type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC',
  tcpProxy: 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy',
  udpProxy: 'type.googleapis.com/envoy.extensions.filters.udp.udp_proxy.v3.UdpProxyConfig',
  originalDst: 'type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst',
  upstreamTls: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
  downstreamTls: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
} as const;

/** ADS as the config source of RDS and EDS. */
export const ADS_SOURCE: Json = { ads: {}, resource_api_version: 'V3' };

/** The router HTTP filter (always last). */
export const ROUTER_FILTER: Json = { name: 'envoy.filters.http.router', typed_config: { '@type': T.router } };

/** Escapes a string for use as a literal inside an RE2 regex. */
export function reLiteral(s: string): string {
  return s.replace(/[\\^$.|?*+()[\]{}]/g, '\\$&');
}

/**
 * SMI `pathRegex` is anchored at the start only (`/api` matches `/api/x`); Envoy's safe_regex
 * matches the whole path, so the regex becomes `(?:<re>).*`. A leading `^` is redundant and kept.
 */
export function pathRegex(re: string): string {
  return `(?:${re}).*`;
}

/** An exact-string matcher. */
export function exact(s: string): Json {
  return { exact: s };
}

/** Route match for an SMI HTTP match; `withMethod` adds the `:method` header (Envoy only). */
export function routeMatch(m: HttpMatch, withMethod: boolean): Json {
  const match: Json =
    m.pathRegex === null ? { prefix: '' } : { safe_regex: { regex: pathRegex(m.pathRegex) } };
  const headers: Json[] = [];
  if (withMethod && m.methods !== null) {
    headers.push({
      name: ':method',
      string_match: { safe_regex: { regex: m.methods.map(reLiteral).join('|') } },
    });
  }
  for (const h of m.headers) headers.push({ name: h.name, string_match: { safe_regex: { regex: h.value } } });
  if (headers.length > 0) match.headers = headers;
  return match;
}

/** RBAC permission for an SMI HTTP match. */
export function httpPermission(m: HttpMatch): Json {
  const rules: Json[] = [];
  if (m.pathRegex !== null)
    rules.push({ url_path: { path: { safe_regex: { regex: pathRegex(m.pathRegex) } } } });
  if (m.methods !== null) {
    rules.push({
      header: {
        name: ':method',
        string_match: { safe_regex: { regex: m.methods.map(reLiteral).join('|') } },
      },
    });
  }
  for (const h of m.headers)
    rules.push({ header: { name: h.name, string_match: { safe_regex: { regex: h.value } } } });
  return rules.length === 0 ? { any: true } : { and_rules: { rules } };
}

/**
 * RBAC policies (action ALLOW) for traffic to a workload port from its TrafficTargets. No target
 * means no policy: deny by default. `port` is the workload (target) port the traffic arrives on.
 * `http` says whether the port carries HTTP. Principals: see {@link principalsOf}.
 *
 * The SMI access spec's L7 example pairs a TCPRoute (the port) with an HTTPRouteGroup (the
 * paths) in one TrafficTarget to mean "only these paths on this port". So in a target with HTTP
 * rules the TCPRoute rules only narrow the ports the HTTP rules apply on and never open anything
 * themselves: a separate allow-all policy would make the HTTP matches meaningless. Such a target
 * allows nothing on a port that does not carry HTTP, since its HTTP matches cannot be checked
 * there. A TCPRoute-only target allows all traffic on its ports, HTTP included.
 */
export function rbacPolicies(
  access: readonly AccessModel[],
  port: number,
  http: boolean,
  mtls: boolean,
): Json {
  const policies: Json = {};
  const principal = (identity: string): Json[] => principalsOf(identity, mtls);
  for (const a of access) {
    // Ports as the inbound side sees them: what was written, plus the target port behind a
    // Service port of that number (the proxy sees container ports, users write either).
    if (a.destinationInboundPorts !== null && !a.destinationInboundPorts.includes(port)) continue;
    // Peers bound by SPIFFE ID alone (IdentityBinding spiffeIdentities outside the mesh's
    // ServiceAccounts) are principals like any source. Without mTLS every source maps to the same
    // `any` principal: keep one copy.
    const ids = [...a.sources.map((s) => s.identity), ...a.peerIdentities];
    const principals = [
      ...new Map(ids.flatMap((id) => principal(id)).map((p) => [JSON.stringify(p), p])).values(),
    ];
    if (principals.length === 0) continue;
    const hasHttp = a.rules.some((r) => r.kind === 'HTTPRouteGroup');
    for (const rule of a.rules) {
      let permissions: Json[] = [];
      if (rule.kind === 'TCPRoute') {
        if (!hasHttp && (rule.inboundPorts === null || rule.inboundPorts.includes(port)))
          permissions = [{ any: true }];
      } else if (rule.kind === 'HTTPRouteGroup' && http) {
        if (httpRulesHold(a, port)) permissions = rule.matches.map(httpPermission);
      }
      if (permissions.length === 0) continue;
      policies[names.rbacPolicy(a.namespace, a.name, rule.kind, rule.name)] = { permissions, principals };
    }
  }
  return { action: 'ALLOW', policies };
}

/**
 * Whether a TrafficTarget's HTTPRouteGroup rules hold on an inbound port: with TCPRoute rules next
 * to them, only on those rules' ports (the SMI L7 example: TCPRoutes narrow the ports, they do not
 * open them).
 */
function httpRulesHold(a: AccessModel, port: number): boolean {
  const tcp = a.rules.filter((r) => r.kind === 'TCPRoute');
  return (
    tcp.length === 0 ||
    tcp.some((r) => r.kind === 'TCPRoute' && (r.inboundPorts === null || r.inboundPorts.includes(port)))
  );
}

/**
 * The HTTP matches some access rule allows on an inbound port, once each, sorted by group, then by
 * match name (plain string comparison of each, not of `<group>/<match>`, which would put `a-b/x`
 * before `a/x`): the routes Envoy counts requests by, and a request is counted on the first one it
 * matches, so this order is the documented one. Sources do not matter here (the virtual host's RBAC
 * decides who may call); a target with no source at all still names routes, which then see no
 * traffic.
 */
export function allowedHttpMatches(access: readonly AccessModel[], port: number): HttpMatch[] {
  const out = new Map<string, HttpMatch>();
  for (const a of access) {
    if (a.destinationInboundPorts !== null && !a.destinationInboundPorts.includes(port)) continue;
    if (!httpRulesHold(a, port)) continue;
    for (const m of a.rules.flatMap((r) => (r.kind === 'HTTPRouteGroup' ? r.matches : []))) {
      const id = `${m.routeGroup}/${m.name}`;
      if (!out.has(id)) out.set(id, m);
    }
  }
  const cmp = (x: string, y: string): number => (x < y ? -1 : x > y ? 1 : 0);
  return [...out.values()].sort((x, y) => cmp(x.routeGroup, y.routeGroup) || cmp(x.name, y.name));
}

/** Does the port carry HTTP (HTTP/1, HTTP/2 or gRPC)? */
export function isHttp(p: ServicePortModel): boolean {
  return p.appProtocol === 'http' || p.appProtocol === 'grpc';
}

/** The endpoint port of a service port on one endpoint, by port name. */
function endpointPort(
  port: ServicePortModel,
  epPorts: readonly { name: string; port: number }[],
): number | null {
  const byName = epPorts.find((p) => p.name === port.name);
  if (byName) return byName.port;
  return typeof port.targetPort === 'number' ? port.targetPort : null;
}

/** ClusterLoadAssignment of a service port (ready endpoints healthy, others unhealthy). */
export function loadAssignment(svc: ServiceModel, port: ServicePortModel): Json {
  const lbEndpoints: Json[] = [];
  for (const ep of svc.endpoints) {
    const p = endpointPort(port, ep.ports);
    if (p === null) continue;
    lbEndpoints.push({
      endpoint: { address: { socket_address: { address: ep.ip, port_value: p } } },
      health_status: ep.ready ? 'HEALTHY' : 'UNHEALTHY',
    });
  }
  const name = names.outboundCluster(svc.namespace, svc.name, port.port);
  if (lbEndpoints.length === 0) return { cluster_name: name };
  // Proxyless gRPC requires a locality and a locality weight on every group of endpoints.
  return {
    cluster_name: name,
    endpoints: [{ locality: { zone: 'weft' }, load_balancing_weight: 1, lb_endpoints: lbEndpoints }],
  };
}

/**
 * The principals of a source identity. With mTLS it is the SPIFFE ID in the peer certificate. In
 * plaintext development mode the destination cannot know its caller (addresses are not identity,
 * and proxyless gRPC cannot match IPv4 peers of dual-stack servers), so any caller passes the
 * principal check; who may call is then enforced by scope alone (a caller without a TrafficTarget
 * gets no route), while paths, methods and ports are still checked at the destination.
 */
export function principalsOf(identity: string, mtls: boolean): Json[] {
  return mtls ? [{ authenticated: { principal_name: { exact: identity } } }] : [{ any: true }];
}

/** SAN matchers accepting exactly the given SPIFFE IDs. */
export function sanMatchers(identities: readonly string[]): Json[] {
  return identities.map((id) => ({ san_type: 'URI', matcher: exact(id) }));
}

/**
 * The cluster routes of an all-zero TrafficSplit go to: EDS with an assignment of no endpoints, so
 * Envoy answers 503 and gRPC fails the call UNAVAILABLE, and nothing reaches any backend.
 */
export function blackhole(): { cluster: Json; endpoints: Json } {
  return {
    cluster: {
      name: names.BLACKHOLE_CLUSTER,
      type: 'EDS',
      eds_cluster_config: { eds_config: ADS_SOURCE },
      lb_policy: 'ROUND_ROBIN',
    },
    endpoints: { cluster_name: names.BLACKHOLE_CLUSTER, endpoints: [] },
  };
}

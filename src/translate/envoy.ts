/**
 * The Envoy sidecar flavor. Traffic reaches Envoy through iptables redirection (src/inject/capture):
 * - Outbound listener `outbound` (15001, `original_dst` listener filter): one filter chain per
 *   reachable service port, matched on the address the app dialed: the service's cluster IP, or for
 *   a headless Service each endpoint's own IP (the call then goes to exactly that pod, through an
 *   ORIGINAL_DST cluster). HTTP and gRPC ports go through the HTTP connection manager with RDS;
 *   TCP ports through tcp_proxy (weighted clusters for a split). UDP ports are not intercepted by
 *   the sidecar and get no chain (documented limitation). Anything else (an address or port outside
 *   the mesh) takes the default chain: `passthrough` to the dialed address, or `refuse` when
 *   MeshConfig `outboundPassthrough` is false.
 * - Inbound listener `inbound` (15003): one filter chain per port the workload serves, matched on
 *   the destination port, requiring a client certificate from the mesh CA (SDS), sending to the
 *   local app through `inbound|<port>` (127.0.0.1) in the protocol the port declares. Ports the
 *   workload does not serve take the default chain `refuse`. HTTP access rules from TrafficTargets
 *   sit in the inbound route configuration (RBACPerRoute), not in the listener: Envoy looks routes
 *   up per request, so a revoked permission applies to the next request on an open connection,
 *   where a listener change would leave open connections on the old rules until they drain. The
 *   RBAC sits on the virtual host; its routes are one per HTTPRouteGroup match an access rule allows
 *   on the port (with a stat prefix, so Envoy counts each match: TrafficMetrics' routes), then the
 *   catch-all. TCP ports carry network RBAC, checked when a connection opens.
 * - Outbound clusters use EDS (ORIGINAL_DST for headless Services) and upstream mTLS with SNI = the
 *   service host name and a SAN check on the destination's SPIFFE IDs; certificates come over SDS
 *   (`weft-identity`, `weft-ca`), whose Secret resources the identity stage adds. Sidecars speak
 *   TLS 1.3 only to each other.
 * - Stat prefixes and clusters' `alt_stat_name` are {@link names.statName}s, safe for Prometheus.
 */
import { condition } from '../smi/conditions';
import type { Condition, ServiceModel, ServicePortModel } from '../smi/model';
import {
  ADS_SOURCE,
  allowedHttpMatches,
  blackhole,
  isHttp,
  type Json,
  loadAssignment,
  ROUTER_FILTER,
  rbacPolicies,
  routeMatch,
  sanMatchers,
  T,
} from './common';
import { targetPortOn } from './grpc';
import * as names from './names';
import { portRoutes } from './routes';
import type { ProxyView } from './scope';
import type { ProxyResources } from './types';

const RBAC_PER_ROUTE = 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute';
const HTTP_OPTIONS = 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions';
/**
 * Between sidecars both ends speak TLS 1.3, so nothing older is accepted. The maximum is set too:
 * Envoy's default maximum for a client (upstream) context is TLS 1.2.
 */
const TLS_PARAMS: Json = { tls_minimum_protocol_version: 'TLSv1_3', tls_maximum_protocol_version: 'TLSv1_3' };

const sds = (name: string): Json => ({ name, sds_config: ADS_SOURCE });

function upstreamTls(svc: ServiceModel, identities: readonly string[]): Json {
  return {
    name: names.FILTER.tls,
    typed_config: {
      '@type': T.upstreamTls,
      sni: svc.hostname,
      common_tls_context: {
        tls_params: TLS_PARAMS,
        tls_certificate_sds_secret_configs: [sds(names.IDENTITY_SECRET)],
        combined_validation_context: {
          default_validation_context: { match_typed_subject_alt_names: sanMatchers(identities) },
          validation_context_sds_secret_config: sds(names.TRUST_SECRET),
        },
      },
    },
  };
}

function downstreamTls(): Json {
  return {
    name: names.FILTER.tls,
    typed_config: {
      '@type': T.downstreamTls,
      require_client_certificate: true,
      common_tls_context: {
        tls_params: TLS_PARAMS,
        tls_certificate_sds_secret_configs: [sds(names.IDENTITY_SECRET)],
        validation_context_sds_secret_config: sds(names.TRUST_SECRET),
      },
    },
  };
}

function cidr(ip: string): Json {
  return { address_prefix: ip, prefix_len: ip.includes(':') ? 128 : 32 };
}

/** A port whose app speaks HTTP/2 only: gRPC, or `appProtocol` / name `http2`, `h2c`. */
function http2Only(p: ServicePortModel): boolean {
  if (p.appProtocol === 'grpc') return true;
  if (p.appProtocol !== 'http') return false;
  const raw = p.appProtocolRaw?.toLowerCase();
  if (raw !== undefined) return raw === 'http2' || raw === 'h2c' || raw === 'kubernetes.io/h2c';
  return /^(http2|h2c)(-|$)/i.test(p.name);
}

/**
 * How a cluster speaks HTTP to the app behind a port: HTTP/2 for gRPC and h2c ports; for plain
 * `http` ports the protocol the caller used, so HTTP/1.1 and h2c apps both work end to end. TCP
 * ports are not HTTP-aware (undefined).
 */
function httpProtocolOptions(p: ServicePortModel): Json | undefined {
  if (!isHttp(p)) return undefined;
  return {
    'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
      '@type': HTTP_OPTIONS,
      ...(http2Only(p)
        ? { explicit_http_config: { http2_protocol_options: {} } }
        : { use_downstream_protocol_config: {} }),
    },
  };
}

function tcpProxy(chain: string, cluster: string): Json {
  return {
    name: names.FILTER.tcpProxy,
    typed_config: { '@type': T.tcpProxy, stat_prefix: names.statName(chain), cluster },
  };
}

function hcm(chain: string, routeName: string, httpFilters: Json[], extra: Json = {}): Json {
  return {
    name: names.FILTER.hcm,
    typed_config: {
      '@type': T.hcm,
      stat_prefix: names.statName(chain),
      rds: { route_config_name: routeName, config_source: ADS_SOURCE },
      http_filters: httpFilters,
      ...extra,
    },
  };
}

/** Collects the clusters (and assignments) one proxy needs, each once. */
class ClusterSet {
  private readonly names = new Set<string>();
  constructor(private readonly out: ProxyResources) {}

  add(cluster: Json, assignment?: Json): void {
    const name = cluster.name as string;
    if (this.names.has(name)) return;
    this.names.add(name);
    this.out.clusters.push(cluster);
    if (assignment) this.out.endpoints.push(assignment);
  }

  blackhole(): void {
    const b = blackhole();
    this.add(b.cluster, b.endpoints);
  }
}

/**
 * Past this many HTTPRouteGroup matches on one inbound port, the port gets no match routes (only
 * the catch-all): Envoy tries routes in order on every request, and thousands of regex routes would
 * cost each request more than per-route figures are worth. Access is not affected either way.
 */
export const MATCH_ROUTES_LIMIT = 64;

/** The inbound match routes of a port (see the module comment and {@link MATCH_ROUTES_LIMIT}). */
function matchRoutes(access: ProxyView['access'], port: number, local: string): Json[] {
  const matches = allowedHttpMatches(access, port);
  if (matches.length > MATCH_ROUTES_LIMIT) return [];
  return matches.map((m) => ({
    name: names.inboundMatchRoute(m.routeGroup, m.name),
    match: routeMatch(m, true),
    route: { cluster: local },
    stat_prefix: names.routeStatPrefix(m.routeGroup, m.name),
  }));
}

/**
 * The destination ports a headless Service's endpoints are dialed on for one service port: the
 * endpoints' own port when they agree, else the service port (clients of a headless Service dial
 * pod IPs on the container port).
 */
function headlessPort(svc: ServiceModel, port: ServicePortModel): number {
  const found = new Set<number>();
  for (const ep of svc.endpoints) {
    const p = ep.ports.find((x) => x.name === port.name)?.port;
    if (p !== undefined) found.add(p);
  }
  return found.size === 1 ? [...found][0]! : port.port;
}

/**
 * Translates one proxy of the Envoy flavor; problems with input objects that only this flavor has
 * (a Service it cannot route) are added to `conditions`.
 */
export function translateEnvoy(v: ProxyView, conditions: Condition[] = []): ProxyResources {
  const out: ProxyResources = { listeners: [], routes: [], clusters: [], endpoints: [], secrets: [] };
  if (!v.workload) return out;
  const clusters = new ClusterSet(out);
  const byKey = new Map(v.outbound.map((s) => [`${s.namespace}/${s.name}`, s]));
  const outboundCluster = (svc: ServiceModel, port: number): void => {
    const name = names.outboundCluster(svc.namespace, svc.name, port);
    const sp = svc.ports.find((p) => p.port === port && p.protocol === 'TCP');
    if (!sp) return;
    const options = httpProtocolOptions(sp);
    const common: Json = {
      name,
      alt_stat_name: names.statName(name),
      connect_timeout: '5s',
      ...(options ? { typed_extension_protocol_options: options } : {}),
      ...(v.mtls
        ? { transport_socket: upstreamTls(svc, v.serverIdentities[`${svc.namespace}/${svc.name}`] ?? []) }
        : {}),
    };
    if (svc.headless) {
      // The app dialed one pod of the set on purpose (web-0.web...): go to that address.
      clusters.add({ ...common, type: 'ORIGINAL_DST', lb_policy: 'CLUSTER_PROVIDED' });
    } else {
      clusters.add(
        { ...common, type: 'EDS', eds_cluster_config: { eds_config: ADS_SOURCE }, lb_policy: 'ROUND_ROBIN' },
        loadAssignment(svc, sp),
      );
    }
  };

  const chains: Json[] = [];
  // Envoy refuses a listener where two chains match the same address and port; the first service
  // (in namespace/name order) keeps an address two of them claim.
  const claimed = new Set<string>();
  for (const svc of v.outbound) {
    if (!svc.headless && !svc.clusterIP) {
      // The API server allocates one, so this is a folder of manifests written by hand; the
      // sidecar matches calls by the address the app dials and has nothing to match.
      if (svc.type !== 'ExternalName') {
        conditions.push(
          condition(
            { kind: 'Service', namespace: svc.namespace, name: svc.name },
            'MissingClusterIP',
            'has no spec.clusterIP, so Envoy sidecars cannot route calls to it (they match a call by the address the app dials; proxyless gRPC clients are not affected); set spec.clusterIP to the address clients dial (the API server allocates one in a cluster), or clusterIP: None for a headless Service',
            'spec.clusterIP',
          ),
        );
      }
      continue;
    }
    const split = v.splits.find((s) => s.namespace === svc.namespace && s.rootService === svc.name);
    for (const port of svc.ports) {
      if (port.protocol !== 'TCP') continue;
      const destinationPort = svc.headless ? headlessPort(svc, port) : port.port;
      const addresses = (
        svc.headless ? [...new Set(svc.endpoints.map((e) => e.ip))].sort() : [svc.clusterIP!]
      ).filter((ip) => !claimed.has(`${ip}|${destinationPort}`));
      if (addresses.length === 0) continue;
      const routed = portRoutes(svc, port.port, split, 'envoy');
      if (routed.services.some((k) => !byKey.has(k))) continue;
      for (const ip of addresses) claimed.add(`${ip}|${destinationPort}`);
      for (const k of routed.services) outboundCluster(byKey.get(k)!, port.port);
      if (routed.blackhole) clusters.blackhole();
      const chainName = names.outboundChain(svc.namespace, svc.name, port.port);
      const match = { prefix_ranges: addresses.map(cidr), destination_port: destinationPort };
      if (isHttp(port)) {
        const routeName = names.outboundRoute(svc.namespace, svc.name, port.port);
        out.routes.push({
          name: routeName,
          // The filter chain already chose the service by the address dialed; any Host header an
          // app sends (an alias, an IP, a pod's own name under a headless Service) is that service.
          virtual_hosts: [
            {
              name: names.virtualHost(svc.namespace, svc.name, port.port),
              domains: ['*'],
              routes: routed.routes,
            },
          ],
        });
        chains.push({
          name: chainName,
          filter_chain_match: match,
          filters: [hcm(chainName, routeName, [ROUTER_FILTER])],
        });
      } else {
        const action = (routed.routes[0] as { route?: Json }).route ?? {};
        const tcp = action.weighted_clusters
          ? {
              name: names.FILTER.tcpProxy,
              typed_config: {
                '@type': T.tcpProxy,
                stat_prefix: names.statName(chainName),
                weighted_clusters: action.weighted_clusters,
              },
            }
          : tcpProxy(chainName, action.cluster as string);
        chains.push({ name: chainName, filter_chain_match: match, filters: [tcp] });
      }
    }
  }
  let outboundDefault: Json;
  if (v.settings.outboundPassthrough) {
    clusters.add({
      name: names.PASSTHROUGH,
      type: 'ORIGINAL_DST',
      lb_policy: 'CLUSTER_PROVIDED',
      connect_timeout: '5s',
    });
    outboundDefault = { name: names.PASSTHROUGH, filters: [tcpProxy(names.PASSTHROUGH, names.PASSTHROUGH)] };
  } else {
    clusters.blackhole();
    outboundDefault = {
      name: names.REFUSE_CHAIN,
      filters: [tcpProxy(`outbound_${names.REFUSE_CHAIN}`, names.BLACKHOLE_CLUSTER)],
    };
  }
  out.listeners.push({
    name: names.OUTBOUND_LISTENER,
    address: { socket_address: { address: '0.0.0.0', port_value: names.OUTBOUND_PORT } },
    listener_filters: [{ name: names.FILTER.originalDst, typed_config: { '@type': T.originalDst } }],
    filter_chains: chains,
    default_filter_chain: outboundDefault,
    traffic_direction: 'OUTBOUND',
  });

  const inboundChains: Json[] = [];
  const seen = new Set<number>();
  for (const svc of v.inbound) {
    for (const p of svc.ports) {
      if (p.protocol !== 'TCP') continue;
      const target = targetPortOn(svc, p.name, p.targetPort, v.workload.ips);
      if (target === null || seen.has(target)) continue;
      seen.add(target);
      const local = names.inbound(target);
      const options = httpProtocolOptions(p);
      clusters.add({
        name: local,
        alt_stat_name: names.statName(local),
        type: 'STATIC',
        connect_timeout: '5s',
        ...(options ? { typed_extension_protocol_options: options } : {}),
        load_assignment: {
          cluster_name: local,
          endpoints: [
            {
              lb_endpoints: [
                { endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: target } } } },
              ],
            },
          ],
        },
      });
      const rules = v.settings.permissive
        ? {
            action: 'ALLOW',
            policies: {
              [names.PERMISSIVE_POLICY]: { permissions: [{ any: true }], principals: [{ any: true }] },
            },
          }
        : rbacPolicies(v.access, target, isHttp(p), v.mtls);
      const filters: Json[] = [];
      if (isHttp(p)) {
        out.routes.push({
          name: local,
          virtual_hosts: [
            {
              name: local,
              domains: ['*'],
              routes: [
                ...matchRoutes(v.access, target, local),
                { name: names.DEFAULT_ROUTE, match: { prefix: '' }, route: { cluster: local } },
              ],
              typed_per_filter_config: {
                [names.FILTER.httpRbac]: { '@type': RBAC_PER_ROUTE, rbac: { rules } },
              },
            },
          ],
        });
        // The listener's own RBAC allows nothing: a route without access rules is denied.
        const denyAll = {
          name: names.FILTER.httpRbac,
          typed_config: { '@type': T.httpRbac, rules: { action: 'ALLOW' } },
        };
        filters.push(
          hcm(local, local, [denyAll, ROUTER_FILTER], {
            forward_client_cert_details: 'SANITIZE_SET',
            set_current_client_cert_details: { uri: true },
          }),
        );
      } else {
        if (!v.settings.permissive) {
          filters.push({
            name: names.FILTER.networkRbac,
            typed_config: { '@type': T.networkRbac, stat_prefix: names.statName(local), rules },
          });
        }
        filters.push(tcpProxy(local, local));
      }
      inboundChains.push({
        name: local,
        filter_chain_match: { destination_port: target },
        filters,
        ...(v.mtls ? { transport_socket: downstreamTls() } : {}),
      });
    }
  }
  clusters.blackhole();
  out.listeners.push({
    name: names.INBOUND_LISTENER,
    address: { socket_address: { address: '0.0.0.0', port_value: names.INBOUND_PORT } },
    listener_filters: [{ name: names.FILTER.originalDst, typed_config: { '@type': T.originalDst } }],
    filter_chains: inboundChains,
    // Deny by default also for ports no Service names: the connection is closed.
    default_filter_chain: {
      name: names.REFUSE_CHAIN,
      filters: [tcpProxy(`inbound_${names.REFUSE_CHAIN}`, names.BLACKHOLE_CLUSTER)],
    },
    traffic_direction: 'INBOUND',
  });
  return out;
}

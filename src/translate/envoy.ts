/**
 * The Envoy sidecar flavor. Traffic reaches Envoy through iptables redirection:
 * - Outbound listener `outbound` (15001, `original_dst` listener filter): one filter chain per
 *   reachable service port, matched on the service's cluster IP and port. HTTP and gRPC ports go
 *   through the HTTP connection manager with RDS (the same route configurations as the gRPC flavor,
 *   with every host form as domains); TCP ports through tcp_proxy (weighted clusters for a split).
 *   UDP ports are not intercepted by the sidecar and get no chain (documented limitation).
 * - Inbound listener `inbound` (15003): one filter chain per port the workload serves, matched on
 *   the destination port, requiring a client certificate from the mesh CA (SDS), with HTTP RBAC
 *   (per-route matches from TrafficTargets) for HTTP ports and network RBAC for TCP ports, sending
 *   to the local app through `inbound|<port>` (127.0.0.1).
 * - Outbound clusters use EDS and upstream mTLS with SNI = the service host name and a SAN check on
 *   the destination's SPIFFE IDs; certificates come over SDS (`weft-identity`, `weft-ca`), whose
 *   Secret resources the identity stage adds.
 */
import type { ServiceModel } from '../smi/model';
import {
  ADS_SOURCE,
  blackhole,
  isHttp,
  type Json,
  loadAssignment,
  ROUTER_FILTER,
  rbacPolicies,
  sanMatchers,
  T,
} from './common';
import { targetPortOn } from './grpc';
import * as names from './names';
import { portRoutes } from './routes';
import type { ProxyView } from './scope';
import type { ProxyResources } from './types';

const sds = (name: string): Json => ({ name, sds_config: ADS_SOURCE });

function upstreamTls(svc: ServiceModel, identities: readonly string[]): Json {
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: {
      '@type': T.upstreamTls,
      sni: svc.hostname,
      common_tls_context: {
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
    name: 'envoy.transport_sockets.tls',
    typed_config: {
      '@type': T.downstreamTls,
      require_client_certificate: true,
      common_tls_context: {
        tls_certificate_sds_secret_configs: [sds(names.IDENTITY_SECRET)],
        validation_context_sds_secret_config: sds(names.TRUST_SECRET),
      },
    },
  };
}

function cidr(ip: string): Json {
  return { address_prefix: ip, prefix_len: ip.includes(':') ? 128 : 32 };
}

/** Translates one proxy of the Envoy flavor. */
export function translateEnvoy(v: ProxyView): ProxyResources {
  const out: ProxyResources = { listeners: [], routes: [], clusters: [], endpoints: [], secrets: [] };
  if (!v.workload) return out;
  const byKey = new Map(v.outbound.map((s) => [`${s.namespace}/${s.name}`, s]));
  const clusters = new Set<string>();
  const needCluster = (svc: ServiceModel, port: number): void => {
    const name = names.outboundCluster(svc.namespace, svc.name, port);
    const sp = svc.ports.find((p) => p.port === port && p.protocol === 'TCP');
    if (clusters.has(name) || !sp) return;
    clusters.add(name);
    out.clusters.push({
      name,
      type: 'EDS',
      eds_cluster_config: { eds_config: ADS_SOURCE },
      connect_timeout: '5s',
      lb_policy: 'ROUND_ROBIN',
      ...(sp.appProtocol === 'grpc' || sp.appProtocol === 'http'
        ? {
            typed_extension_protocol_options: {
              'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
                '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
                ...(sp.appProtocol === 'grpc'
                  ? { explicit_http_config: { http2_protocol_options: {} } }
                  : { use_downstream_protocol_config: {} }),
              },
            },
          }
        : {}),
      ...(v.mtls
        ? { transport_socket: upstreamTls(svc, v.serverIdentities[`${svc.namespace}/${svc.name}`] ?? []) }
        : {}),
    });
    out.endpoints.push(loadAssignment(svc, sp));
  };
  const chains: Json[] = [];
  for (const svc of v.outbound) {
    // Calls go to the cluster IP; a service without one (headless) is called on its endpoints' IPs.
    const destinations = svc.clusterIP
      ? [svc.clusterIP]
      : [...new Set(svc.endpoints.map((e) => e.ip))].sort();
    if (destinations.length === 0) continue;
    const split = v.splits.find((s) => s.namespace === svc.namespace && s.rootService === svc.name);
    for (const port of svc.ports) {
      if (port.protocol !== 'TCP') continue;
      const routed = portRoutes(svc, port.port, split, true);
      if (routed.services.some((k) => !byKey.has(k))) continue;
      for (const k of routed.services) needCluster(byKey.get(k)!, port.port);
      if (routed.blackhole && !out.clusters.some((c) => c.name === names.BLACKHOLE_CLUSTER)) {
        const b = blackhole();
        out.clusters.push(b.cluster);
        out.endpoints.push(b.endpoints);
      }
      const chainName = names.outboundChain(svc.namespace, svc.name, port.port);
      const match = { prefix_ranges: destinations.map(cidr), destination_port: port.port };
      if (isHttp(port)) {
        const routeName = names.outboundRoute(svc.namespace, svc.name, port.port);
        const domains = names
          .hostForms(svc.name, svc.namespace, v.settings.clusterDomain, svc.clusterIP)
          .flatMap((h) => [h, `${h}:${port.port}`]);
        out.routes.push({
          name: routeName,
          virtual_hosts: [
            { name: names.virtualHost(svc.namespace, svc.name, port.port), domains, routes: routed.routes },
          ],
        });
        chains.push({
          name: chainName,
          filter_chain_match: match,
          filters: [
            {
              name: 'envoy.filters.network.http_connection_manager',
              typed_config: {
                '@type': T.hcm,
                stat_prefix: chainName,
                rds: { route_config_name: routeName, config_source: ADS_SOURCE },
                http_filters: [ROUTER_FILTER],
              },
            },
          ],
        });
      } else {
        const first = routed.routes[0] as { route?: Json };
        const action = first.route ?? {};
        const tcp: Json = { '@type': T.tcpProxy, stat_prefix: chainName };
        if (action.weighted_clusters) tcp.weighted_clusters = action.weighted_clusters;
        else tcp.cluster = action.cluster;
        chains.push({
          name: chainName,
          filter_chain_match: match,
          filters: [{ name: 'envoy.filters.network.tcp_proxy', typed_config: tcp }],
        });
      }
    }
  }
  out.listeners.push({
    name: names.OUTBOUND_LISTENER,
    address: { socket_address: { address: '0.0.0.0', port_value: names.OUTBOUND_PORT } },
    listener_filters: [
      { name: 'envoy.filters.listener.original_dst', typed_config: { '@type': T.originalDst } },
    ],
    filter_chains: chains,
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
      out.clusters.push({
        name: local,
        type: 'STATIC',
        connect_timeout: '5s',
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
      const rules = rbacPolicies(v.access, target, isHttp(p), v.mtls);
      const filters: Json[] = [];
      if (isHttp(p)) {
        out.routes.push({
          name: local,
          virtual_hosts: [
            {
              name: local,
              domains: ['*'],
              routes: [{ name: names.DEFAULT_ROUTE, match: { prefix: '' }, route: { cluster: local } }],
            },
          ],
        });
        const httpFilters: Json[] = [];
        if (!v.settings.permissive)
          httpFilters.push({ name: 'envoy.filters.http.rbac', typed_config: { '@type': T.httpRbac, rules } });
        httpFilters.push(ROUTER_FILTER);
        filters.push({
          name: 'envoy.filters.network.http_connection_manager',
          typed_config: {
            '@type': T.hcm,
            stat_prefix: local,
            rds: { route_config_name: local, config_source: ADS_SOURCE },
            http_filters: httpFilters,
            forward_client_cert_details: 'SANITIZE_SET',
            set_current_client_cert_details: { uri: true },
          },
        });
      } else {
        if (!v.settings.permissive) {
          filters.push({
            name: 'envoy.filters.network.rbac',
            typed_config: { '@type': T.networkRbac, stat_prefix: local, rules },
          });
        }
        filters.push({
          name: 'envoy.filters.network.tcp_proxy',
          typed_config: { '@type': T.tcpProxy, stat_prefix: local, cluster: local },
        });
      }
      inboundChains.push({
        name: local,
        filter_chain_match: { destination_port: target },
        filters,
        ...(v.mtls ? { transport_socket: downstreamTls() } : {}),
      });
    }
  }
  out.listeners.push({
    name: names.INBOUND_LISTENER,
    address: { socket_address: { address: '0.0.0.0', port_value: names.INBOUND_PORT } },
    listener_filters: [
      { name: 'envoy.filters.listener.original_dst', typed_config: { '@type': T.originalDst } },
    ],
    filter_chains: inboundChains,
    traffic_direction: 'INBOUND',
  });
  return out;
}

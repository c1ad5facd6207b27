/**
 * The proxyless gRPC flavor (grpc-js-xds, grpc-go): what a gRPC client dials and what a gRPC
 * server serves.
 * - Client: a Listener named `<host>:<port>` for every host form of every reachable service port
 *   (an `api_listener` HTTP connection manager with RDS), route configurations per service port,
 *   EDS clusters with upstream mTLS from certificate provider instances and a SAN check on the
 *   destination's SPIFFE IDs, and their endpoints.
 * - Server: a Listener per address the server may bind (`0.0.0.0`, `[::]`, each pod IP) for each
 *   port it serves, named from the `grpc/server?xds.resource.listening_address=` template, whose
 *   HTTP connection manager has the RBAC filter (deny by default) and non-forwarding routes, and
 *   whose filter chain requires client certificates.
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
  T,
} from './common';
import * as names from './names';
import { portRoutes } from './routes';
import type { ProxyView } from './scope';
import type { ProxyResources } from './types';

const certProvider = (instance: string): Json => ({ instance_name: instance });

function upstreamTls(identities: readonly string[]): Json {
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: {
      '@type': T.upstreamTls,
      common_tls_context: {
        tls_certificate_provider_instance: certProvider(names.IDENTITY_SECRET),
        validation_context: {
          ca_certificate_provider_instance: certProvider(names.TRUST_SECRET),
          match_subject_alt_names: identities.map((id) => ({ exact: id })),
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
        tls_certificate_provider_instance: certProvider(names.IDENTITY_SECRET),
        validation_context: { ca_certificate_provider_instance: certProvider(names.TRUST_SECRET) },
      },
    },
  };
}

/** Translates one proxy of the gRPC flavor. */
export function translateGrpc(v: ProxyView): ProxyResources {
  const out: ProxyResources = { listeners: [], routes: [], clusters: [], endpoints: [], secrets: [] };
  if (!v.workload) return out;
  const byKey = new Map(v.outbound.map((s) => [`${s.namespace}/${s.name}`, s]));
  const clusterFor = new Set<string>();
  const needCluster = (svc: ServiceModel, port: number): void => {
    const name = names.outboundCluster(svc.namespace, svc.name, port);
    if (clusterFor.has(name)) return;
    const sp = svc.ports.find((p) => p.port === port && p.protocol === 'TCP');
    if (!sp) return;
    clusterFor.add(name);
    const ids = v.serverIdentities[`${svc.namespace}/${svc.name}`] ?? [];
    out.clusters.push({
      name,
      type: 'EDS',
      eds_cluster_config: { eds_config: ADS_SOURCE },
      lb_policy: 'ROUND_ROBIN',
      ...(v.mtls ? { transport_socket: upstreamTls(ids) } : {}),
    });
    out.endpoints.push(loadAssignment(svc, sp));
  };
  for (const svc of v.outbound) {
    const split = v.splits.find((s) => s.namespace === svc.namespace && s.rootService === svc.name);
    for (const port of svc.ports) {
      if (port.protocol !== 'TCP') continue;
      const routed = portRoutes(svc, port.port, split, 'grpc');
      const missing = routed.services.some((k) => !byKey.has(k));
      if (missing) continue;
      for (const k of routed.services) needCluster(byKey.get(k)!, port.port);
      if (routed.blackhole && !out.clusters.some((c) => c.name === names.BLACKHOLE_CLUSTER)) {
        const b = blackhole();
        out.clusters.push(b.cluster);
        out.endpoints.push(b.endpoints);
      }
      const routeName = names.outboundRoute(svc.namespace, svc.name, port.port);
      out.routes.push({
        name: routeName,
        virtual_hosts: [
          {
            name: names.virtualHost(svc.namespace, svc.name, port.port),
            domains: ['*'],
            routes: routed.routes,
          },
        ],
      });
      for (const host of names.hostForms(svc.name, svc.namespace, v.settings.clusterDomain, svc.clusterIP)) {
        out.listeners.push({
          name: names.grpcClientListener(host, port.port),
          api_listener: {
            api_listener: {
              '@type': T.hcm,
              stat_prefix: routeName,
              rds: { route_config_name: routeName, config_source: ADS_SOURCE },
              http_filters: [ROUTER_FILTER],
            },
          },
        });
      }
    }
  }
  // Server side: every port of every service the workload backs.
  const served = new Map<number, { http: boolean }>();
  for (const svc of v.inbound) {
    for (const p of svc.ports) {
      if (p.protocol !== 'TCP') continue;
      const target = targetPortOn(svc, p.name, p.targetPort, v.workload.ips);
      if (target === null) continue;
      if (!served.has(target)) served.set(target, { http: isHttp(p) });
    }
  }
  for (const [target, info] of [...served.entries()].sort((a, b) => a[0] - b[0])) {
    const filters: Json[] = [];
    if (!v.settings.permissive) {
      filters.push({
        name: 'envoy.filters.http.rbac',
        typed_config: { '@type': T.httpRbac, rules: rbacPolicies(v.access, target, info.http, v.mtls) },
      });
    }
    filters.push(ROUTER_FILTER);
    const hcm: Json = {
      '@type': T.hcm,
      stat_prefix: names.inbound(target),
      route_config: {
        name: names.inbound(target),
        virtual_hosts: [
          {
            name: names.inbound(target),
            domains: ['*'],
            routes: [{ match: { prefix: '' }, non_forwarding_action: {} }],
          },
        ],
      },
      http_filters: filters,
    };
    for (const ip of ['0.0.0.0', '::', ...v.workload.ips]) {
      out.listeners.push({
        name: names.grpcServerListener(ip, target),
        address: { socket_address: { address: ip, port_value: target } },
        filter_chains: [
          {
            name: names.inbound(target),
            filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: hcm }],
            ...(v.mtls ? { transport_socket: downstreamTls() } : {}),
          },
        ],
      });
    }
  }
  return out;
}

/** The port a service port lands on for this workload (a named target port via its endpoints). */
export function targetPortOn(
  svc: ServiceModel,
  portName: string,
  targetPort: number | string,
  ips: readonly string[],
): number | null {
  if (typeof targetPort === 'number') return targetPort;
  for (const ep of svc.endpoints) {
    if (ips.length > 0 && !ips.includes(ep.ip)) continue;
    const p = ep.ports.find((x) => x.name === portName);
    if (p) return p.port;
  }
  return null;
}

/** Kept for callers that sort by the translated names. */
export function byName(a: Json, b: Json): number {
  const na = String(a.name ?? a.cluster_name);
  const nb = String(b.name ?? b.cluster_name);
  return na < nb ? -1 : na > nb ? 1 : 0;
}

/** Builders for `envoy.config.endpoint.v3` messages: ClusterLoadAssignments of service ports. */
import type { EndpointModel, ServiceModel, ServicePortModel } from '../../smi/model';
import * as names from '../names';
import type { JsonObject } from '../types';
import { socketAddress } from './core';

/**
 * Locality of every endpoint group. Proxyless gRPC rejects an assignment whose endpoint groups
 * lack a locality or a positive `load_balancing_weight`; Weft has no topology yet, so there is one.
 */
export const LOCALITY = { zone: 'weft' } as const;

/** LbEndpoint: ready endpoints are HEALTHY, the others UNHEALTHY (kept, so they show in dumps). */
export function lbEndpoint(ip: string, port: number, ready: boolean): JsonObject {
  return { endpoint: { address: socketAddress(ip, port) }, health_status: ready ? 'HEALTHY' : 'UNHEALTHY' };
}

/** ClusterLoadAssignment; without endpoints it has none at all (calls to it fail). */
export function clusterLoadAssignment(clusterName: string, lbEndpoints: JsonObject[]): JsonObject {
  if (lbEndpoints.length === 0) return { cluster_name: clusterName };
  return {
    cluster_name: clusterName,
    endpoints: [{ locality: { ...LOCALITY }, load_balancing_weight: 1, lb_endpoints: lbEndpoints }],
  };
}

/**
 * The port a service port lands on at one endpoint: the endpoint's port of the same name, else a
 * numeric `targetPort`; null when a named target port does not resolve there.
 */
export function endpointPort(port: ServicePortModel, ep: EndpointModel): number | null {
  const byName = ep.ports.find((p) => p.name === port.name && p.protocol === port.protocol);
  if (byName) return byName.port;
  return typeof port.targetPort === 'number' ? port.targetPort : null;
}

/** The assignment of a service port's outbound cluster: every endpoint, in model (IP) order. */
export function serviceLoadAssignment(svc: ServiceModel, port: ServicePortModel): JsonObject {
  const lbEndpoints: JsonObject[] = [];
  for (const ep of svc.endpoints) {
    const p = endpointPort(port, ep);
    if (p !== null) lbEndpoints.push(lbEndpoint(ep.ip, p, ep.ready));
  }
  return clusterLoadAssignment(names.outboundCluster(svc.namespace, svc.name, port.port), lbEndpoints);
}

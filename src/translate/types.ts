/** Inputs and outputs of translation. */
import type { JsonObject } from '../envoy/codec';
import type { Condition, WorkloadRef } from '../smi/model';

export type { JsonObject } from '../envoy/codec';
export type { Condition } from '../smi/model';

/** The proxy to translate for: one workload, seen through one data plane flavor. */
export interface ProxyTarget {
  /** The workload the proxy belongs to (a Pod, or a Deployment standing for its pods). */
  readonly workload: WorkloadRef;
  /** `envoy`: an Envoy sidecar behind iptables redirection. `grpc`: a proxyless gRPC workload. */
  readonly flavor: 'envoy' | 'grpc';
  /**
   * Mutual TLS between proxies (default true). False is a plaintext development mode: no TLS, and
   * access rules can only name callers by address (see `common/rbac.ts`).
   */
  readonly mtls?: boolean;
}

/**
 * The xDS resources of one proxy in canonical proto3 JSON, each list sorted by name
 * (ClusterLoadAssignments by `cluster_name`). Secrets stay empty: their content comes from the
 * identity stage, translation only refers to them by name.
 */
export interface ProxyResources {
  listeners: JsonObject[];
  routes: JsonObject[];
  clusters: JsonObject[];
  endpoints: JsonObject[];
  secrets: JsonObject[];
}

/** What translating one proxy gives. */
export interface TranslateResult {
  readonly resources: ProxyResources;
  /** Problems found on the way, about input objects; sorted and de-duplicated. */
  readonly conditions: Condition[];
}

/** Proto message type of each resource list, for decoding and validation. */
export const RESOURCE_TYPES: Readonly<Record<keyof ProxyResources, string>> = {
  listeners: 'envoy.config.listener.v3.Listener',
  routes: 'envoy.config.route.v3.RouteConfiguration',
  clusters: 'envoy.config.cluster.v3.Cluster',
  endpoints: 'envoy.config.endpoint.v3.ClusterLoadAssignment',
  secrets: 'envoy.extensions.transport_sockets.tls.v3.Secret',
};

/** The name a resource is served under: `cluster_name` for assignments, `name` otherwise. */
export function resourceName(json: JsonObject): string {
  return String(json.name ?? json.cluster_name);
}

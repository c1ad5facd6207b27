/**
 * Outbound routing of one service port, shared by both flavors: the routes of its virtual host,
 * carrying TrafficSplit semantics.
 * - No split: one catch-all route to the service's own cluster.
 * - A split without matches: one route with weighted clusters (relative integer weights; a 0
 *   weight stays, receiving nothing). A split whose weights are all 0 sends the traffic it covers
 *   nowhere, as 0 means no traffic: its routes go to the `blackhole` cluster, which has no
 *   endpoints (calls fail UNAVAILABLE / 503), and the model reports the split.
 * - A split with matches (A/B): one route per match with the weighted clusters, then the catch-all
 *   to the root service for every request that matches none. On Envoy each match route has a stat
 *   prefix (`<group>__<match>`, escaped: {@link names.routeStatPrefix}), so the caller's sidecar counts each
 *   match: TrafficMetrics' routes of a TrafficSplit.
 */
import type { HttpMatch, ServiceModel, SplitModel } from '../smi/model';
import { type Json, routeMatch } from './common';
import * as names from './names';

/** Clusters a route set refers to, so the caller can emit them. */
export interface RoutedPort {
  readonly routes: Json[];
  /** `<namespace>/<service>` of every service whose cluster the routes use. */
  readonly services: string[];
  /** The routes use the endpoint-less {@link names.BLACKHOLE_CLUSTER}. */
  readonly blackhole?: boolean;
}

function weighted(split: SplitModel, port: number): { clusters: Json[]; services: string[] } | null {
  const backends = split.backends.filter((b) => b.ports.includes(port));
  if (backends.reduce((n, b) => n + b.weight, 0) === 0) return null;
  return {
    clusters: backends.map((b) => ({
      name: names.outboundCluster(split.namespace, b.service, port),
      weight: b.weight,
    })),
    services: backends.map((b) => `${split.namespace}/${b.service}`),
  };
}

/**
 * Routes for calls to `svc` on `port`. Envoy's match `:method` and carry stat prefixes; the gRPC
 * flavor has no `:method` to match (gRPC is always POST), so a match that excludes POST is left out,
 * and no statistics to name.
 */
export function portRoutes(
  svc: ServiceModel,
  port: number,
  split: SplitModel | undefined,
  flavor: 'envoy' | 'grpc',
): RoutedPort {
  const withMethod = flavor === 'envoy';
  const self = names.outboundCluster(svc.namespace, svc.name, port);
  const selfKey = `${svc.namespace}/${svc.name}`;
  const fallback: Json = { name: names.DEFAULT_ROUTE, match: { prefix: '' }, route: { cluster: self } };
  if (!split || !split.backends.some((b) => b.ports.includes(port))) {
    return { routes: [fallback], services: [selfKey] };
  }
  const w = weighted(split, port);
  const action: Json = w
    ? { weighted_clusters: { clusters: w.clusters } }
    : { cluster: names.BLACKHOLE_CLUSTER };
  const blackhole = w === null;
  const used = w?.services ?? [];
  if (split.matches === null) {
    return {
      routes: [{ name: names.SPLIT_ROUTE, match: { prefix: '' }, route: action }],
      services: used,
      blackhole,
    };
  }
  const usable = (m: HttpMatch): boolean => withMethod || m.methods === null || m.methods.includes('POST');
  const routes: Json[] = split.matches.filter(usable).map((m) => ({
    name: names.splitMatchRoute(m.routeGroup, m.name),
    match: routeMatch(m, withMethod),
    route: action,
    ...(flavor === 'envoy' ? { stat_prefix: names.routeStatPrefix(m.routeGroup, m.name) } : {}),
  }));
  routes.push(fallback);
  return { routes, services: [...new Set([...used, selfKey])].sort(), blackhole };
}

/** Builders for `envoy.config.route.v3` messages: route configurations, virtual hosts, routes. */
import type { HttpMatch } from '../../smi/model';
import type { JsonObject } from '../types';
import { headerMatcher, methodString, regexMatcher, regexString, startAnchored } from './matchers';

/** RouteConfiguration. */
export function routeConfiguration(name: string, virtualHosts: JsonObject[]): JsonObject {
  return { name, virtual_hosts: virtualHosts };
}

/** VirtualHost. Routes are tried in order; the first match wins. */
export function virtualHost(name: string, domains: readonly string[], routes: JsonObject[]): JsonObject {
  return { name, domains: [...domains], routes };
}

/** RouteMatch for every request. */
export function matchAll(): JsonObject {
  return { prefix: '' };
}

/**
 * RouteMatch for one SMI HTTP match: path (start-anchored, see `matchers.ts`), methods through the
 * `:method` pseudo-header, and every header condition; an absent part matches everything.
 * `withMethod: false` leaves the method out, for callers that handle it themselves (gRPC).
 */
export function smiRouteMatch(m: HttpMatch, withMethod: boolean): JsonObject {
  const match: JsonObject =
    m.pathRegex === null ? matchAll() : { safe_regex: regexMatcher(startAnchored(m.pathRegex)) };
  const headers: JsonObject[] = [];
  if (withMethod && m.methods !== null) headers.push(headerMatcher(':method', methodString(m.methods)));
  for (const h of m.headers) headers.push(headerMatcher(h.name, regexString(h.value)));
  if (headers.length > 0) match.headers = headers;
  return match;
}

/** RouteAction to one cluster. */
export function clusterAction(cluster: string): JsonObject {
  return { cluster };
}

/** One entry of weighted clusters. */
export interface WeightedCluster {
  readonly name: string;
  /** Relative weight; 0 receives nothing. */
  readonly weight: number;
}

/**
 * RouteAction over weighted clusters. Weights are relative (Envoy and gRPC both divide by their
 * sum); callers guarantee a positive sum, which both require.
 */
export function weightedAction(clusters: readonly WeightedCluster[]): JsonObject {
  return { weighted_clusters: { clusters: clusters.map((c) => ({ name: c.name, weight: c.weight })) } };
}

/** Route forwarding to `action`. */
export function forwardRoute(name: string, match: JsonObject, action: JsonObject): JsonObject {
  return { name, match, route: action };
}

/** Route that lets a proxyless gRPC server handle the call itself (server listeners only). */
export function nonForwardingRoute(name: string): JsonObject {
  return { name, match: matchAll(), non_forwarding_action: {} };
}

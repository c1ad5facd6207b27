/**
 * Where calls to one port of a service go: TrafficSplit semantics, shared by both flavors. The
 * result feeds an outbound route configuration (HTTP and gRPC) or a TCP proxy (opaque TCP).
 *
 * - No split, or a split none of whose backends serves this port: everything goes to the
 *   service's own cluster (route `default`).
 * - A split without `matches`: one route `split` with weighted clusters. Weights are the model's
 *   relative integers; a backend of weight 0 stays in the list (it is visible in the config and
 *   gets nothing), because Envoy and gRPC only need the sum to be positive.
 * - A split with `matches` (A/B): one route per match, `split|<group>/<match>`, with the weighted
 *   clusters, then `default` to the root service for every request that matches none. The
 *   catch-all is always last, so every match route is tried first.
 * - Every weight 0 means no traffic at all: the split's routes send to `blackhole`, a cluster
 *   without endpoints (Envoy answers 503, gRPC calls fail with UNAVAILABLE, TCP connections close).
 *   Sending to the root instead would reach the very versions the weights exclude.
 * - Opaque TCP sees no requests, so `matches` never apply there: a split with matches leaves TCP
 *   ports to the root service, a split without splits connections by weight (backends of weight 0
 *   left out: Envoy's TCP proxy requires positive weights).
 * - Proxyless gRPC calls are always POST: a match whose methods exclude POST can never match and
 *   gets no route; one that includes POST needs no method condition.
 */
import type { HttpMatch, ServiceModel, ServicePortModel, SplitModel } from '../../smi/model';
import * as names from '../names';
import type { JsonObject } from '../types';
import {
  clusterAction,
  forwardRoute,
  matchAll,
  smiRouteMatch,
  type WeightedCluster,
  weightedAction,
} from './route';

/** Where a TCP proxy sends connections. */
export type TcpTarget = { readonly cluster: string } | { readonly weighted: readonly WeightedCluster[] };

/** The routing of one service port. */
export interface PortRouting {
  /** Routes of the port's virtual host, most specific first, catch-all last. */
  readonly routes: JsonObject[];
  /** Where opaque TCP goes. */
  readonly tcp: TcpTarget;
  /** `<ns>/<name>` of every service whose cluster on this port the routes or TCP target use, sorted. */
  readonly services: string[];
  /** Whether the routes or TCP target use the `blackhole` cluster. */
  readonly blackhole: boolean;
}

/** Options of {@link portRouting}. */
export interface PortRoutingOptions {
  /** Match `:method` in routes (Envoy). False: gRPC semantics (always POST). */
  readonly methods: boolean;
  /** Whether the split may be applied (the Envoy flavor cannot split around headless services). */
  readonly applySplit: boolean;
}

const keyOf = (ns: string, name: string): string => `${ns}/${name}`;

/** Routing of `port` of `svc`, given the split on it (or null). */
export function portRouting(
  svc: ServiceModel,
  port: ServicePortModel,
  split: SplitModel | null,
  o: PortRoutingOptions,
): PortRouting {
  const self = names.outboundCluster(svc.namespace, svc.name, port.port);
  const selfKey = keyOf(svc.namespace, svc.name);
  const toSelf = (): JsonObject => forwardRoute(names.DEFAULT_ROUTE, matchAll(), clusterAction(self));
  const serving = split && o.applySplit ? split.backends.filter((b) => b.ports.includes(port.port)) : [];
  if (!split || serving.length === 0) {
    return { routes: [toSelf()], tcp: { cluster: self }, services: [selfKey], blackhole: false };
  }
  const total = serving.reduce((n, b) => n + b.weight, 0);
  const weighted = serving.map((b) => ({
    name: names.outboundCluster(split.namespace, b.service, port.port),
    weight: b.weight,
  }));
  const action = total > 0 ? weightedAction(weighted) : clusterAction(names.BLACKHOLE_CLUSTER);
  const backendKeys = total > 0 ? serving.map((b) => keyOf(split.namespace, b.service)) : [];
  if (split.matches === null) {
    const positive = weighted.filter((w) => w.weight > 0);
    const tcp: TcpTarget =
      total === 0
        ? { cluster: names.BLACKHOLE_CLUSTER }
        : positive.length === 1
          ? { cluster: positive[0]!.name }
          : { weighted: positive };
    return {
      routes: [forwardRoute(names.SPLIT_ROUTE, matchAll(), action)],
      tcp,
      services: [...new Set(backendKeys)].sort(),
      blackhole: total === 0,
    };
  }
  const usable = (m: HttpMatch): boolean => o.methods || m.methods === null || m.methods.includes('POST');
  const matchRoutes = split.matches
    .filter(usable)
    .map((m) =>
      forwardRoute(names.splitMatchRoute(m.routeGroup, m.name), smiRouteMatch(m, o.methods), action),
    );
  const used = matchRoutes.length > 0;
  return {
    routes: [...matchRoutes, toSelf()],
    tcp: { cluster: self },
    services: [...new Set([...(used ? backendKeys : []), selfKey])].sort(),
    blackhole: used && total === 0,
  };
}

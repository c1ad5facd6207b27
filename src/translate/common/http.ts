/**
 * Builders for the HTTP connection manager and its HTTP filters, shared by both flavors: the
 * router (always last) and RBAC (before it).
 */
import * as names from '../names';
import type { JsonObject } from '../types';
import { adsConfigSource } from './core';
import { TYPE_URL } from './type-urls';

/** HttpFilter: the router. It must be the last filter. */
export function routerFilter(): JsonObject {
  return { name: names.FILTER.router, typed_config: { '@type': TYPE_URL.router } };
}

/** HttpFilter: RBAC with the given `rules` (an `envoy.config.rbac.v3.RBAC`). */
export function httpRbacFilter(rules: JsonObject): JsonObject {
  return { name: names.FILTER.httpRbac, typed_config: { '@type': TYPE_URL.httpRbac, rules } };
}

/** Where an HTTP connection manager gets its routes. */
export type RouteSource = { readonly rds: string } | { readonly inline: JsonObject };

/** Options of {@link httpConnectionManager}. */
export interface HcmOptions {
  /** Stat prefix (the filter chain's name, see `names.ts`). */
  readonly statPrefix: string;
  /** Route configuration over RDS by name, or inline. */
  readonly routes: RouteSource;
  /** HTTP filters; the router must be last. */
  readonly httpFilters: JsonObject[];
  /** Extra HttpConnectionManager fields. */
  readonly extra?: JsonObject;
}

/** HttpConnectionManager typed config (the `Any` payload, with its `@type`). */
export function httpConnectionManager(o: HcmOptions): JsonObject {
  const routes =
    'rds' in o.routes
      ? { rds: { route_config_name: o.routes.rds, config_source: adsConfigSource() } }
      : { route_config: o.routes.inline };
  return {
    '@type': TYPE_URL.hcm,
    stat_prefix: o.statPrefix,
    ...routes,
    http_filters: o.httpFilters,
    ...(o.extra ?? {}),
  };
}

/** Network filter wrapping an HTTP connection manager. */
export function hcmFilter(hcm: JsonObject): JsonObject {
  return { name: names.FILTER.hcm, typed_config: hcm };
}

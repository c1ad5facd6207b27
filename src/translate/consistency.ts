/**
 * Checks that one proxy's resources hang together and each decodes strictly as its Envoy type:
 * every route's cluster exists, every RDS name has a route configuration, every EDS cluster has an
 * assignment, names are unique per type. Translation never emits a set that fails this; a failure
 * is a bug, and the tests check it over every golden case.
 */
import { checkJson } from '../envoy/codec';
import { validate as validateRules } from '../envoy/validate';
import type { Json } from './common';
import type { ProxyResources } from './types';

/** Extra per-resource validation (protoc-gen-validate rules), when available. */
export type Validator = (typeName: string, json: unknown) => { path: string; message: string }[];

const TYPES: Record<keyof ProxyResources, string> = {
  listeners: 'envoy.config.listener.v3.Listener',
  routes: 'envoy.config.route.v3.RouteConfiguration',
  clusters: 'envoy.config.cluster.v3.Cluster',
  endpoints: 'envoy.config.endpoint.v3.ClusterLoadAssignment',
  secrets: 'envoy.extensions.transport_sockets.tls.v3.Secret',
};

function walk(node: unknown, visit: (o: Json) => void): void {
  if (Array.isArray(node)) for (const x of node) walk(x, visit);
  else if (typeof node === 'object' && node !== null) {
    visit(node as Json);
    for (const v of Object.values(node)) walk(v, visit);
  }
}

/**
 * Every problem found, as `<Type>/<name>: <what>`; empty when consistent. Envoy's
 * protoc-gen-validate rules are checked by default, since Envoy rejects a resource that breaks one.
 */
export function checkConsistency(r: ProxyResources, validate: Validator = validateRules): string[] {
  const problems: string[] = [];
  for (const k of Object.keys(TYPES) as (keyof ProxyResources)[]) {
    for (const res of r[k]) {
      for (const i of [...checkJson(TYPES[k], res), ...validate(TYPES[k], res)]) {
        problems.push(`${k}/${nameOf(k, res)}: ${i.path}: ${i.message}`);
      }
    }
  }
  return [...problems, ...checkReferences(r)];
}

const nameOf = (k: keyof ProxyResources, x: Json): string =>
  String(k === 'endpoints' ? x.cluster_name : x.name);

/**
 * How a set hangs together, without decoding each resource: names unique per type, every cluster
 * a route or listener names exists (Envoy accepts a route to a missing cluster over RDS and then
 * answers 503 on every call), every RDS name has a route configuration, every EDS cluster an
 * assignment. Each problem is `<type>/<name>: <what>`.
 */
export function checkReferences(r: ProxyResources): string[] {
  const problems: string[] = [];
  for (const k of Object.keys(TYPES) as (keyof ProxyResources)[]) {
    const seen = new Set<string>();
    for (const res of r[k]) {
      const name = nameOf(k, res);
      if (seen.has(name)) problems.push(`${k}/${name}: duplicate name`);
      seen.add(name);
    }
  }
  const clusters = new Set(r.clusters.map((c) => String(c.name)));
  const routes = new Set(r.routes.map((c) => String(c.name)));
  const assignments = new Set(r.endpoints.map((c) => String(c.cluster_name)));
  for (const c of r.clusters) {
    if (c.type === 'EDS' && !assignments.has(String(c.name)))
      problems.push(`clusters/${c.name}: EDS cluster without an assignment`);
  }
  const checkRefs = (kind: string, owner: string, node: unknown): void =>
    walk(node, (o) => {
      if (typeof o.cluster === 'string' && !clusters.has(o.cluster))
        problems.push(`${kind}/${owner}: unknown cluster "${o.cluster}"`);
      const wc = o.weighted_clusters as { clusters?: Json[] } | undefined;
      for (const w of wc?.clusters ?? []) {
        if (!clusters.has(String(w.name))) problems.push(`${kind}/${owner}: unknown cluster "${w.name}"`);
      }
      const rds = o.rds as { route_config_name?: string } | undefined;
      if (rds?.route_config_name && !routes.has(rds.route_config_name)) {
        problems.push(`${kind}/${owner}: unknown route configuration "${rds.route_config_name}"`);
      }
    });
  for (const l of r.listeners) checkRefs('listeners', String(l.name), l);
  for (const rc of r.routes) checkRefs('routes', String(rc.name), rc);
  return problems;
}

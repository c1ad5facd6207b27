/**
 * One proxy's xDS resources as a static Envoy bootstrap, the form `envoy --mode validate` can load.
 * Validate mode fetches nothing: a listener whose routes come over RDS, a cluster whose endpoints
 * come over EDS or a TLS context whose certificates come over SDS would be accepted without the
 * referenced resource ever being looked at. So the references Weft serves over ADS are resolved
 * here, from the same resource set, into the inline forms Envoy offers for each:
 *
 * - HttpConnectionManager `rds` (ADS) becomes `route_config`, the RouteConfiguration of that name.
 *   Over RDS, `validate_clusters` defaults to false; inline it defaults to true. When the route
 *   configuration leaves it unset it is set to false, so Envoy judges the routes as the proxy would
 *   (a route to a missing cluster loads and answers 404; Weft's consistency checks catch that).
 *   A name missing from the set is an error: the proxy would keep the listener warming.
 * - An EDS cluster (ADS) becomes the same cluster of type STATIC with its ClusterLoadAssignment as
 *   `load_assignment`, the one inline form of a cluster's endpoints. A missing assignment is a note
 *   and the cluster is checked with no endpoints (the proxy would warm it until its initial fetch
 *   timed out, then run it empty).
 * - An SdsSecretConfig (ADS) loses its `sds_config`, which makes Envoy look the name up in
 *   `static_resources.secrets`. Secrets the set holds are used as they are; every other referenced
 *   name gets throwaway material of the kind its place asks for (a certificate and key, a trust
 *   bundle, session ticket keys or a generic secret).
 *
 * Everything else is left exactly as the proxy would get it, since the point is that Envoy judges
 * Weft's config, not a cleaned-up copy. ADS config sources elsewhere (ECDS, VHDS, scoped RDS) are
 * left too, each with a note: validate mode accepts them without a management server but does not
 * fetch what they name.
 *
 * Pure: no I/O; the same set and material give the same bootstrap. Inputs are never mutated.
 */
import { type Field, Type } from 'protobufjs';
import type { JsonObject } from './codec';
import { envoyRoot } from './protos';

/** The xDS resources of one proxy, in canonical proto3 JSON (the shape `weft render` prints). */
export interface ResourceSet {
  readonly listeners?: readonly JsonObject[];
  readonly routes?: readonly JsonObject[];
  readonly clusters?: readonly JsonObject[];
  readonly endpoints?: readonly JsonObject[];
  readonly secrets?: readonly JsonObject[];
}

/** Key material for the secrets a set refers to but does not hold. */
export interface ThrowawayTls {
  /** A workload certificate (PEM), the chain of every certificate secret. */
  readonly certificateChainPem: string;
  /** Its private key (PEM). */
  readonly privateKeyPem: string;
  /** The root that issued it (PEM), every trust bundle. */
  readonly trustedCaPem: string;
  /** 80 random bytes, base64: a TLS session ticket key. */
  readonly ticketKeyBase64: string;
}

/** What {@link staticBootstrap} gives. */
export interface StaticBootstrap {
  /** An `envoy.config.bootstrap.v3.Bootstrap` with `static_resources` only. */
  readonly bootstrap: JsonObject;
  /**
   * References that cannot be made static, phrased as Envoy phrases its errors. Any error means
   * the proxy would not get working config, whatever Envoy says about the rest.
   */
  readonly errors: readonly string[];
  /** What the static form assumed or left dynamic; none of it is an error. */
  readonly notes: readonly string[];
}

const BOOTSTRAP = 'envoy.config.bootstrap.v3.Bootstrap';
const LISTENER = 'envoy.config.listener.v3.Listener';
const ROUTE_CONFIG = 'envoy.config.route.v3.RouteConfiguration';
const CLUSTER = 'envoy.config.cluster.v3.Cluster';
const ASSIGNMENT = 'envoy.config.endpoint.v3.ClusterLoadAssignment';
const SECRET = 'envoy.extensions.transport_sockets.tls.v3.Secret';
const HCM = 'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const SDS_SECRET_CONFIG = 'envoy.extensions.transport_sockets.tls.v3.SdsSecretConfig';
const CONFIG_SOURCE = 'envoy.config.core.v3.ConfigSource';
const ANY = 'google.protobuf.Any';

/** Messages whose JSON is not their fields (Struct is free-form JSON), so nothing to walk into. */
const OPAQUE = new Set(['google.protobuf.Struct', 'google.protobuf.Value', 'google.protobuf.ListValue']);

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isAds(source: unknown): boolean {
  return isObject(source) && source.ads !== undefined;
}

/** Names without the leading dot; protobufjs builds `fullName` anew, from the parents, on each read. */
const names = new WeakMap<Type, string>();

function nameOf(t: Type): string {
  let name = names.get(t);
  if (name === undefined) {
    name = t.fullName.replace(/^\./, '');
    names.set(t, name);
  }
  return name;
}

/** Types by name; a miss (an `Any` of a type Weft does not load) is remembered as undefined. */
const typeCache = new Map<string, Type | undefined>();

function typeNamed(name: string): Type | undefined {
  if (typeCache.has(name)) return typeCache.get(name);
  let t: Type | undefined;
  try {
    t = envoyRoot().lookupType(name);
  } catch {
    t = undefined;
  }
  typeCache.set(name, t);
  return t;
}

const fieldCache = new WeakMap<Type, Map<string, Field>>();

/** Fields by proto name and by lowerCamel JSON name (Envoy accepts both). */
function fieldsOf(t: Type): Map<string, Field> {
  let m = fieldCache.get(t);
  if (!m) {
    m = new Map();
    for (const f of t.fieldsArray) {
      f.resolve();
      m.set(f.name, f);
      m.set(
        f.name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase()),
        f,
      );
    }
    fieldCache.set(t, m);
  }
  return m;
}

/** Where a message sits: its path in the resource and the proto field that holds it. */
interface Place {
  readonly path: string;
  readonly field: string;
}

/** Called after a message's own fields were rewritten; returns the message to keep. */
type Visitor = (typeName: string, json: JsonObject, at: Place) => JsonObject;

/**
 * Rewrites a message bottom-up, following the proto types (into `Any` payloads by `@type`), and
 * returns the input itself when nothing changed.
 */
function rewrite(t: Type, json: unknown, at: Place, visit: Visitor): unknown {
  if (!isObject(json)) return json;
  let type = t;
  if (nameOf(t) === ANY) {
    const url = json['@type'];
    const inner = typeof url === 'string' ? typeNamed(url.slice(url.lastIndexOf('/') + 1)) : undefined;
    if (!inner) return json;
    type = inner;
  }
  const typeName = nameOf(type);
  if (OPAQUE.has(typeName)) return json;
  const fields = fieldsOf(type);
  let out: JsonObject = json;
  const set = (key: string, value: unknown): void => {
    if (value === out[key]) return;
    if (out === json) out = { ...json };
    out[key] = value;
  };
  for (const [key, value] of Object.entries(json)) {
    const f = fields.get(key);
    if (!f || !(f.resolvedType instanceof Type)) continue;
    const child = f.resolvedType;
    const path = at.path ? `${at.path}.${key}` : key;
    if (f.map) {
      if (!isObject(value)) continue;
      let map: JsonObject = value;
      for (const [k, v] of Object.entries(value)) {
        const nv = rewrite(child, v, { path: `${path}["${k}"]`, field: f.name }, visit);
        if (nv !== v) {
          if (map === value) map = { ...value };
          map[k] = nv;
        }
      }
      set(key, map);
    } else if (f.repeated) {
      if (!Array.isArray(value)) continue;
      const list = value.map((v: unknown, i) =>
        rewrite(child, v, { path: `${path}[${i}]`, field: f.name }, visit),
      );
      if (list.some((v, i) => v !== value[i])) set(key, list);
    } else {
      set(key, rewrite(child, value, { path, field: f.name }, visit));
    }
  }
  return visit(typeName, out, at);
}

/** Replaces `from` by `to` with `value`, keeping the other keys in place. */
function renameKey(json: JsonObject, from: string, to: string, value: unknown): JsonObject {
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(json)) {
    if (k === from) out[to] = value;
    else out[k] = v;
  }
  return out;
}

/** The Secret kind an SdsSecretConfig asks for, by the field that holds the reference. */
function secretKind(
  field: string,
): 'tls_certificate' | 'validation_context' | 'session_ticket_keys' | 'generic_secret' {
  if (field === 'tls_certificate_sds_secret_configs') return 'tls_certificate';
  if (field === 'validation_context_sds_secret_config') return 'validation_context';
  if (field === 'session_ticket_keys_sds_secret_config') return 'session_ticket_keys';
  return 'generic_secret';
}

function throwawaySecret(name: string, kind: ReturnType<typeof secretKind>, tls: ThrowawayTls): JsonObject {
  switch (kind) {
    case 'tls_certificate':
      return {
        name,
        tls_certificate: {
          certificate_chain: { inline_string: tls.certificateChainPem },
          private_key: { inline_string: tls.privateKeyPem },
        },
      };
    case 'validation_context':
      return { name, validation_context: { trusted_ca: { inline_string: tls.trustedCaPem } } };
    case 'session_ticket_keys':
      return { name, session_ticket_keys: { keys: [{ inline_bytes: tls.ticketKeyBase64 }] } };
    case 'generic_secret':
      return { name, generic_secret: { secret: { inline_string: 'weft-check' } } };
  }
}

/** Every ADS config source still in `json` (read only), as paths. */
function adsSourcesLeft(json: JsonObject): string[] {
  const found: string[] = [];
  const t = typeNamed(BOOTSTRAP)!;
  rewrite(t, json, { path: '', field: '' }, (typeName, obj, at) => {
    if (typeName === CONFIG_SOURCE && isAds(obj)) found.push(at.path);
    return obj;
  });
  return found;
}

/**
 * Turns one proxy's resource set into a static bootstrap Envoy's validate mode can load (see the
 * module comment for each rewrite). `tls` supplies the secrets the set refers to but does not hold.
 */
export function staticBootstrap(set: ResourceSet, tls: ThrowawayTls): StaticBootstrap {
  const errors: string[] = [];
  const notes: string[] = [];
  const secretRefs = new Map<string, ReturnType<typeof secretKind>>();
  const rootPlace: Place = { path: '', field: '' };

  // Secret references, the same everywhere: made static, their names remembered.
  const sds: Visitor = (typeName, json, at) => {
    if (typeName !== SDS_SECRET_CONFIG || !isAds(json.sds_config) || typeof json.name !== 'string')
      return json;
    if (!secretRefs.has(json.name)) secretRefs.set(json.name, secretKind(at.field));
    const { sds_config: _, ...rest } = json;
    return rest;
  };

  const routes = new Map<string, JsonObject>();
  for (const r of set.routes ?? []) {
    routes.set(String(r.name), rewrite(typeNamed(ROUTE_CONFIG)!, r, rootPlace, sds) as JsonObject);
  }

  const listeners = (set.listeners ?? []).map((l) => {
    const listener = String(l.name);
    return rewrite(typeNamed(LISTENER)!, l, rootPlace, (typeName, json, at) => {
      if (typeName !== HCM) return sds(typeName, json, at);
      const rds = json.rds;
      if (!isObject(rds) || !isAds(rds.config_source)) return json;
      const name = String(rds.route_config_name ?? '');
      const rc = routes.get(name);
      if (!rc) {
        errors.push(
          `error adding listener '${listener}': route configuration '${name}' (${at.path}.rds) is not in the resource set; the proxy would wait for it over RDS and never warm the listener`,
        );
        return json;
      }
      return renameKey(
        json,
        'rds',
        'route_config',
        rc.validate_clusters === undefined ? { ...rc, validate_clusters: false } : rc,
      );
    }) as JsonObject;
  });

  const assignments = new Map<string, JsonObject>();
  for (const a of set.endpoints ?? []) {
    assignments.set(String(a.cluster_name), rewrite(typeNamed(ASSIGNMENT)!, a, rootPlace, sds) as JsonObject);
  }

  const clusters = (set.clusters ?? []).map((c) => {
    const cluster = rewrite(typeNamed(CLUSTER)!, c, rootPlace, sds) as JsonObject;
    const eds = cluster.eds_cluster_config;
    if (cluster.type !== 'EDS' || !isObject(eds) || !isAds(eds.eds_config)) return cluster;
    // EDS looks the assignment up by service_name when it is set, else by the cluster's name.
    const service = String(eds.service_name || cluster.name);
    let assignment = assignments.get(service);
    if (!assignment) {
      notes.push(
        `cluster '${String(cluster.name)}': no ClusterLoadAssignment '${service}' in the resource set; checked with no endpoints (the proxy would keep the cluster warming until its initial fetch timed out)`,
      );
      assignment = { cluster_name: service, endpoints: [] };
    }
    const out: JsonObject = {};
    for (const [k, v] of Object.entries(cluster)) {
      if (k === 'type') out.type = 'STATIC';
      else if (k === 'eds_cluster_config') out.load_assignment = assignment;
      else out[k] = v;
    }
    return out;
  });

  const secrets = (set.secrets ?? []).map(
    (s) => rewrite(typeNamed(SECRET)!, s, rootPlace, sds) as JsonObject,
  );
  const held = new Set(secrets.map((s) => String(s.name)));
  for (const [name, kind] of [...secretRefs].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (!held.has(name)) secrets.push(throwawaySecret(name, kind, tls));
  }

  const bootstrap: JsonObject = { static_resources: { listeners, clusters, secrets } };
  for (const path of adsSourcesLeft(bootstrap)) {
    notes.push(`${path}: an ADS config source is left as it is; validate mode does not fetch what it names`);
  }
  return { bootstrap, errors, notes };
}

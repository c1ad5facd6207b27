/**
 * Rules Envoy enforces when it builds config, beyond the protoc-gen-validate rules of each field:
 * a resource can decode cleanly, pass every field rule, and still be NACKed by every proxy. Each
 * rule here mirrors one check in Envoy's C++ (named in its comment) and words its problem the way
 * Envoy's error does, so a refusal reads the same with or without an Envoy binary at hand.
 *
 * Used by the patch engine over a patched set (only problems a patch brings count, as with the
 * consistency checks); Envoy itself judges patched sets when a binary is available
 * (`src/patch/envoy-judge.ts`), and these rules close the same gaps when it is not.
 *
 * Pure: no I/O; inputs are not mutated. Each problem is `<kind>/<name>: <what>` with `<kind>` one
 * of listeners, routes, clusters, endpoints (the shape of `checkReferences`).
 */
import { RE2_MAX_PROGRAM_SIZE, re2ProgramSize } from '../envoy/re2-size';
import { re2Problem } from '../smi/regex';

type Json = unknown;
type JsonObject = { [k: string]: Json };

/** The resource lists the rules read (a proxy's set, canonical proto3 JSON). */
export interface RuleResources {
  readonly listeners: readonly JsonObject[];
  readonly routes: readonly JsonObject[];
  readonly clusters: readonly JsonObject[];
  readonly endpoints: readonly JsonObject[];
}

const HCM =
  'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';

/**
 * Filters that end a chain, by `@type`, with the factory name Envoy prints. Envoy asks each
 * factory (`isTerminalFilterByProto`); these are the terminal ones among the types Weft loads.
 */
const TERMINAL: Record<string, string> = {
  'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router': 'envoy.filters.http.router',
  [HCM]: 'envoy.filters.network.http_connection_manager',
  'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy':
    'envoy.filters.network.tcp_proxy',
};

/** Factory names of non-terminal filters Weft loads, for Envoy's wording. */
const FACTORY: Record<string, string> = {
  'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault': 'envoy.filters.http.fault',
  'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC': 'envoy.filters.http.rbac',
  'type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC': 'envoy.filters.network.rbac',
};

/** Cluster types whose cluster brings its own load balancer (Envoy's ORIGINAL_DST; extensions aside). */
const PROVIDES_LB = new Set(['ORIGINAL_DST']);

function isObject(v: Json): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const list = (v: Json): JsonObject[] => (Array.isArray(v) ? v.filter(isObject) : []);

function walk(node: Json, path: string, visit: (o: JsonObject, path: string) => void): void {
  if (Array.isArray(node)) {
    for (const [i, x] of node.entries()) walk(x, `${path}[${i}]`, visit);
  } else if (isObject(node)) {
    visit(node, path);
    for (const [k, v] of Object.entries(node)) walk(v, path ? `${path}.${k}` : k, visit);
  }
}

/** JSON with object keys sorted and lists of scalars sorted: equal matches, equal strings. */
function canonical(v: Json): string {
  if (Array.isArray(v)) {
    const items = v.map(canonical);
    return `[${items.sort().join(',')}]`;
  }
  if (isObject(v)) {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

/**
 * A FilterChainMatch without the fields that equal their defaults (an empty list or string, a
 * `source_type` of ANY, a zero port), so that a patch spelling a default out matches one that
 * leaves it unset, as Envoy's matcher sees them.
 */
function matchKey(m: Json): string {
  if (!isObject(m)) return '{}';
  const kept: JsonObject = {};
  for (const [k, v] of Object.entries(m)) {
    if (v === '' || v === 0 || v === null || (Array.isArray(v) && v.length === 0)) continue;
    if (k === 'source_type' && v === 'ANY') continue;
    kept[k] = v;
  }
  return canonical(kept);
}

/** Every HttpConnectionManager of a listener, with where it is. */
function connectionManagers(l: JsonObject): { hcm: JsonObject; path: string }[] {
  const out: { hcm: JsonObject; path: string }[] = [];
  const api = l.api_listener;
  if (isObject(api) && isObject(api.api_listener) && api.api_listener['@type'] === HCM) {
    out.push({ hcm: api.api_listener, path: 'api_listener.api_listener' });
  }
  for (const { chain, path } of chains(l)) {
    list(chain.filters).forEach((f, i) => {
      if (isObject(f.typed_config) && f.typed_config['@type'] === HCM)
        out.push({ hcm: f.typed_config, path: `${path}.filters[${i}].typed_config` });
    });
  }
  return out;
}

function chains(l: JsonObject): { chain: JsonObject; path: string }[] {
  const out = list(l.filter_chains).map((chain, i) => ({ chain, path: `filter_chains[${i}]` }));
  if (isObject(l.default_filter_chain))
    out.push({ chain: l.default_filter_chain, path: 'default_filter_chain' });
  return out;
}

/**
 * Envoy's `Config::Utility::validateTerminalFilters` (source/common/config/utility.cc), called for
 * every filter of an HTTP and a network filter chain: a terminal filter anywhere but last, or a
 * non-terminal filter last, refuses the listener.
 */
function terminalFilters(
  filters: readonly JsonObject[],
  chainType: 'http' | 'network',
  where: string,
): { where: string; what: string }[] {
  const problems: { where: string; what: string }[] = [];
  filters.forEach((f, i) => {
    const type = isObject(f.typed_config) ? String(f.typed_config['@type'] ?? '') : '';
    const terminal = TERMINAL[type];
    const last = i === filters.length - 1;
    if (terminal && !last) {
      problems.push({
        where: `${where}[${i}]`,
        what: `terminal filter named ${String(f.name)} of type ${terminal} must be the last filter in a ${chainType} filter chain.`,
      });
    } else if (!terminal && last && type !== '') {
      problems.push({
        where: `${where}[${i}]`,
        what: `non-terminal filter named ${String(f.name)} of type ${FACTORY[type] ?? type.split('/').pop()} is the last filter in a ${chainType} filter chain.`,
      });
    }
  });
  // Envoy stops at the first: a router moved off the end is one mistake, not two.
  return problems.slice(0, 1);
}

/**
 * One problem per distinct text with the places it was found: a patch that breaks every filter
 * chain of a listener the same way reads once, `... (and in N more places)`.
 */
function collapse(found: readonly { where: string; what: string }[]): string[] {
  const byWhat = new Map<string, string[]>();
  for (const f of found) byWhat.set(f.what, [...(byWhat.get(f.what) ?? []), f.where]);
  return [...byWhat].map(
    ([what, where]) =>
      `${where[0]}: ${what}${where.length > 1 ? ` (and in ${where.length - 1} more places)` : ''}`,
  );
}

/** `address:port` as Envoy prints a socket address, or undefined when the listener binds nothing. */
function boundAddress(a: Json): string | undefined {
  if (!isObject(a) || !isObject(a.socket_address)) return undefined;
  const s = a.socket_address;
  const port = Number(s.port_value ?? 0);
  // Port 0 asks the kernel for a free port: never a duplicate.
  if (port === 0 || typeof s.address !== 'string') return undefined;
  const host = s.address.includes(':') ? `[${s.address}]` : s.address;
  return `${s.protocol === 'UDP' ? 'udp://' : ''}${host}:${port}`;
}

function listenerRules(listeners: readonly JsonObject[]): string[] {
  const problems: string[] = [];
  // Envoy's `ListenerManagerImpl::addOrUpdateListener` (source/common/listener_manager/
  // listener_manager_impl.cc, `hasListenerWithDuplicatedAddress`): two listeners with the same
  // address cannot both be added, even with bind_to_port: false (Envoy 1.40 refuses that too);
  // port 0 (any free port) never collides, and an api_listener has no address.
  const bound = new Map<string, string>();
  for (const l of listeners) {
    const name = String(l.name);
    if (!l.api_listener) {
      const addresses = [l.address, ...list(l.additional_addresses).map((a) => a.address)];
      for (const a of addresses) {
        const at = boundAddress(a);
        if (!at) continue;
        const other = bound.get(at);
        if (other !== undefined && other !== name) {
          problems.push(
            `listeners/${name}: error adding listener: '${name}' has duplicate address '${at}' as existing listener`,
          );
        } else bound.set(at, name);
      }
    }
    // Envoy's `FilterChainManagerImpl::addFilterChains` (source/common/listener_manager/
    // filter_chain_manager_impl.cc): two filter chains with equal matching rules are refused.
    const seen = new Map<string, string>();
    list(l.filter_chains).forEach((fc, i) => {
      const key = matchKey(fc.filter_chain_match);
      const label = typeof fc.name === 'string' && fc.name !== '' ? fc.name : `filter_chains[${i}]`;
      const first = seen.get(key);
      if (first !== undefined) {
        problems.push(
          `listeners/${name}: filter_chains[${i}]: error adding listener '${name}': filter chain '${label}' has the same matching rules defined as '${first}'`,
        );
      } else seen.set(key, label);
    });
    const terminal: { where: string; what: string }[] = [];
    for (const { chain, path } of chains(l))
      terminal.push(...terminalFilters(list(chain.filters), 'network', `${path}.filters`));
    for (const { hcm, path } of connectionManagers(l)) {
      terminal.push(...terminalFilters(list(hcm.http_filters), 'http', `${path}.http_filters`));
      if (isObject(hcm.route_config)) {
        for (const p of routeConfigRules(hcm.route_config))
          problems.push(`listeners/${name}: ${path}.route_config.${p}`);
      }
    }
    for (const p of collapse(terminal)) problems.push(`listeners/${name}: ${p}`);
  }
  return problems;
}

/** Problems of one RouteConfiguration, each `<field path>: <what>`. */
function routeConfigRules(rc: JsonObject): string[] {
  const problems: string[] = [];
  const name = String(rc.name ?? '');
  // Envoy's `RouteMatcher` constructor (source/common/router/config_impl.cc): a domain may appear
  // once across all virtual hosts of a route configuration (exact strings, as Envoy keys them).
  const domains = new Set<string>();
  list(rc.virtual_hosts).forEach((vh, v) => {
    (Array.isArray(vh.domains) ? vh.domains : []).forEach((d, j) => {
      const domain = String(d);
      if (domains.has(domain)) {
        problems.push(
          `virtual_hosts[${v}].domains[${j}]: Only unique values for domains are permitted. Duplicate entry of domain ${domain} in route ${name}`,
        );
      }
      domains.add(domain);
    });
    list(vh.routes).forEach((r, k) => {
      const action = r.route;
      if (!isObject(action)) return;
      const where = `virtual_hosts[${v}].routes[${k}].route`;
      // `RouteEntryImplBase` (config_impl.cc) builds the weighted cluster entries and refuses a
      // total of zero: no request could be routed.
      if (isObject(action.weighted_clusters)) {
        const total = list(action.weighted_clusters.clusters).reduce((s, c) => s + Number(c.weight ?? 0), 0);
        if (total <= 0)
          problems.push(
            `${where}.weighted_clusters: Sum of weights in the weighted_cluster must be greater than 0.`,
          );
      }
      // `RouteEntryImplBase` again: the path can be rewritten one way only.
      const rewrites = [
        typeof action.prefix_rewrite === 'string' && action.prefix_rewrite !== '',
        isObject(action.regex_rewrite),
        isObject(action.path_rewrite_policy),
      ].filter(Boolean).length;
      if (rewrites > 1)
        problems.push(`${where}: Specify only one of prefix_rewrite, regex_rewrite or path_rewrite_policy`);
    });
  });
  return problems;
}

/**
 * Every `RegexMatcher` in a resource (`{regex: ...}` with no other field but the deprecated
 * `google_re2`), checked as `CompiledGoogleReMatcher` (source/common/common/regex.cc) does: the
 * pattern must compile, and its program size may not exceed the error-level limit.
 */
function regexRules(resource: JsonObject): string[] {
  const problems: string[] = [];
  walk(resource, '', (o, path) => {
    if (typeof o.regex !== 'string' || !Object.keys(o).every((k) => k === 'regex' || k === 'google_re2'))
      return;
    const syntax = re2Problem(o.regex);
    if (syntax) {
      problems.push(`${path}.regex: '${o.regex}' is not a valid RE2 regular expression: ${syntax}`);
      return;
    }
    const size = re2ProgramSize(o.regex);
    if (size !== undefined && size > RE2_MAX_PROGRAM_SIZE) {
      problems.push(
        `${path}.regex: regex '${o.regex}' RE2 program size of about ${size} > max program size of ${RE2_MAX_PROGRAM_SIZE} set for the error level threshold. (estimated by Weft; shorten the pattern or use a prefix or exact match)`,
      );
    }
  });
  return problems;
}

/**
 * A cluster's load balancer: `CLUSTER_PROVIDED` needs a cluster type that provides one
 * (`ClusterFactoryImplBase::create`, source/common/upstream/cluster_factory_impl.cc: "cluster
 * provided LB specified but cluster ... did not provide one"), and ORIGINAL_DST accepts no other
 * (`OriginalDstClusterFactory`, source/extensions/clusters/original_dst/original_dst_cluster.cc).
 * A `cluster_type` extension is its own judge and is left alone.
 */
function clusterRules(c: JsonObject): string[] {
  if (c.cluster_type !== undefined || c.load_balancing_policy !== undefined) return [];
  const type = typeof c.type === 'string' ? c.type : 'STATIC';
  const lb = typeof c.lb_policy === 'string' ? c.lb_policy : 'ROUND_ROBIN';
  const name = String(c.name);
  if (lb === 'CLUSTER_PROVIDED' && !PROVIDES_LB.has(type))
    return [
      `lb_policy: cluster provided LB specified but cluster '${name}' did not provide one. Check cluster documentation.`,
    ];
  if (type === 'ORIGINAL_DST' && lb !== 'CLUSTER_PROVIDED')
    return [
      `lb_policy: cluster: LB policy ${lb} is not valid for Cluster type ORIGINAL_DST. Only 'CLUSTER_PROVIDED' is allowed with cluster type 'ORIGINAL_DST'`,
    ];
  return [];
}

/** Every problem Envoy would refuse `r` for that these rules know, as `<kind>/<name>: <what>`. */
export function checkEnvoyRules(r: RuleResources): string[] {
  const problems = listenerRules(r.listeners);
  for (const l of r.listeners)
    for (const p of regexRules(l)) problems.push(`listeners/${String(l.name)}: ${p}`);
  for (const rc of r.routes) {
    for (const p of [...routeConfigRules(rc), ...regexRules(rc)])
      problems.push(`routes/${String(rc.name)}: ${p}`);
  }
  for (const c of r.clusters) {
    for (const p of [...clusterRules(c), ...regexRules(c)]) problems.push(`clusters/${String(c.name)}: ${p}`);
  }
  return problems;
}

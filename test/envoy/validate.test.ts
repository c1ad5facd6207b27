/**
 * protoc-gen-validate rules on real Envoy messages: violations are found with exact paths (inside
 * `Any` payloads too), every violation is returned, absent fields are judged as PGV judges their
 * default, and everything the translator emits for the golden cases passes. The generated types
 * are exercised at compile time on resource JSON of the shape the translator emits.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import * as protobuf from 'protobufjs';
import { parse } from 'yaml';
import { checkJson, typeUrlOf } from '../../src/envoy/codec';
import { envoyRoot } from '../../src/envoy/protos';
import type {
  Cluster,
  ClusterLoadAssignment,
  HttpConnectionManager,
  Listener,
  Packed,
  RouteConfiguration,
  Router,
  TcpProxy,
  UpstreamTlsContext,
} from '../../src/envoy/types';
import { validate } from '../../src/envoy/validate';
import { applyPatches } from '../../src/patch/apply';
import { EnvoyPatchObject } from '../../src/patch/schema';
import { readResourcesFile } from '../../src/static/resources-file';
import { checkConsistency } from '../../src/translate';

const LISTENER = 'envoy.config.listener.v3.Listener';
const ROUTES = 'envoy.config.route.v3.RouteConfiguration';
const CLUSTER = 'envoy.config.cluster.v3.Cluster';
const CLA = 'envoy.config.endpoint.v3.ClusterLoadAssignment';
const SECRET = 'envoy.extensions.transport_sockets.tls.v3.Secret';
const HCM = typeUrlOf('envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager');
const ROUTER = typeUrlOf('envoy.extensions.filters.http.router.v3.Router');
const TCP_PROXY_TYPE = 'envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy';
const TCP_PROXY = typeUrlOf(TCP_PROXY_TYPE);
const UPSTREAM_TLS = typeUrlOf('envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext');

// Typed with the generated types: if the generator's shapes stopped matching the JSON the
// translator emits (snake_case, durations as strings, enums as names, Any with @type), these
// declarations would stop compiling.
const router: Packed<Router> = { '@type': ROUTER };

const hcm: Packed<HttpConnectionManager> = {
  '@type': HCM,
  stat_prefix: 'outbound|bookstore|14001',
  codec_type: 'AUTO',
  rds: { route_config_name: 'outbound|14001', config_source: { ads: {}, resource_api_version: 'V3' } },
  http_filters: [{ name: 'envoy.filters.http.router', typed_config: router }],
  stream_idle_timeout: '300s',
};

const listener: Listener = {
  name: 'outbound',
  address: { socket_address: { address: '0.0.0.0', port_value: 15001 } },
  listener_filters: [
    {
      name: 'envoy.filters.listener.original_dst',
      typed_config: { '@type': typeUrlOf('envoy.extensions.filters.listener.original_dst.v3.OriginalDst') },
    },
  ],
  filter_chains: [
    {
      name: 'outbound|14001',
      filter_chain_match: { destination_port: 14001 },
      filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: hcm }],
    },
  ],
  traffic_direction: 'OUTBOUND',
};

const routes: RouteConfiguration = {
  name: 'outbound|14001',
  virtual_hosts: [
    {
      name: 'bookstore.bookstore.svc.cluster.local:14001',
      domains: ['bookstore', 'bookstore.bookstore', 'bookstore.bookstore.svc.cluster.local:14001'],
      routes: [
        {
          name: 'split',
          match: {
            prefix: '/',
            headers: [{ name: 'x-canary', string_match: { exact: 'yes' } }],
          },
          route: {
            weighted_clusters: {
              clusters: [
                { name: 'bookstore/bookstore-v1|14001', weight: 80 },
                { name: 'bookstore/bookstore-v2|14001', weight: 20 },
              ],
            },
            timeout: '0s',
          },
        },
      ],
    },
  ],
};

const tls: Packed<UpstreamTlsContext> = {
  '@type': UPSTREAM_TLS,
  sni: 'bookstore.bookstore.svc.cluster.local',
  common_tls_context: {
    tls_certificate_sds_secret_configs: [{ name: 'weft-identity', sds_config: { ads: {} } }],
  },
};

const cluster: Cluster = {
  name: 'bookstore/bookstore-v1|14001',
  type: 'EDS',
  eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' } },
  connect_timeout: '5s',
  lb_policy: 'ROUND_ROBIN',
  transport_socket: { name: 'envoy.transport_sockets.tls', typed_config: tls },
  per_connection_buffer_limit_bytes: 32768,
};

const assignment: ClusterLoadAssignment = {
  cluster_name: 'bookstore/bookstore-v1|14001',
  endpoints: [
    {
      lb_endpoints: [
        { endpoint: { address: { socket_address: { address: '10.0.0.7', port_value: 14001 } } } },
      ],
    },
  ],
};

const tcpProxy: Packed<TcpProxy> = {
  '@type': TCP_PROXY,
  stat_prefix: 'tcp',
  weighted_clusters: { clusters: [{ name: 'a', weight: 1 }] },
};

const { '@type': _tcpType, ...tcpProxyBody } = tcpProxy;

// @ts-expect-error durations are strings in canonical JSON, not numbers
const wrongDuration: Cluster = { name: 'x', connect_timeout: 5 };
// @ts-expect-error enums are their value names
const wrongEnum: Cluster = { name: 'x', lb_policy: 'FASTEST' };
// @ts-expect-error a misspelled field is an excess property
const misspelled: Cluster = { name: 'x', conect_timeout: '1s' };

/** A deep copy to break, so the valid fixtures stay valid. */
function copy<T>(v: T): T {
  return structuredClone(v);
}

describe('protoc-gen-validate rules on Envoy messages', () => {
  it('accepts a complete, valid set of resources (that also decodes strictly)', () => {
    for (const [type, json] of [
      [LISTENER, listener],
      [ROUTES, routes],
      [CLUSTER, cluster],
      [CLA, assignment],
      [TCP_PROXY_TYPE, tcpProxyBody],
    ] as const) {
      assert.deepEqual(checkJson(type, json), [], `${type} decodes`);
      assert.deepEqual(validate(type, json), [], `${type} is valid`);
    }
    // The @ts-expect-error fixtures above really are wrong, as the codec confirms.
    assert.notDeepEqual(checkJson(CLUSTER, wrongDuration), []);
    assert.notDeepEqual(checkJson(CLUSTER, wrongEnum), []);
    assert.notDeepEqual(checkJson(CLUSTER, misspelled), []);
  });

  it('rejects a negative connect_timeout (duration gt 0)', () => {
    assert.deepEqual(validate(CLUSTER, { ...cluster, connect_timeout: '-1s' }), [
      { path: 'connect_timeout', message: 'must be > 0s, got -1s' },
    ]);
    assert.deepEqual(validate(CLUSTER, { ...cluster, connect_timeout: '0s' }), [
      { path: 'connect_timeout', message: 'must be > 0s, got 0s' },
    ]);
    // Unset: a Duration is a message, so only `required` would speak, and it is not required.
    const { connect_timeout: _, ...noTimeout } = cluster;
    assert.deepEqual(validate(CLUSTER, noTimeout), []);
  });

  it('looks inside Any: an HttpConnectionManager without stat_prefix and without a route specifier', () => {
    const l = copy(listener);
    const { stat_prefix: _s, rds: _r, ...broken } = hcm;
    l.filter_chains![0]!.filters![0]!.typed_config = broken;
    assert.deepEqual(validate(LISTENER, l), [
      { path: 'filter_chains[0].filters[0].typed_config.stat_prefix', message: 'must not be empty' },
      {
        path: 'filter_chains[0].filters[0].typed_config.route_specifier',
        message: 'one of rds, route_config, scoped_routes must be set',
      },
    ]);
  });

  it('requires at least one domain per virtual host (repeated min_items)', () => {
    const r = copy(routes);
    r.virtual_hosts![0]!.domains = [];
    assert.deepEqual(validate(ROUTES, r), [
      { path: 'virtual_hosts[0].domains', message: 'must have at least 1 item, got 0' },
    ]);
    delete r.virtual_hosts![0]!.domains;
    assert.deepEqual(validate(ROUTES, r), [
      { path: 'virtual_hosts[0].domains', message: 'must have at least 1 item, got 0' },
    ]);
  });

  it('applies repeated item rules to each item (domains are header values)', () => {
    const r = copy(routes);
    r.virtual_hosts![0]!.domains = ['ok', 'bad\r\nhost'];
    r.virtual_hosts![0]!.request_headers_to_remove = ['x-a', ''];
    assert.deepEqual(validate(ROUTES, r), [
      {
        path: 'virtual_hosts[0].domains[1]',
        message: 'must be free of NUL, CR and LF characters, got "bad\\r\\nhost"',
      },
      { path: 'virtual_hosts[0].request_headers_to_remove[1]', message: 'must not be empty' },
    ]);
  });

  it('weighted clusters: an empty list breaks min_items; an empty HTTP cluster name is caught by consistency', () => {
    const r = copy(routes);
    r.virtual_hosts![0]!.routes![0]!.route!.weighted_clusters!.clusters = [];
    assert.deepEqual(validate(ROUTES, r), [
      {
        path: 'virtual_hosts[0].routes[0].route.weighted_clusters.clusters',
        message: 'must have at least 1 item, got 0',
      },
    ]);
    // In route_components.proto ClusterWeight.name carries no PGV rule (Envoy checks name or
    // cluster_header in C++), so PGV passes it; the consistency check refuses the dangling name.
    const named = copy(routes);
    named.virtual_hosts![0]!.routes![0]!.route!.weighted_clusters!.clusters![0]!.name = '';
    assert.deepEqual(validate(ROUTES, named), []);
    const problems = checkConsistency({
      listeners: [],
      routes: [named as Record<string, unknown>],
      clusters: [cluster as Record<string, unknown>],
      endpoints: [],
      secrets: [],
    });
    assert.ok(problems.includes('routes/outbound|14001: unknown cluster ""'), problems.join('\n'));
    // TcpProxy's ClusterWeight does have the rule (min_len 1), and its weight must be >= 1.
    assert.deepEqual(
      validate(TCP_PROXY_TYPE, {
        ...tcpProxy,
        weighted_clusters: { clusters: [{ name: '' }] },
      }),
      [
        { path: 'weighted_clusters.clusters[0].name', message: 'must not be empty' },
        { path: 'weighted_clusters.clusters[0].weight', message: 'must be >= 1, got 0' },
      ],
    );
  });

  it('checks header names against the well-known regex (strict: false rejects NUL, CR, LF)', () => {
    const r = copy(routes);
    r.virtual_hosts![0]!.routes![0]!.match!.headers![0]!.name = 'x-evil\nheader';
    assert.deepEqual(validate(ROUTES, r), [
      {
        path: 'virtual_hosts[0].routes[0].match.headers[0].name',
        message: 'must be free of NUL, CR and LF characters, got "x-evil\\nheader"',
      },
    ]);
    // A space is not a token character, but `strict: false` lets it through, as Envoy does.
    r.virtual_hosts![0]!.routes![0]!.match!.headers![0]!.name = 'x odd';
    assert.deepEqual(validate(ROUTES, r), []);
    r.virtual_hosts![0]!.routes![0]!.match!.headers![0]!.name = '';
    assert.deepEqual(validate(ROUTES, r), [
      { path: 'virtual_hosts[0].routes[0].match.headers[0].name', message: 'must not be empty' },
    ]);
  });

  it('strict header-name rule and ignore_empty (UpstreamHttpProtocolOptions.override_auto_sni_header)', () => {
    const type = 'envoy.config.core.v3.UpstreamHttpProtocolOptions';
    assert.deepEqual(validate(type, { override_auto_sni_header: '' }), []);
    assert.deepEqual(validate(type, { override_auto_sni_header: ':authority' }), []);
    assert.deepEqual(validate(type, { override_auto_sni_header: 'x sni' }), [
      {
        path: 'override_auto_sni_header',
        message: 'must be a valid HTTP header name (RFC 7230 token characters), got "x sni"',
      },
    ]);
  });

  it('rejects an enum number that is not defined (defined_only)', () => {
    const issues = validate(CLUSTER, { ...cluster, lb_policy: 77 });
    assert.equal(issues.length, 1);
    assert.equal(issues[0]!.path, 'lb_policy');
    assert.match(issues[0]!.message, /^77 is not a defined LbPolicy value; use one of ROUND_ROBIN, /);
    assert.deepEqual(validate(CLUSTER, { ...cluster, lb_policy: 1 }), []);
  });

  it('judges an unset enum by its default (not_in: [0])', () => {
    const type = 'envoy.extensions.transport_sockets.tls.v3.SubjectAltNameMatcher';
    assert.deepEqual(validate(type, { san_type: 'DNS', matcher: { exact: 'a' } }), []);
    assert.deepEqual(validate(type, { matcher: { exact: 'a' } }), [
      { path: 'san_type', message: 'must not be SAN_TYPE_UNSPECIFIED' },
    ]);
  });

  it('requires a ClusterLoadAssignment cluster_name, set or not', () => {
    assert.deepEqual(validate(CLA, { ...assignment, cluster_name: '' }), [
      { path: 'cluster_name', message: 'must not be empty' },
    ]);
    assert.deepEqual(validate(CLA, {}), [{ path: 'cluster_name', message: 'must not be empty' }]);
  });

  it('checks an unset uint32 as 0, as PGV does (DirectResponseAction.status in [200, 600))', () => {
    const r = copy(routes);
    const route = r.virtual_hosts![0]!.routes![0]!;
    delete route.route;
    route.direct_response = {};
    assert.deepEqual(validate(ROUTES, r), [
      {
        path: 'virtual_hosts[0].routes[0].direct_response.status',
        message: 'must be >= 200 and < 600, got 0',
      },
    ]);
    route.direct_response = { status: 503 };
    assert.deepEqual(validate(ROUTES, r), []);
    route.direct_response = { status: 600 };
    assert.equal(validate(ROUTES, r)[0]?.message, 'must be >= 200 and < 600, got 600');
  });

  it('returns every violation, across nesting levels and kinds of rule', () => {
    const bad = {
      name: '',
      type: 'EDS',
      connect_timeout: '-0.5s',
      lb_policy: 42,
      metadata: { filter_metadata: { '': { a: 1 } } },
      load_assignment: {
        cluster_name: 'x',
        endpoints: [
          {
            priority: 200,
            lb_endpoints: [
              { endpoint: { address: { socket_address: { address: '1.2.3.4', port_value: 70000 } } } },
            ],
          },
        ],
      },
    };
    const issues = validate(CLUSTER, bad);
    assert.deepEqual(
      issues.map((i) => i.path),
      [
        'name',
        'connect_timeout',
        'lb_policy',
        'metadata.filter_metadata[""]',
        'load_assignment.endpoints[0].priority',
        'load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value',
      ],
    );
    assert.equal(issues[3]!.message, 'must not be empty');
    assert.equal(issues[4]!.message, 'must be <= 128, got 200');
    assert.equal(issues[5]!.message, 'must be <= 65535, got 70000');
  });

  it('checks message required, any required, bool const, string pattern (RE2) and string in', () => {
    assert.deepEqual(validate('envoy.config.core.v3.HeaderValueOption', {}), [
      { path: 'header', message: 'is required' },
    ]);
    assert.deepEqual(validate('envoy.config.core.v3.TypedExtensionConfig', { name: 'x' }), [
      { path: 'typed_config', message: 'is required' },
    ]);
    assert.deepEqual(validate('envoy.config.rbac.v3.Permission', { any: false }), [
      { path: 'any', message: 'must be true' },
    ]);
    const noRule = validate('envoy.config.rbac.v3.Permission', {});
    assert.equal(noRule.length, 1);
    assert.equal(noRule[0]!.path, 'rule');
    assert.match(noRule[0]!.message, /^one of and_rules, or_rules, any, header, .* must be set$/);
    assert.deepEqual(validate('envoy.config.route.v3.RouteMatch', { path_separated_prefix: '/api' }), []);
    assert.deepEqual(validate('envoy.config.route.v3.RouteMatch', { path_separated_prefix: '/api/' }), [
      { path: 'path_separated_prefix', message: 'must match the pattern "^[^?#]+[^?#/]$"' },
    ]);
    const strict = validate('envoy.extensions.filters.http.router.v3.Router', {
      strict_check_headers: ['x-envoy-max-retries', 'x-nope'],
    });
    assert.equal(strict.length, 1);
    assert.equal(strict[0]!.path, 'strict_check_headers[1]');
    assert.match(
      strict[0]!.message,
      /^must be one of "x-envoy-upstream-rq-timeout-ms", .*"x-envoy-retry-on"$/,
    );
  });

  it('checks repeated unique and double items (HistogramBucketSettings)', () => {
    assert.deepEqual(
      validate('envoy.config.metrics.v3.HistogramBucketSettings', {
        match: { exact: 'a' },
        buckets: [1, 1, -2],
      }),
      [
        { path: 'buckets[1]', message: 'repeats 1; items must be unique' },
        { path: 'buckets[2]', message: 'must be > 0, got -2' },
      ],
    );
  });

  it('accepts camelCase JSON names like the codec, reporting proto names', () => {
    assert.deepEqual(validate(CLA, { clusterName: 'x' }), []);
    assert.deepEqual(validate(CLUSTER, { ...cluster, connect_timeout: undefined, connectTimeout: '-1s' }), [
      { path: 'connect_timeout', message: 'must be > 0s, got -1s' },
    ]);
  });
});

describe('PGV semantics on a purpose-built message', () => {
  // Rules Envoy's API does not exercise (disabled, skip, timestamps, int64, exclusive ranges),
  // checked on a message added to the shared root under a package of its own.
  protobuf.parse(
    `syntax = "proto3";
     package weft.pgvtest;
     import "google/protobuf/timestamp.proto";
     import "google/protobuf/duration.proto";
     message Off { option (validate.disabled) = true; string s = 1 [(validate.rules).string.min_len = 3]; }
     message Inner { string s = 1 [(validate.rules).string.min_len = 3]; }
     message Probe {
       int64 big = 1 [(validate.rules).int64 = {gt: 9007199254740992}];
       double outside = 2 [(validate.rules).double = {lt: 30, gte: 40}];
       string text = 3 [(validate.rules).string = {prefix: "a", suffix: "z", contains: "m", max_bytes: 5, len: 4}];
       google.protobuf.Timestamp when = 4 [(validate.rules).timestamp = {required: true, gt: {seconds: 0}}];
       Inner skipped = 5 [(validate.rules).message.skip = true];
       Inner checked = 6;
       Off off = 7;
       map<string, Inner> inners = 8 [(validate.rules).map = {min_pairs: 1, max_pairs: 2}];
       google.protobuf.Duration d = 9 [(validate.rules).duration = {lte: {seconds: 1}, gte: {nanos: 1000000}}];
       oneof choice { string c1 = 10 [(validate.rules).string.min_len = 2]; int32 c2 = 11; }
       optional uint32 maybe = 12 [(validate.rules).uint32.gt = 5];
       int32 pick = 13 [(validate.rules).int32 = {in: [1, 2]}];
     }`,
    envoyRoot(),
    { keepCase: true },
  );
  envoyRoot().resolveAll();
  const T = 'weft.pgvtest.Probe';
  const ok = {
    // 2^53 + 1: as a double it would equal the bound and fail.
    big: '9007199254740993',
    outside: 41,
    text: 'amzz',
    when: '2024-01-01T00:00:00Z',
    skipped: { s: '' },
    checked: { s: 'abc' },
    off: { s: '' },
    inners: { a: { s: 'abc' } },
    d: '0.5s',
    pick: 1,
  };

  it('passes a valid message', () => {
    assert.deepEqual(validate(T, ok), []);
  });

  it('reports each rule with its path', () => {
    const issues = validate(T, {
      big: '9007199254740992',
      outside: 35,
      text: 'bx',
      checked: { s: 'ab' },
      inners: { k: { s: 'x' } },
      d: '2s',
      c1: 'x',
      maybe: 5,
    });
    assert.deepEqual(issues, [
      { path: 'big', message: 'must be > 9007199254740992, got 9007199254740992' },
      { path: 'outside', message: 'must be < 30 or >= 40, got 35' },
      { path: 'text', message: 'must be exactly 4 characters long, got 2' },
      { path: 'text', message: 'must start with "a"' },
      { path: 'text', message: 'must end with "z"' },
      { path: 'text', message: 'must contain "m"' },
      { path: 'checked.s', message: 'must be at least 3 characters long, got 2' },
      { path: 'inners["k"].s', message: 'must be at least 3 characters long, got 1' },
      { path: 'd', message: 'must be >= 0.001s and <= 1s, got 2s' },
      { path: 'c1', message: 'must be at least 2 characters long, got 1' },
      { path: 'maybe', message: 'must be > 5, got 5' },
      { path: 'when', message: 'is required' },
      { path: 'pick', message: 'must be one of 1, 2, got 0' },
    ]);
  });

  it('skips unset oneof members, proto3 optional fields and messages; judges unset scalars by their default', () => {
    assert.deepEqual(
      validate(T, {}).map((v) => `${v.path}: ${v.message}`),
      [
        'big: must be > 9007199254740992, got 0',
        'text: must be exactly 4 characters long, got 0',
        'text: must start with "a"',
        'text: must end with "z"',
        'text: must contain "m"',
        'when: is required',
        'inners: must have at least 1 entry, got 0',
        'pick: must be one of 1, 2, got 0',
      ],
    );
  });

  it('honours message.skip and (validate.disabled); recurses otherwise', () => {
    assert.deepEqual(validate(T, { ...ok, skipped: { s: 'x' }, off: { s: 'x' } }), []);
    assert.deepEqual(validate(T, { ...ok, checked: { s: 'x' } }), [
      { path: 'checked.s', message: 'must be at least 3 characters long, got 1' },
    ]);
  });

  it('checks timestamps', () => {
    assert.deepEqual(validate(T, { ...ok, when: '1969-12-31T23:59:59Z' }), [
      { path: 'when', message: 'must be > 1970-01-01T00:00:00.000Z, got 1969-12-31T23:59:59.000Z' },
    ]);
  });
});

describe('validation hooks', () => {
  it('consistency checks include PGV rules by default', () => {
    const problems = checkConsistency({
      listeners: [],
      routes: [],
      clusters: [{ ...(cluster as Record<string, unknown>), type: 'STATIC', connect_timeout: '-1s' }],
      endpoints: [],
      secrets: [],
    });
    assert.deepEqual(problems, [
      'clusters/bookstore/bookstore-v1|14001: connect_timeout: must be > 0s, got -1s',
    ]);
  });

  it('a resources file that breaks a PGV rule is rejected whole', () => {
    const r = readResourcesFile(
      JSON.stringify({
        groups: {
          g: { endpoints: [{ cluster_name: 'a' }, { cluster_name: 'b', endpoints: [{ priority: 500 }] }] },
        },
      }),
      'res.yaml',
    );
    assert.deepEqual(r, {
      ok: false,
      errors: ['res.yaml: groups.g.endpoints[1].endpoints[0].priority: must be <= 128, got 500'],
    });
  });

  it('an EnvoyPatch that breaks a PGV rule is refused', () => {
    const p = EnvoyPatchObject.parse({
      apiVersion: 'weft.dev/v1alpha1',
      kind: 'EnvoyPatch',
      metadata: { name: 'timeout', namespace: 'weft-system' },
      spec: {
        patches: [{ target: { type: 'Cluster', name: cluster.name }, merge: { connect_timeout: '-1s' } }],
      },
    });
    const resources = {
      listeners: [],
      routes: [],
      clusters: [cluster as Record<string, unknown>],
      endpoints: [],
      secrets: [],
    };
    const subject = {
      namespace: 'bookstore',
      labels: {},
      serviceAccount: 'bookstore',
      flavor: 'envoy' as const,
    };
    const { results, resources: after } = applyPatches(resources, subject, [p], {
      meshNamespace: 'weft-system',
    });
    assert.equal(results[0]!.applied, false);
    assert.deepEqual(results[0]!.errors, [
      'spec.patches[0]: Cluster/bookstore/bookstore-v1|14001: connect_timeout: must be > 0s, got -1s',
    ]);
    assert.equal(after.clusters[0]!.connect_timeout, '5s');
  });
});

describe('golden outputs pass every PGV rule', () => {
  const DIR = join(__dirname, '..', '..', '..', 'test', 'golden', 'cases');
  const TYPES: Record<string, string> = {
    listeners: LISTENER,
    routes: ROUTES,
    clusters: CLUSTER,
    endpoints: CLA,
    secrets: SECRET,
  };
  type Out = {
    proxies: { name: string; flavor: string; resources: Record<string, Record<string, unknown>[]> }[];
  };
  const cases = readdirSync(DIR)
    .filter((f) => f.endsWith('.out.yaml'))
    .sort();

  it('has golden cases to check', () => {
    assert.ok(cases.length >= 10, `found ${cases.length}`);
  });

  for (const file of cases) {
    it(file, () => {
      const out = parse(readFileSync(join(DIR, file), 'utf8')) as Out;
      const problems: string[] = [];
      let count = 0;
      for (const p of out.proxies) {
        for (const [key, type] of Object.entries(TYPES)) {
          for (const res of p.resources[key] ?? []) {
            count++;
            for (const v of validate(type, res))
              problems.push(
                `${p.flavor} ${p.name} ${key}/${String(res.name ?? res.cluster_name)}: ${v.path}: ${v.message}`,
              );
          }
        }
      }
      assert.deepEqual(problems, [], `${count} resources`);
    });
  }

  it('validates the bookstore case quickly once rules are compiled (figure printed, not judged)', (t) => {
    const out = parse(readFileSync(join(DIR, 'bookstore.out.yaml'), 'utf8')) as Out;
    const all: [string, Record<string, unknown>][] = [];
    for (const p of out.proxies)
      for (const [key, type] of Object.entries(TYPES))
        for (const res of p.resources[key] ?? []) all.push([type, res]);
    let start = process.hrtime.bigint();
    for (const [type, res] of all) validate(type, res);
    const first = Number(process.hrtime.bigint() - start) / 1e6;
    const rounds = 20;
    start = process.hrtime.bigint();
    let issues = 0;
    for (let i = 0; i < rounds; i++) for (const [type, res] of all) issues += validate(type, res).length;
    const warm = Number(process.hrtime.bigint() - start) / 1e6 / rounds;
    t.diagnostic(
      `bookstore: ${all.length} resources, first pass ${first.toFixed(2)} ms, then ${warm.toFixed(3)} ms per pass (${((warm * 1000) / all.length).toFixed(1)} µs per resource)`,
    );
    assert.equal(issues, 0);
  });
});

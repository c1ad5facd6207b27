/**
 * The static form of a proxy's resources (src/envoy/static-bootstrap.ts): RDS becomes an inline
 * route configuration, EDS clusters become STATIC with their assignment, SDS references point at
 * static secrets, everything else stays as it was, inputs are not touched, and the result is a
 * Bootstrap Envoy's own rules accept. No Envoy runs here (see validate-mode.test.ts).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { checkJson, type JsonObject, typeUrlOf } from '../../src/envoy/codec';
import { type ResourceSet, staticBootstrap, type ThrowawayTls } from '../../src/envoy/static-bootstrap';
import { validate } from '../../src/envoy/validate';
import { renderMesh } from '../../src/mesh/render';

const TLS: ThrowawayTls = {
  certificateChainPem: 'CHAIN',
  privateKeyPem: 'KEY',
  trustedCaPem: 'ROOT',
  ticketKeyBase64: 'VElDS0VU',
};
const ADS = { ads: {}, resource_api_version: 'V3' };
const HCM = typeUrlOf('envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager');
const ROUTER = {
  name: 'envoy.filters.http.router',
  typed_config: { '@type': typeUrlOf('envoy.extensions.filters.http.router.v3.Router') },
};
const sds = (name: string): JsonObject => ({ name, sds_config: ADS });

function listener(routeName: string): JsonObject {
  return {
    name: 'outbound',
    address: { socket_address: { address: '0.0.0.0', port_value: 15001 } },
    filter_chains: [
      {
        name: 'chain',
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': HCM,
              stat_prefix: 'chain',
              rds: { route_config_name: routeName, config_source: ADS },
              http_filters: [ROUTER],
            },
          },
        ],
        transport_socket: {
          name: 'envoy.transport_sockets.tls',
          typed_config: {
            '@type': typeUrlOf('envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext'),
            common_tls_context: {
              tls_certificate_sds_secret_configs: [sds('weft-identity')],
              validation_context_sds_secret_config: sds('weft-ca'),
            },
          },
        },
      },
    ],
  };
}

const ROUTES: JsonObject = {
  name: 'r',
  virtual_hosts: [
    { name: 'vh', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'eds' } }] },
  ],
};
const EDS_CLUSTER: JsonObject = {
  name: 'eds',
  type: 'EDS',
  eds_cluster_config: { eds_config: ADS },
  connect_timeout: '5s',
  lb_policy: 'ROUND_ROBIN',
};
const ASSIGNMENT: JsonObject = {
  cluster_name: 'eds',
  endpoints: [
    {
      lb_endpoints: [{ endpoint: { address: { socket_address: { address: '10.0.0.1', port_value: 80 } } } }],
    },
  ],
};
const STATIC_CLUSTER: JsonObject = {
  name: 'local',
  type: 'STATIC',
  connect_timeout: '5s',
  load_assignment: { cluster_name: 'local', endpoints: [] },
};

function set(over: Partial<ResourceSet> = {}): ResourceSet {
  return {
    listeners: [listener('r')],
    routes: [ROUTES],
    clusters: [EDS_CLUSTER, STATIC_CLUSTER],
    endpoints: [ASSIGNMENT],
    secrets: [],
    ...over,
  };
}

interface Static {
  listeners: JsonObject[];
  clusters: JsonObject[];
  secrets: JsonObject[];
}

const staticOf = (b: JsonObject): Static => b.static_resources as Static;

/** The HTTP connection manager of the first chain of the first listener. */
function hcmOf(s: Static): JsonObject {
  const chain = (s.listeners[0]!.filter_chains as JsonObject[])[0]!;
  return (chain.filters as JsonObject[])[0]!.typed_config as JsonObject;
}

describe('staticBootstrap', () => {
  it('inlines the RDS route configuration, as RDS judges cluster references', () => {
    const r = staticBootstrap(set(), TLS);
    assert.deepEqual(r.errors, []);
    const hcm = hcmOf(staticOf(r.bootstrap));
    assert.equal(hcm.rds, undefined);
    assert.deepEqual(hcm.route_config, { ...ROUTES, validate_clusters: false });
    // The rest of the connection manager, in its order, is what the proxy gets.
    assert.deepEqual(Object.keys(hcm), ['@type', 'stat_prefix', 'route_config', 'http_filters']);
    assert.deepEqual(hcm.http_filters, [ROUTER]);
  });

  it('keeps a validate_clusters the route configuration sets', () => {
    const routes = [{ ...ROUTES, validate_clusters: true }];
    const hcm = hcmOf(staticOf(staticBootstrap(set({ routes }), TLS).bootstrap));
    assert.equal((hcm.route_config as JsonObject).validate_clusters, true);
  });

  it('reports a missing route configuration by name, as an error', () => {
    const r = staticBootstrap(set({ listeners: [listener('nowhere')] }), TLS);
    assert.equal(r.errors.length, 1);
    assert.match(r.errors[0]!, /^error adding listener 'outbound': route configuration 'nowhere' /);
    assert.match(r.errors[0]!, /filter_chains\[0\]\.filters\[0\]\.typed_config\.rds/);
  });

  it('makes an EDS cluster STATIC with its assignment and leaves other clusters alone', () => {
    const r = staticBootstrap(set(), TLS);
    const [eds, local] = staticOf(r.bootstrap).clusters;
    assert.deepEqual(eds, {
      name: 'eds',
      type: 'STATIC',
      load_assignment: ASSIGNMENT,
      connect_timeout: '5s',
      lb_policy: 'ROUND_ROBIN',
    });
    assert.deepEqual(local, STATIC_CLUSTER);
    assert.deepEqual(r.notes, []);
  });

  it('finds the assignment by eds service_name when the cluster sets one', () => {
    const cluster = { ...EDS_CLUSTER, eds_cluster_config: { eds_config: ADS, service_name: 'svc' } };
    const assignment = { ...ASSIGNMENT, cluster_name: 'svc' };
    const r = staticBootstrap(set({ clusters: [cluster], endpoints: [assignment] }), TLS);
    assert.deepEqual(staticOf(r.bootstrap).clusters[0]!.load_assignment, assignment);
    assert.deepEqual(r.notes, []);
  });

  it('notes an EDS cluster without an assignment and checks it with no endpoints', () => {
    const r = staticBootstrap(set({ endpoints: [] }), TLS);
    assert.deepEqual(r.errors, []);
    assert.equal(r.notes.length, 1);
    assert.match(r.notes[0]!, /^cluster 'eds': no ClusterLoadAssignment 'eds' in the resource set/);
    assert.deepEqual(staticOf(r.bootstrap).clusters[0]!.load_assignment, {
      cluster_name: 'eds',
      endpoints: [],
    });
  });

  it('points SDS references at static secrets of the same names, of the kind each place needs', () => {
    const s = staticOf(staticBootstrap(set(), TLS).bootstrap);
    const chain = (s.listeners[0]!.filter_chains as JsonObject[])[0]!;
    const ctx = ((chain.transport_socket as JsonObject).typed_config as JsonObject).common_tls_context;
    assert.deepEqual(ctx, {
      tls_certificate_sds_secret_configs: [{ name: 'weft-identity' }],
      validation_context_sds_secret_config: { name: 'weft-ca' },
    });
    assert.deepEqual(s.secrets, [
      { name: 'weft-ca', validation_context: { trusted_ca: { inline_string: 'ROOT' } } },
      {
        name: 'weft-identity',
        tls_certificate: {
          certificate_chain: { inline_string: 'CHAIN' },
          private_key: { inline_string: 'KEY' },
        },
      },
    ]);
  });

  it('uses the secrets the set holds as they are, and makes up only the others', () => {
    const held = { name: 'weft-identity', tls_certificate: { certificate_chain: { inline_string: 'REAL' } } };
    const s = staticOf(staticBootstrap(set({ secrets: [held] }), TLS).bootstrap);
    assert.deepEqual(
      s.secrets.map((x) => x.name),
      ['weft-identity', 'weft-ca'],
    );
    assert.deepEqual(s.secrets[0], held);
  });

  it('leaves other ADS config sources as they are, with a note naming the place', () => {
    const l = listener('r');
    const hcm = ((l.filter_chains as JsonObject[])[0]!.filters as JsonObject[])[0]!
      .typed_config as JsonObject;
    hcm.http_filters = [
      {
        name: 'fault',
        config_discovery: {
          config_source: ADS,
          type_urls: [typeUrlOf('envoy.extensions.filters.http.fault.v3.HTTPFault')],
        },
      },
      ROUTER,
    ];
    const r = staticBootstrap(set({ listeners: [l] }), TLS);
    assert.deepEqual(r.notes, [
      'static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].config_discovery.config_source: an ADS config source is left as it is; validate mode does not fetch what it names',
    ]);
    assert.deepEqual(hcmOf(staticOf(r.bootstrap)).http_filters, hcm.http_filters);
  });

  it('does not change its input', () => {
    const input = set();
    const before = JSON.stringify(input);
    staticBootstrap(input, TLS);
    assert.equal(JSON.stringify(input), before);
  });

  it('turns every proxy of the bookstore golden case into a Bootstrap that passes Envoy rules', () => {
    const dir = join(__dirname, '..', '..', '..', 'test', 'golden', 'cases');
    const text = readFileSync(join(dir, 'bookstore.in.yaml'), 'utf8');
    const out = renderMesh([{ source: 'bookstore.in.yaml', text }], { flavors: ['envoy'] });
    assert.ok(out.proxies.length > 0);
    for (const p of out.proxies) {
      const r = staticBootstrap(p.resources, TLS);
      assert.deepEqual(r.errors, [], p.name);
      assert.deepEqual(r.notes, [], `${p.name}: every reference resolves and no ADS source is left`);
      assert.deepEqual(checkJson('envoy.config.bootstrap.v3.Bootstrap', r.bootstrap), [], p.name);
      assert.deepEqual(validate('envoy.config.bootstrap.v3.Bootstrap', r.bootstrap), [], p.name);
      assert.doesNotMatch(JSON.stringify(r.bootstrap), /"ads"/, p.name);
    }
  });
});

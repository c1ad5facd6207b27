import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkJson, DecodeError, decode, encode, typeUrlOf } from '../../src/envoy/codec';

const HCM = typeUrlOf('envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager');
const ROUTER = typeUrlOf('envoy.extensions.filters.http.router.v3.Router');
const UPSTREAM_TLS = typeUrlOf('envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext');

const listener = {
  name: 'outbound',
  address: { socket_address: { address: '0.0.0.0', port_value: 15001 } },
  filter_chains: [
    {
      filters: [
        {
          name: 'envoy.filters.network.http_connection_manager',
          typed_config: {
            '@type': HCM,
            stat_prefix: 'out',
            rds: { config_source: { ads: {}, resource_api_version: 'V3' }, route_config_name: 'r1' },
            http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER } }],
            stream_idle_timeout: '300.500s',
          },
        },
      ],
    },
  ],
};

const cluster = {
  name: 'bookstore|default|8080',
  type: 'EDS',
  eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' } },
  connect_timeout: '0.250s',
  transport_socket: {
    name: 'envoy.transport_sockets.tls',
    typed_config: {
      '@type': UPSTREAM_TLS,
      sni: 'bookstore.default.svc.cluster.local',
      common_tls_context: {
        tls_certificate_sds_secret_configs: [{ name: 'identity', sds_config: { ads: {} } }],
      },
    },
  },
  per_connection_buffer_limit_bytes: 32768,
  metadata: { filter_metadata: { weft: { service: 'bookstore', port: 8080, tags: ['a', 'b'] } } },
};

const routes = {
  name: 'r1',
  virtual_hosts: [
    {
      name: 'bookstore',
      domains: ['bookstore', 'bookstore.default'],
      routes: [
        {
          match: { prefix: '' },
          route: {
            weighted_clusters: {
              clusters: [
                { name: 'v1', weight: 80 },
                { name: 'v2', weight: 20 },
              ],
            },
            timeout: '0s',
          },
        },
      ],
    },
  ],
};

const cla = {
  cluster_name: 'bookstore|default|8080',
  endpoints: [
    {
      lb_endpoints: [
        {
          endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: 9000 } } },
          health_status: 'HEALTHY',
          load_balancing_weight: 2,
        },
      ],
    },
  ],
};

function roundTrip(type: string, json: object): void {
  const bytes = encode(type, json);
  assert.deepEqual(decode(type, bytes), json);
  assert.deepEqual(encode(type, decode(type, bytes)), bytes, 'encoding is stable');
}

describe('canonical JSON codec', () => {
  it('round-trips a Listener with an HCM in typed_config', () => {
    roundTrip('envoy.config.listener.v3.Listener', listener);
  });
  it('round-trips a Cluster with durations, a TLS transport socket and Struct metadata', () => {
    roundTrip('envoy.config.cluster.v3.Cluster', cluster);
  });
  it('round-trips weighted clusters (UInt32Value as a plain number) and a prefix of ""', () => {
    roundTrip('envoy.config.route.v3.RouteConfiguration', routes);
  });
  it('round-trips a ClusterLoadAssignment', () => {
    roundTrip('envoy.config.endpoint.v3.ClusterLoadAssignment', cla);
  });
  it('normalizes durations to 0, 3, 6 or 9 fractional digits', () => {
    const t = 'envoy.config.cluster.v3.Cluster';
    const out = decode(t, encode(t, { name: 'c', connect_timeout: '1.5s', dns_refresh_rate: '2.000001s' }));
    assert.equal(out.connect_timeout, '1.500s');
    assert.equal(out.dns_refresh_rate, '2.000001s');
  });
  it('encodes maps in key order whatever the input order', () => {
    const t = 'envoy.config.core.v3.Metadata';
    const a = encode(t, { filter_metadata: { x: { b: 1, a: 2 }, w: {} } });
    const b = encode(t, { filter_metadata: { w: {}, x: { a: 2, b: 1 } } });
    assert.deepEqual(a, b);
  });
  it('accepts lowerCamelCase names and writes proto names', () => {
    const bytes = encode('envoy.config.core.v3.SocketAddress', { address: '::1', portValue: 80 });
    assert.deepEqual(decode('envoy.config.core.v3.SocketAddress', bytes), { address: '::1', port_value: 80 });
  });

  it('names the exact path of an unknown field inside an Any', () => {
    const bad = structuredClone(listener) as typeof listener & {
      filter_chains: { filters: { typed_config: Record<string, unknown> }[] }[];
    };
    bad.filter_chains[0]!.filters[0]!.typed_config.stat_prefx = 'x';
    const err = catchDecode(() => encode('envoy.config.listener.v3.Listener', bad));
    assert.deepEqual(
      err.issues.map((i) => i.path),
      ['filter_chains[0].filters[0].typed_config.stat_prefx'],
    );
    assert.match(
      err.message,
      /unknown field "stat_prefx" in envoy\.extensions\.filters\.network\.http_connection_manager/,
    );
  });
  it('rejects a wrong type, an unknown enum and a bad duration, each with its path', () => {
    const issues = checkJson('envoy.config.cluster.v3.Cluster', {
      name: 7,
      type: 'DNSS',
      connect_timeout: '5 seconds',
      load_assignment: { cluster_name: 'x', endpoints: {} },
    });
    assert.deepEqual(
      issues.map((i) => i.path),
      ['name', 'type', 'connect_timeout', 'load_assignment.endpoints'],
    );
    assert.match(
      issues[1]!.message,
      /unknown DiscoveryType value "DNSS"; expected one of STATIC, STRICT_DNS/,
    );
  });
  it('rejects two members of one oneof', () => {
    const issues = checkJson('envoy.config.route.v3.RouteMatch', { prefix: '/', path: '/x' });
    assert.equal(issues.length, 1);
    assert.match(issues[0]!.message, /only one of oneof "path_specifier"/);
  });
  it('rejects an Any of an unknown type', () => {
    const issues = checkJson('envoy.config.listener.v3.Filter', {
      name: 'x',
      typed_config: { '@type': 'type.googleapis.com/acme.NotAType' },
    });
    assert.deepEqual(
      issues.map((i) => i.path),
      ['typed_config.@type'],
    );
  });
  it('rejects out-of-range integers', () => {
    const issues = checkJson('envoy.config.core.v3.SocketAddress', { address: 'a', port_value: -1 });
    assert.deepEqual(
      issues.map((i) => i.path),
      ['port_value'],
    );
  });
});

function catchDecode(fn: () => unknown): DecodeError {
  try {
    fn();
  } catch (e) {
    if (e instanceof DecodeError) return e;
    throw e;
  }
  assert.fail('expected a DecodeError');
}

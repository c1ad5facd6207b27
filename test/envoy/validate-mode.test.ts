/**
 * Real Envoy as the judge (src/envoy/validate-mode.ts): good config is accepted; config Weft's
 * own checks let through is refused with Envoy's own words; the static form is what makes Envoy
 * look at routes, endpoints and secrets at all; identical configs run Envoy once; never more than
 * the allowed number of Envoy processes run at once. Skipped when no Envoy binary is found.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { findEnvoy, NO_ENVOY } from '../../src/envoy/binary';
import { type JsonObject, typeUrlOf } from '../../src/envoy/codec';
import type { ResourceSet } from '../../src/envoy/static-bootstrap';
import { EnvoyChecker, envoyMessage, percentile } from '../../src/envoy/validate-mode';
import { checkConsistency } from '../../src/translate';

const envoy = findEnvoy();
const skip = envoy ? false : NO_ENVOY;

const ADS = { ads: {}, resource_api_version: 'V3' };
const ROUTER = {
  name: 'envoy.filters.http.router',
  typed_config: { '@type': typeUrlOf('envoy.extensions.filters.http.router.v3.Router') },
};

/** A listener on `port` with one HTTP chain whose routes come over RDS as `routeName`. */
function rdsListener(name: string, port: number, routeName: string, tls = false): JsonObject {
  return {
    name,
    address: { socket_address: { address: '0.0.0.0', port_value: port } },
    filter_chains: [
      {
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': typeUrlOf(
                'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
              ),
              stat_prefix: name,
              rds: { route_config_name: routeName, config_source: ADS },
              http_filters: [ROUTER],
            },
          },
        ],
        ...(tls
          ? {
              transport_socket: {
                name: 'envoy.transport_sockets.tls',
                typed_config: {
                  '@type': typeUrlOf('envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext'),
                  require_client_certificate: true,
                  common_tls_context: {
                    tls_certificate_sds_secret_configs: [{ name: 'weft-identity', sds_config: ADS }],
                    validation_context_sds_secret_config: { name: 'weft-ca', sds_config: ADS },
                  },
                },
              },
            }
          : {}),
      },
    ],
  };
}

function routes(name: string, hosts: readonly { name: string; domains: string[] }[]): JsonObject {
  return {
    name,
    virtual_hosts: hosts.map((h) => ({
      ...h,
      routes: [{ match: { prefix: '/' }, route: { cluster: 'svc' } }],
    })),
  };
}

const edsCluster: JsonObject = {
  name: 'svc',
  type: 'EDS',
  eds_cluster_config: { eds_config: ADS },
  connect_timeout: '5s',
  lb_policy: 'ROUND_ROBIN',
};

function assignment(address: string): JsonObject {
  return {
    cluster_name: 'svc',
    endpoints: [
      { lb_endpoints: [{ endpoint: { address: { socket_address: { address, port_value: 8080 } } } }] },
    ],
  };
}

/** A proxy in the translator's shape: mTLS inbound with RDS, an EDS cluster with its assignment. */
function good(port = 15003): ResourceSet {
  return {
    listeners: [rdsListener('inbound', port, 'r', true)],
    routes: [routes('r', [{ name: 'vh', domains: ['*'] }])],
    clusters: [edsCluster],
    endpoints: [assignment('10.0.0.1')],
    secrets: [],
  };
}

/** Weft's own checks: strict decoding, protoc-gen-validate rules and the consistency checks. */
function weftProblems(set: ResourceSet): string[] {
  return checkConsistency({
    listeners: [...(set.listeners ?? [])],
    routes: [...(set.routes ?? [])],
    clusters: [...(set.clusters ?? [])],
    endpoints: [...(set.endpoints ?? [])],
    secrets: [...(set.secrets ?? [])],
  });
}

describe('envoyMessage', () => {
  it("cuts Envoy's reason out of its output and hides the file name", () => {
    const out =
      "some warning\nerror initializing configuration 'TMPDIR/check-1/config.json': Invalid duration: x   \nseconds: -1\n\n";
    assert.equal(envoyMessage(out, 'TMPDIR/check-1/config.json'), 'Invalid duration: x\nseconds: -1');
    assert.equal(
      envoyMessage("configuration 'TMPDIR/check-1/config.json' OK\n", 'TMPDIR/check-1/config.json'),
      '',
    );
    assert.equal(
      envoyMessage(
        "a warning about TMPDIR/check-1/config.json\nconfiguration 'TMPDIR/check-1/config.json' OK\n",
        'TMPDIR/check-1/config.json',
      ),
      'a warning about config.json',
    );
  });

  it('gives the nearest-rank percentile', () => {
    assert.equal(percentile([], 50), 0);
    assert.equal(percentile([3, 1, 2, 4], 50), 2);
    assert.equal(percentile([3, 1, 2, 4], 99), 4);
  });
});

describe('checkWithEnvoy (real Envoy, --mode validate)', { skip }, () => {
  it('accepts a proxy in the translator shape, its secrets made up', async () => {
    const v = await new EnvoyChecker({ envoy }).check(good());
    assert.deepEqual(
      { accepted: v.accepted, message: v.message, notes: v.notes },
      { accepted: true, message: '', notes: [] },
    );
    assert.match(v.hash, /^[0-9a-f]{64}$/);
  });

  it("refuses a listener without filter chains, which Weft's own checks accept, in Envoy's words", async () => {
    const set: ResourceSet = {
      listeners: [
        {
          name: 'inbound',
          address: { socket_address: { address: '0.0.0.0', port_value: 15003 } },
          filter_chains: [],
        },
      ],
    };
    assert.deepEqual(weftProblems(set), []);
    const v = await new EnvoyChecker({ envoy }).check(set);
    assert.equal(v.accepted, false);
    assert.equal(v.message, "error adding listener '0.0.0.0:15003': no filter chains specified");
  });

  it("refuses two virtual hosts with one domain, served over RDS, which Weft's own checks accept", async () => {
    const set: ResourceSet = {
      ...good(),
      routes: [
        routes('r', [
          { name: 'a', domains: ['shop.example'] },
          { name: 'b', domains: ['shop.example'] },
        ]),
      ],
    };
    assert.deepEqual(weftProblems(set), []);
    const checker = new EnvoyChecker({ envoy });
    const v = await checker.check(set);
    assert.equal(v.accepted, false);
    assert.equal(
      v.message,
      'Only unique values for domains are permitted. Duplicate entry of domain shop.example in route r',
    );
    // Loaded as the proxy gets it (RDS over ADS), validate mode never looks at the routes: the
    // inlining is what makes Envoy judge them.
    const asServed = await checker.checkBootstrap({
      static_resources: { listeners: set.listeners, clusters: set.clusters },
    });
    assert.equal(asServed.accepted, true, asServed.message);
  });

  it('loads the EDS assignment: an endpoint address that is no IP is refused', async () => {
    const set: ResourceSet = { ...good(), endpoints: [assignment('shop.example')] };
    assert.deepEqual(weftProblems(set), []);
    const v = await new EnvoyChecker({ envoy }).check(set);
    assert.equal(v.accepted, false);
    assert.match(v.message, /malformed IP address: shop\.example/);
  });

  it('loads the secrets the set holds: a certificate that is no PEM is refused', async () => {
    const bad = {
      name: 'weft-identity',
      tls_certificate: {
        certificate_chain: { inline_string: 'not a certificate' },
        private_key: { inline_string: 'not a key' },
      },
    };
    const v = await new EnvoyChecker({ envoy }).check({ ...good(), secrets: [bad] });
    assert.equal(v.accepted, false);
    assert.equal(v.message, 'Failed to load certificate chain from <inline>');
  });

  it('accepts an EDS cluster without an assignment, with a note', async () => {
    const v = await new EnvoyChecker({ envoy }).check({ ...good(), endpoints: [] });
    assert.equal(v.accepted, true, v.message);
    assert.equal(v.notes.length, 1);
    assert.match(v.notes[0]!, /^cluster 'svc': no ClusterLoadAssignment 'svc'/);
  });

  it('refuses a missing route configuration without running Envoy', async () => {
    const checker = new EnvoyChecker({ envoy });
    const v = await checker.check({ ...good(), routes: [] });
    assert.equal(v.accepted, false);
    assert.match(v.message, /route configuration 'r' .*is not in the resource set/);
    assert.equal(checker.stats().runs, 0);
  });

  it('runs Envoy once per distinct config, and at most two at once', async () => {
    const checker = new EnvoyChecker({ envoy, concurrency: 2 });
    // Six distinct configs (the port differs), each asked for twice.
    const sets = [0, 1, 2, 3, 4, 5].map((i) => good(16000 + i));
    const verdicts = await checker.checkAll([...sets, ...sets.map((s) => structuredClone(s))]);
    assert.ok(verdicts.every((v) => v.accepted));
    assert.equal(new Set(verdicts.map((v) => v.hash)).size, 6);
    const s = checker.stats();
    assert.equal(s.runs, 6);
    assert.equal(s.cacheHits, 6);
    assert.equal(s.maxRunning, 2);
    assert.equal(s.durationsMs.length, 6);
  });
});

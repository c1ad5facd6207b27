/**
 * The real data plane: proxyless gRPC servers and clients from @grpc/grpc-js-xds read the config
 * our ADS server sends, and real RPCs show that routing, splitting and NACK handling work.
 */
import assert from 'node:assert/strict';
import { connect, createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { typeUrlOf } from '../../src/envoy/codec';
import { freePort } from '../../src/net';
import { EchoClient, type EchoServer, proxylessBootstrap, startEchoServer } from '../../src/workload/echo';
import type { JsonObject } from '../../src/xds/cache/snapshot';
import { encodeEnvoyResource } from '../../src/xds/encoder';
import type { NackRecord, ProxyAck } from '../../src/xds/proxy-state';
import { CLUSTER, ENDPOINT, LISTENER, ROUTE } from '../../src/xds/resource-types';
import { startAds, type TestAds, waitUntil } from './util';

const HCM = typeUrlOf('envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager');
const ROUTER = typeUrlOf('envoy.extensions.filters.http.router.v3.Router');
const router = { name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER } };
const ads = { ads: {}, resource_api_version: 'V3' };

function serverListener(port: number): JsonObject {
  return {
    name: `grpc/server?xds.resource.listening_address=127.0.0.1:${port}`,
    address: { socket_address: { address: '127.0.0.1', port_value: port } },
    filter_chains: [
      {
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': HCM,
              stat_prefix: 'inbound',
              route_config: {
                name: 'inbound',
                virtual_hosts: [
                  {
                    name: 'all',
                    domains: ['*'],
                    routes: [{ match: { prefix: '' }, non_forwarding_action: {} }],
                  },
                ],
              },
              http_filters: [router],
            },
          },
        ],
      },
    ],
  };
}

function input(ports: [number, number], weights: [number, number], extraCluster?: JsonObject) {
  const cluster = (name: string): JsonObject => ({
    name,
    type: 'EDS',
    eds_cluster_config: { eds_config: ads },
    lb_policy: 'ROUND_ROBIN',
  });
  const cla = (name: string, port: number): JsonObject => ({
    cluster_name: name,
    endpoints: [
      {
        locality: { zone: 'local' },
        load_balancing_weight: 1,
        lb_endpoints: [
          { endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } },
        ],
      },
    ],
  });
  return {
    [LISTENER]: [
      serverListener(ports[0]),
      serverListener(ports[1]),
      {
        name: 'echo:8080',
        api_listener: {
          api_listener: {
            '@type': HCM,
            stat_prefix: 'echo',
            rds: { route_config_name: 'echo', config_source: ads },
            http_filters: [router],
          },
        },
      },
    ],
    [ROUTE]: [
      {
        name: 'echo',
        virtual_hosts: [
          {
            name: 'echo',
            domains: ['*'],
            routes: [
              {
                match: { prefix: '' },
                route: {
                  weighted_clusters: {
                    clusters: [
                      { name: 'echo-a', weight: weights[0] },
                      { name: 'echo-b', weight: weights[1] },
                    ],
                  },
                },
              },
            ],
          },
        ],
      },
    ],
    [CLUSTER]: [cluster('echo-a'), extraCluster ?? cluster('echo-b')],
    [ENDPOINT]: [cla('echo-a', ports[0]), cla('echo-b', ports[1])],
  };
}

/** Resolves once a TCP connection to host:port opens (and closes it); rejects with the error. */
function connects(host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, host, () => {
      sock.destroy();
      resolve();
    });
    sock.on('error', reject);
  });
}

async function tally(
  client: EchoClient,
  n: number,
): Promise<{ counts: Record<string, number>; failed: number }> {
  const counts: Record<string, number> = {};
  let failed = 0;
  for (let i = 0; i < n; i++) {
    try {
      const r = await client.call();
      counts[r.backend] = (counts[r.backend] ?? 0) + 1;
    } catch {
      failed++;
      // Fail fast instead of waiting out a deadline per call when the data plane is broken.
      if (failed >= 5) break;
    }
  }
  return { counts, failed };
}

describe('proxyless gRPC peers on config from our ADS server', () => {
  let t: TestAds;
  let ports: [number, number];
  let servers: EchoServer[] = [];
  let client: EchoClient;
  const acks: ProxyAck[] = [];
  const nacks: NackRecord[] = [];

  /** Resolves once the client proxy ACKed the current route configuration version. */
  async function clientAcked(typeUrl: string): Promise<void> {
    const want = t.server.cache.get('mesh')?.of(typeUrl as typeof ROUTE);
    await waitUntil(() =>
      acks.some(
        (a) =>
          a.proxy === 'default/client' &&
          a.typeUrl === typeUrl &&
          a.resourceNames.every((n) => want?.resources.get(n)),
      ),
    );
  }

  before(async () => {
    t = await startAds({}, encodeEnvoyResource);
    t.server.registry.on('ack', (a: ProxyAck) => acks.push(a));
    t.server.registry.on('nack', (n: NackRecord) => nacks.push(n));
    ports = [await freePort(), await freePort()];
    t.set('mesh', input(ports, [80, 20]));
    const boot = (id: string) => proxylessBootstrap({ xdsServer: t.target, nodeId: id, cluster: 'mesh' });
    servers = await Promise.all([
      startEchoServer({ name: 'a', address: `127.0.0.1:${ports[0]}`, bootstrap: boot('default/echo-a') }),
      startEchoServer({ name: 'b', address: `127.0.0.1:${ports[1]}`, bootstrap: boot('default/echo-b') }),
    ]);
    client = new EchoClient('xds:///echo:8080', boot('default/client'));
  });
  after(async () => {
    client.close();
    for (const s of servers) await s.stop();
    await t.stop();
  });

  it('binds an xDS server to the host it was given, not to every interface', async () => {
    // Reachable on its own address; another loopback address with the same port is refused.
    await connects('127.0.0.1', ports[0]);
    await assert.rejects(connects('127.0.0.2', ports[0]), /ECONNREFUSED/);
  });

  it('fails the start of an xDS server whose port is taken, instead of ending the process', async () => {
    const port = await freePort();
    const squatter = createServer();
    await new Promise<void>((resolve) => squatter.listen(port, '127.0.0.1', resolve));
    try {
      t.set('solo', { [LISTENER]: [serverListener(port)] });
      const bootstrap = proxylessBootstrap({ xdsServer: t.target, nodeId: 'default/solo', cluster: 'solo' });
      await assert.rejects(
        startEchoServer({ name: 'solo', address: `127.0.0.1:${port}`, bootstrap }),
        /echo server cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE/,
      );
    } finally {
      squatter.close();
    }
  });

  it('splits 80/20 over 400 real calls', async () => {
    const { counts, failed } = await tally(client, 400);
    assert.equal(failed, 0);
    const a = counts.a ?? 0;
    // Binomial(400, 0.8): mean 320, sd 8; 270..370 is more than six sd either side.
    assert.ok(a > 270 && a < 370, `a got ${a} of 400`);
    assert.equal(a + (counts.b ?? 0), 400);
  });

  it('sends exactly none to a weight of 0 (100/0)', async () => {
    const before = acks.length;
    t.set('mesh', input(ports, [100, 0]));
    await waitUntil(() =>
      acks.slice(before).some((a) => a.proxy === 'default/client' && a.typeUrl === ROUTE),
    );
    const { counts, failed } = await tally(client, 200);
    assert.equal(failed, 0);
    assert.deepEqual(counts, { a: 200 });
  });

  it('moves traffic on a snapshot update without failed calls', async () => {
    let stop = false;
    let failed = 0;
    const seen: string[] = [];
    const loop = (async () => {
      while (!stop) {
        try {
          seen.push((await client.call()).backend);
        } catch {
          failed++;
        }
      }
    })();
    await waitUntil(() => seen.length > 20);
    const before = acks.length;
    t.set('mesh', input(ports, [0, 100]));
    await waitUntil(() =>
      acks.slice(before).some((a) => a.proxy === 'default/client' && a.typeUrl === ROUTE),
    );
    const mark = seen.length;
    await waitUntil(() => seen.length > mark + 50);
    stop = true;
    await loop;
    assert.equal(failed, 0, 'no call failed during the switch');
    // A call in flight when the ACK arrived, or picked before the channel applied the new route,
    // may still finish on the old config; every call well after the ACK goes to b.
    assert.ok(
      seen.slice(mark + 10).every((b) => b === 'b'),
      'after the ACK every call goes to b',
    );
  });

  it('a resource the real client rejects is NACKed, recorded, and traffic keeps flowing', async () => {
    // MAGLEV is valid Envoy config but proxyless gRPC does not support it: the client NACKs.
    const bad: JsonObject = {
      name: 'echo-b',
      type: 'EDS',
      eds_cluster_config: { eds_config: ads },
      lb_policy: 'MAGLEV',
    };
    t.set('mesh', input(ports, [50, 50], bad));
    await waitUntil(() => nacks.some((n) => n.proxy === 'default/client' && n.typeUrl === CLUSTER), 10_000);
    const record = nacks.find((n) => n.proxy === 'default/client' && n.typeUrl === CLUSTER);
    assert.match(record?.message ?? '', /lb_policy/);
    const status = t.server.registry.proxies().find((p) => p.node.id === 'default/client');
    assert.match(status?.types.cds?.lastNack?.message ?? '', /lb_policy/);
    // The client keeps its last good echo-b cluster: both backends still answer, nothing fails.
    await clientAcked(ROUTE);
    const { counts, failed } = await tally(client, 100);
    assert.equal(failed, 0);
    assert.equal((counts.a ?? 0) + (counts.b ?? 0), 100);
    assert.ok((counts.b ?? 0) > 0, 'the NACKed cluster keeps serving from its last good version');
  });
});

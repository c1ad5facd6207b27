/**
 * Which endpoints of Weft's Service a replica asks for their windows, and how an answer reads when
 * one is missing, without an API server (the client is a stand-in that returns EndpointSlices);
 * test/kube/metrics-replicas.test.ts runs two real replicas against a real one.
 */
import assert from 'node:assert/strict';
import { networkInterfaces } from 'node:os';
import { describe, it } from 'node:test';
import type { KubeClient } from '../../src/kube/client';
import { setLogLevel } from '../../src/log';
import { answerWithPeers, MetricsPeers, MISSING_PEERS_ANNOTATION } from '../../src/metrics/peers';
import { MetricsStore } from '../../src/metrics/store';

setLogLevel('silent');

const SELF_IP = Object.values(networkInterfaces())
  .flat()
  .find((a) => a && a.family === 'IPv4')!.address;

function endpoint(address: string, pod?: string, ready?: boolean): unknown {
  return {
    addresses: [address],
    ...(ready === undefined ? {} : { conditions: { ready } }),
    ...(pod ? { targetRef: { kind: 'Pod', name: pod } } : {}),
  };
}

function fakeClient(slices: unknown[], calls: string[] = []): KubeClient {
  return {
    request: async (_method: string, path: string) => {
      calls.push(path);
      return { items: slices };
    },
  } as unknown as KubeClient;
}

describe('TrafficMetrics peers', () => {
  it("lists the Service's ready endpoints other than itself, on the metrics-api port", async () => {
    const calls: string[] = [];
    const peers = new MetricsPeers({
      client: fakeClient(
        [
          {
            ports: [
              { name: 'xds', port: 15010 },
              { name: 'metrics-api', port: 8443 },
            ],
            endpoints: [
              endpoint('10.0.0.1', 'weft-a'), // itself, by pod name
              endpoint('10.0.0.2', 'weft-b'),
              endpoint('10.0.0.3', 'weft-c', false), // not ready
              endpoint('10.0.0.4', 'weft-d', true),
              endpoint(SELF_IP), // itself, by address and port
            ],
          },
          // Another slice of the same Service; its address on another port is another replica.
          {
            ports: [{ name: 'metrics-api', port: 9443 }],
            endpoints: [endpoint(SELF_IP), endpoint('10.0.0.2', 'weft-b')],
          },
          // A slice without the port (the chart without the aggregated API) names no peer.
          { ports: [{ name: 'xds', port: 15010 }], endpoints: [endpoint('10.0.0.9', 'weft-z')] },
        ],
        calls,
      ),
      namespace: 'weft-system',
      self: { replica: 'weft-a', port: () => 8443 },
      caPem: () => '',
    });
    const list = await peers.peers(1_000);
    assert.deepEqual(
      list.map((p) => [p.name, p.address, p.port]),
      [
        [`${SELF_IP}:9443`, SELF_IP, 9443],
        ['weft-b', '10.0.0.2', 8443],
        ['weft-b', '10.0.0.2', 9443],
        ['weft-d', '10.0.0.4', 8443],
      ],
    );
    assert.deepEqual(calls, [
      '/apis/discovery.k8s.io/v1/namespaces/weft-system/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3Dweft',
    ]);
    // Reused for a while (the only thing kept between requests), then read again.
    await peers.peers(5_000);
    assert.equal(calls.length, 1);
    await peers.peers(7_000);
    assert.equal(calls.length, 2);
  });

  it('answers from its own window, naming a peer that cannot be reached, and counts it', async () => {
    const store = new MetricsStore();
    store.add({ kind: 'in', pod: 'shop/api-0', service: '' }, 100_000, { success: 3 });
    const peers = new MetricsPeers({
      client: fakeClient([
        { ports: [{ name: 'metrics-api', port: 1 }], endpoints: [endpoint('127.0.0.1', 'weft-b')] },
      ]),
      namespace: 'weft-system',
      self: { replica: 'weft-a', port: () => 8443 },
      caPem: () => '',
      tokenFile: '/nonexistent/token',
    });
    const a = await answerWithPeers(
      '/v1alpha1/namespaces',
      { window: '1m' },
      { model: undefined, store, now: 105_000, visible: () => true },
      peers,
    );
    assert.equal(a.status, 200);
    assert.deepEqual(
      a.missing.map((m) => m.peer),
      ['weft-b'],
    );
    const body = a.body as { metadata: { annotations?: Record<string, string> } };
    assert.match(body.metadata.annotations?.[MISSING_PEERS_ANNOTATION] ?? '', /^weft-b \(.*nonexistent/);
    assert.equal(peers.failures, 1);
  });

  it('says so when the peer list cannot be read, and still answers', async () => {
    const peers = new MetricsPeers({
      client: {
        request: async () => {
          throw new Error('endpointslices.discovery.k8s.io is forbidden');
        },
      } as unknown as KubeClient,
      namespace: 'weft-system',
      self: { replica: 'weft-a', port: () => 8443 },
      caPem: () => '',
    });
    const a = await answerWithPeers(
      '/v1alpha1/namespaces',
      {},
      { model: undefined, store: new MetricsStore(), now: 105_000, visible: () => true },
      peers,
    );
    assert.equal(a.status, 200);
    assert.match(a.missing[0]?.reason ?? '', /forbidden/);
    assert.equal(peers.failures, 1);
  });
});

/**
 * Which endpoints of Weft's Service a replica asks for their windows, and how an answer reads when
 * one is missing, without an API server (the client is a stand-in that returns EndpointSlices);
 * test/kube/metrics-replicas.test.ts runs two real replicas against a real one.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { controlPlaneIdentity, SERVING_TTL_MS } from '../../src/identity/tls';
import type { KubeClient } from '../../src/kube/client';
import { setLogLevel } from '../../src/log';
import {
  answerWithPeers,
  describeMissing,
  MetricsPeers,
  MISSING_PEERS_ANNOTATION,
} from '../../src/metrics/peers';
import { MetricsStore } from '../../src/metrics/store';
import { newCa, tempDir } from '../identity/util';

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

  describe('calling peers over TLS', () => {
    const cleanups: (() => void)[] = [];
    const servers: Server[] = [];
    after(async () => {
      for (const srv of servers) await new Promise((r) => srv.close(r));
      for (const c of cleanups) c();
    });

    /** A replica stand-in: HTTPS with `cert`, recording each request's Authorization header. */
    const peer = async (
      cert: { keyPem: string; chainPem: string },
      seen: string[],
      body: unknown,
    ): Promise<number> => {
      const srv = createServer({ key: cert.keyPem, cert: cert.chainPem }, (req, res) => {
        seen.push(req.headers.authorization ?? '');
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      });
      servers.push(srv);
      return new Promise((resolve) =>
        srv.listen(0, '127.0.0.1', () => resolve((srv.address() as { port: number }).port)),
      );
    };

    it("sends its token only to a replica whose certificate the mesh CA issued for Weft's Service", async () => {
      const mesh = await newCa();
      const foreign = await newCa();
      cleanups.push(mesh.cleanup, foreign.cleanup);
      const id = controlPlaneIdentity('mesh.test');
      const svc = { dnsNames: ['weft.weft-system.svc'] };
      const theirs = new MetricsStore();
      theirs.add({ kind: 'in', pod: 'shop/store-1', service: '' }, 101_000, { success: 6 });
      const seen = { foreign: [] as string[], misnamed: [] as string[], good: [] as string[] };
      const ports = {
        foreign: await peer(await foreign.ca.issueWithNewKey(id, SERVING_TTL_MS, svc), seen.foreign, {}),
        misnamed: await peer(
          await mesh.ca.issueWithNewKey(id, SERVING_TTL_MS, { dnsNames: ['other.weft-system.svc'] }),
          seen.misnamed,
          {},
        ),
        good: await peer(
          await mesh.ca.issueWithNewKey(id, SERVING_TTL_MS, svc),
          seen.good,
          theirs.export(60_000, 105_000),
        ),
      };
      const t = tempDir('weft-peers-');
      cleanups.push(t.cleanup);
      const tokenFile = join(t.dir, 'token');
      writeFileSync(tokenFile, 'weft-sa-token\n');
      const peers = new MetricsPeers({
        client: fakeClient(
          Object.entries(ports).map(([name, port]) => ({
            ports: [{ name: 'metrics-api', port }],
            endpoints: [endpoint('127.0.0.1', `weft-${name}`)],
          })),
        ),
        namespace: 'weft-system',
        self: { replica: 'weft-a', port: () => 8443 },
        caPem: () => mesh.ca.bundlePem(),
        tokenFile,
      });
      const own = new MetricsStore();
      own.add({ kind: 'in', pod: 'shop/store-0', service: '' }, 101_000, { success: 4 });
      const g = await peers.gather(own, 60_000, 105_000);
      assert.equal(
        g.store.sum((k) => k.kind === 'in', 60_000, 105_000).success,
        10,
        'own 4 and the good peer 6',
      );
      assert.deepEqual(g.missing.map((m) => m.peer).sort(), ['weft-foreign', 'weft-misnamed']);
      assert.match(g.missing.find((m) => m.peer === 'weft-foreign')!.reason, /certificate/i);
      assert.match(
        g.missing.find((m) => m.peer === 'weft-misnamed')!.reason,
        /altnames|Hostname|certificate/i,
      );
      // The TLS check comes first: the token never reached the two others.
      assert.deepEqual(seen, { foreign: [], misnamed: [], good: ['Bearer weft-sa-token'] });
      // A second request within the second shares the merge: no new call to any peer.
      assert.equal(await peers.gather(own, 60_000, 105_500), g);
      assert.equal(seen.good.length, 1);
      await peers.gather(own, 60_000, 106_000);
      assert.equal(seen.good.length, 2, 'a second later, the peers are asked again');
      // A request this replica refuses on its own (no such kind) asks no peer.
      const refused = await answerWithPeers(
        '/v1alpha1/gadgets',
        { window: '1m' },
        { model: undefined, store: own, now: 200_000, visible: () => true },
        peers,
      );
      assert.equal(refused.status, 404);
      assert.equal(seen.good.length, 2);
    });
  });

  it("names missing peers on one line of printable ASCII, even when a peer's error text is not", () => {
    const text = describeMissing([
      { peer: 'weft-b', reason: 'HTTP 500: caf\u00e9\u0000\r\nX-Injected: 1' },
      { peer: 'weft-c', reason: 'x'.repeat(2000) },
    ]);
    assert.match(text, /^weft-b \(HTTP 500: caf X-Injected: 1\), weft-c \(x+\.\.\.$/);
    assert.ok(text.length <= 1000);
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

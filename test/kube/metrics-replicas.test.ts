/**
 * TrafficMetrics with two replicas, against a real kube-apiserver: two `weft serve --kubernetes
 * --metrics-api-address` instances share the mesh CA (the Secret the first one creates), each
 * receives some sidecars' stats through the real gRPC StreamMetrics protocol on its own mTLS xDS
 * port, and both are endpoints of Weft's Service (EndpointSlices written here, as no kubelet or
 * endpoint controller runs). The API server refuses loopback addresses in an EndpointSlice, so the
 * replicas listen on every interface, as the chart's do, and their endpoints are this machine's
 * first non-loopback IPv4 address with each replica's own port. Either
 * replica must answer with the sum of both, exactly; with a peer that hangs or is gone, the other
 * answers with what it has and names the missing peer.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { createServer, type Server, type Socket } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client, Metadata } from '@grpc/grpc-js';
import type { DashboardState } from '../../src/dashboard/types';
import type { CertificateAuthority } from '../../src/identity/ca';
import { controlPlaneChannelCredentials, controlPlaneIdentity } from '../../src/identity/tls';
import { setLogLevel } from '../../src/log';
import type { TrafficMetrics } from '../../src/metrics/api';
import { MISSING_PEERS_ANNOTATION, MISSING_PEERS_HEADER } from '../../src/metrics/peers';
import { encodeStreamMetrics, STREAM_METRICS_PATH } from '../../src/metrics/sink';
import { freePort } from '../../src/net';
import { type RunningKubeServe, startKubeServe } from '../../src/serve';
import { eventually, type KubeEnv, kubectlOk, metricsApiServices, startKubeEnv } from './env';

setLogLevel(process.env.WEFT_LOG_LEVEL === 'debug' ? 'debug' : 'silent');

const pod = (name: string, sa: string, app: string, ip: string): unknown => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: 'shop', labels: { app } },
  spec: { serviceAccountName: sa, containers: [{ name: 'app', image: 'x' }] },
  status: { phase: 'Running', podIP: ip },
});

const PODS = [
  pod('buyer-0', 'buyer', 'buyer', '10.1.0.1'),
  pod('buyer-1', 'buyer', 'buyer', '10.1.0.2'),
  pod('store-0', 'store', 'store', '10.1.0.3'),
  pod('store-1', 'store', 'store', '10.1.0.4'),
];

/** This machine's first non-loopback IPv4 address: what the replicas' endpoints name. */
const HOST_IP = Object.values(networkInterfaces())
  .flat()
  .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;

/** One EndpointSlice of Weft's Service holding one replica (`ready` as its readiness probe says). */
function weftSlice(name: string, port: number, ready = true): string {
  return JSON.stringify({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: `weft-${name}`,
      namespace: 'weft-system',
      labels: { 'kubernetes.io/service-name': 'weft', 'endpointslice.kubernetes.io/managed-by': 'weft-test' },
    },
    addressType: 'IPv4',
    ports: [{ name: 'metrics-api', port, protocol: 'TCP' }],
    endpoints: [
      {
        addresses: [HOST_IP],
        conditions: { ready },
        targetRef: { kind: 'Pod', namespace: 'weft-system', name },
      },
    ],
  });
}

const RBAC = `apiVersion: v1
kind: ServiceAccount
metadata: { name: weft, namespace: weft-system }
---
apiVersion: v1
kind: ServiceAccount
metadata: { name: reader, namespace: shop }
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: { name: traffic-reader, namespace: shop }
rules:
  - { apiGroups: [metrics.smi-spec.io], resources: ["*"], verbs: [get, list] }
  - { apiGroups: [""], resources: [pods], verbs: [list] }
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: { name: reader-reads-traffic, namespace: shop }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: Role, name: traffic-reader }
subjects: [{ kind: ServiceAccount, name: reader, namespace: shop }]
`;

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

describe(
  'TrafficMetrics with two replicas, each holding part of the mesh',
  {
    skip: HOST_IP ? false : 'this machine has no non-loopback IPv4 address for an EndpointSlice',
  },
  () => {
    let env: KubeEnv;
    const replicas: Record<string, RunningKubeServe> = {};
    const ports: Record<string, number> = {};
    let ca: CertificateAuthority;
    let readerToken: string;
    let weftToken: string;
    const dir = mkdtempSync(join(tmpdir(), 'weft-replicas-'));
    let hung: Server | undefined;
    const hungSockets: Socket[] = [];

    /** A GET of a replica's aggregated API port, as a caller with `token`. */
    const get = (name: string, path: string, token = readerToken): Promise<Reply> =>
      new Promise((resolve, reject) => {
        const req = request(
          `https://127.0.0.1:${ports[name]}${path}`,
          {
            ca: ca.bundlePem(),
            servername: 'weft.weft-system.svc',
            headers: { authorization: `Bearer ${token}` },
          },
          (r) => {
            let body = '';
            r.on('data', (c: Buffer) => {
              body += c.toString();
            });
            r.on('end', () => resolve({ status: r.statusCode ?? 0, headers: r.headers, body }));
          },
        );
        req.on('error', reject);
        req.end();
      });

    const counts = (m: TrafficMetrics): [string | undefined, string | undefined] => [
      m.metrics.find((x) => x.name === 'success_count')?.value,
      m.metrics.find((x) => x.name === 'failure_count')?.value,
    ];

    /** Streams one StreamMetrics message of `node` (a pod of `sa`) to replica `name`'s sink. */
    const stream = async (
      name: string,
      sa: string,
      node: string,
      stats: [string, number][],
    ): Promise<void> => {
      const issued = await ca.issueWithNewKey(`shop/${sa}`);
      const client = new Client(
        `127.0.0.1:${replicas[name]!.port}`,
        controlPlaneChannelCredentials({
          bundlePem: ca.bundlePem(),
          serverIdentity: controlPlaneIdentity(ca.trustDomain),
          certPem: issued.chainPem,
          keyPem: issued.keyPem,
        }),
      );
      try {
        await new Promise<void>((resolve, reject) => {
          const call = client.makeClientStreamRequest<Buffer, Buffer>(
            STREAM_METRICS_PATH,
            (b) => b,
            (b) => b,
            new Metadata(),
            (err) => (err ? reject(err) : resolve()),
          );
          call.write(
            Buffer.from(
              encodeStreamMetrics({
                identifier: { node: { id: node } },
                envoy_metrics: stats.map(([stat, value]) => ({
                  name: stat,
                  type: 0,
                  metric: [{ counter: { value } }],
                })),
              }),
            ),
          );
          call.end();
        });
      } finally {
        client.close();
      }
    };

    before(async () => {
      env = await startKubeEnv({ aggregation: true });
      ports.a = await freePort();
      ports.b = await freePort();
      await kubectlOk(env, ['create', 'namespace', 'weft-system']);
      await kubectlOk(env, ['create', 'namespace', 'shop']);
      await kubectlOk(env, ['label', 'namespace', 'shop', 'weft.dev/mesh=enabled']);
      for (const p of PODS) {
        const { status, ...spec } = p as { status: unknown };
        await kubectlOk(env, ['apply', '-f', '-'], JSON.stringify(spec));
        const name = (p as { metadata: { name: string } }).metadata.name;
        await kubectlOk(env, [
          'patch',
          'pod',
          name,
          '-n',
          'shop',
          '--subresource=status',
          '--type=merge',
          '-p',
          JSON.stringify({ status }),
        ]);
      }
      // The aggregation layer reaches replica a (an ExternalName Service, as metrics-api.test.ts),
      // while Weft finds its replicas in the Service's EndpointSlices.
      await kubectlOk(
        env,
        ['apply', '-f', '-'],
        `apiVersion: v1
kind: Service
metadata: { name: store, namespace: shop }
spec: { selector: { app: store }, ports: [{ name: http, port: 8080 }] }
---
apiVersion: v1
kind: Service
metadata: { name: weft, namespace: weft-system }
spec: { type: ExternalName, externalName: localhost, ports: [{ name: metrics-api, port: ${ports.a} }] }
---
${metricsApiServices(ports.a)}---
${RBAC}`,
      );
      readerToken = (await kubectlOk(env, ['create', 'token', 'reader', '-n', 'shop'])).stdout.trim();
      weftToken = (await kubectlOk(env, ['create', 'token', 'weft', '-n', 'weft-system'])).stdout.trim();
      const tokenFile = join(dir, 'token');
      writeFileSync(tokenFile, weftToken);
      // One after the other: the first creates the CA Secret, the second loads it.
      for (const name of ['a', 'b']) {
        replicas[name] = await startKubeServe({
          kubeconfig: env.kubeconfigPath,
          replica: name,
          xdsAddress: '127.0.0.1:0',
          adminAddress: '127.0.0.1:0',
          metricsApiAddress: `0.0.0.0:${ports[name]}`,
          peerTokenFile: tokenFile,
          quietMs: 50,
          maxDelayMs: 300,
        });
        assert.ok(replicas[name].metricsApi, `replica ${name} serves the aggregated API`);
      }
      ca = replicas.a!.identity.running.ca!;
      assert.equal(
        replicas.b!.identity.running.ca!.bundlePem(),
        ca.bundlePem(),
        'both replicas share the mesh CA',
      );
      await kubectlOk(env, ['apply', '-f', '-'], weftSlice('a', ports.a));
      await kubectlOk(env, ['apply', '-f', '-'], weftSlice('b', ports.b));
      for (const r of Object.values(replicas))
        await eventually('both replicas see every pod', () =>
          PODS.every((p) =>
            r.compiler.currentModel.workloads.some(
              (w) => w.kind === 'Pod' && w.name === (p as { metadata: { name: string } }).metadata.name,
            ),
          ),
        );
      // buyer-0 and store-0 stream to replica a; buyer-1 and store-1 to replica b.
      await stream('a', 'buyer', 'shop/buyer-0', [
        ['cluster.outbound_8080_shop_store.upstream_rq_2xx', 5],
        ['cluster.outbound_8080_shop_store.upstream_rq_5xx', 1],
      ]);
      await stream('a', 'store', 'shop/store-0', [['http.inbound_8080.downstream_rq_2xx', 4]]);
      await stream('b', 'buyer', 'shop/buyer-1', [
        ['cluster.outbound_8080_shop_store.upstream_rq_2xx', 3],
        ['cluster.outbound_8080_shop_store.upstream_rq_5xx', 2],
      ]);
      await stream('b', 'store', 'shop/store-1', [
        ['http.inbound_8080.downstream_rq_2xx', 6],
        ['http.inbound_8080.downstream_rq_5xx', 1],
        ['http.inbound_8080.rbac.denied', 2],
      ]);
      // Each replica holds its own part only (b: store-1's refusals too).
      assert.equal(replicas.a!.trafficMetrics.store.size, 2);
      assert.equal(replicas.b!.trafficMetrics.store.size, 3);
    });

    after(async () => {
      for (const s of hungSockets) s.destroy();
      hung?.close();
      for (const r of Object.values(replicas)) await r.stop();
      await env?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    it('answers the sum of both replicas from either one', async () => {
      for (const name of ['a', 'b']) {
        const svc = await get(
          name,
          '/apis/metrics.smi-spec.io/v1alpha1/namespaces/shop/services/store?window=1m',
        );
        assert.equal(svc.status, 200, svc.body);
        const item = JSON.parse(svc.body) as TrafficMetrics & {
          metadata: { annotations?: Record<string, string> };
        };
        assert.deepEqual(counts(item), ['8', '3'], `replica ${name}: calls to shop/store from both buyers`);
        assert.equal(item.metadata.annotations, undefined, `replica ${name}: no peer missing`);
        assert.equal(svc.headers[MISSING_PEERS_HEADER], undefined);
        const ns = await get(name, '/apis/metrics.smi-spec.io/v1alpha1/namespaces/shop?window=1m');
        assert.deepEqual(
          counts(JSON.parse(ns.body) as TrafficMetrics),
          ['10', '1'],
          `replica ${name}: namespace shop`,
        );
        const pods = await get(name, '/apis/metrics.smi-spec.io/v1alpha1/namespaces/shop/pods?window=1m');
        const list = JSON.parse(pods.body) as { items: TrafficMetrics[] };
        assert.deepEqual(
          list.items.map((i) => [i.resource.name, ...counts(i)]),
          [
            ['buyer-0', '0', '0'],
            ['buyer-1', '0', '0'],
            ['store-0', '4', '0'],
            ['store-1', '6', '1'],
          ],
          `replica ${name}: every pod's own figures`,
        );
      }
    });

    it("answers kubectl get --raw through the aggregation layer with both replicas' streams", async () => {
      await kubectlOk(env, [
        'wait',
        '--for=condition=Available',
        'apiservice/v1alpha1.metrics.smi-spec.io',
        'apiservice/v1alpha2.metrics.smi-spec.io',
        '--timeout=60s',
      ]);
      // The aggregator reaches replica a; buyer-1 streams to replica b.
      const edges = JSON.parse(
        (
          await kubectlOk(env, [
            'get',
            '--raw',
            '/apis/metrics.smi-spec.io/v1alpha1/namespaces/shop/pods/buyer-1/edges?window=1m',
          ])
        ).stdout,
      ) as { items: TrafficMetrics[] };
      assert.deepEqual(
        edges.items.map((i) => [
          i.edge.direction,
          i.edge.resource?.kind,
          i.edge.resource?.name,
          ...counts(i),
        ]),
        // Service store has two pods, so the destination is named as the Service.
        [['to', 'Service', 'store', '3', '2']],
      );
      const svc = JSON.parse(
        (
          await kubectlOk(env, [
            'get',
            '--raw',
            '/apis/metrics.smi-spec.io/v1alpha1/namespaces/shop/services/store/edges?window=1m',
          ])
        ).stdout,
      ) as { items: TrafficMetrics[] };
      assert.deepEqual(
        svc.items.map((i) => [i.edge.direction, i.edge.resource?.kind, i.edge.resource?.name, ...counts(i)]),
        [
          ['from', 'Pod', 'buyer-0', '5', '1'],
          ['from', 'Pod', 'buyer-1', '3', '2'],
        ],
      );
    });

    it("answers on the admin server's copy of the API with both replicas' streams", async () => {
      const res = await fetch(
        `${replicas.b!.adminUrl}/apis/metrics.smi-spec.io/v1alpha1/namespaces/shop/services/store?window=1m`,
        { headers: { authorization: `Bearer ${readerToken}` } },
      );
      assert.equal(res.status, 200);
      assert.deepEqual(counts((await res.json()) as TrafficMetrics), ['8', '3']);
    });

    it("shows both replicas' traffic and refusals on either replica's dashboard", async () => {
      const res = await fetch(`${replicas.a!.adminUrl}/dashboard/api/state?window=1m`, {
        headers: { authorization: `Bearer ${readerToken}` },
      });
      assert.equal(res.status, 200, await res.clone().text());
      const state = (await res.json()) as DashboardState;
      // store-1 streamed its refusals to replica b only.
      assert.equal(state.nodes.find((n) => n.id === 'w:shop/store-1')?.denied, 2);
      // buyer-1's calls, also b's, are a live edge here; buyer-0's are a's own.
      const from = state.live.map((e) => e.from).sort();
      assert.deepEqual(from, ['w:shop/buyer-0', 'w:shop/buyer-1']);
      const b1 = state.live.find((e) => e.from === 'w:shop/buyer-1')!;
      assert.equal(b1.success, 3 / 5);
    });

    it('asks about nodes at the cluster scope: a reader of one namespace cannot read them through its path', async () => {
      // The reader may read every TrafficMetrics kind in shop, and nothing cluster-wide.
      for (const path of ['namespaces/shop/nodes/node-a', 'namespaces/shop/nodes', 'nodes/node-a']) {
        const r = await get('a', `/apis/metrics.smi-spec.io/v1alpha1/${path}?window=1m`);
        assert.equal(r.status, 403, `${path}: ${r.body}`);
        assert.match(r.body, /at the cluster scope/);
      }
    });

    it("serves a replica's window to Weft's own ServiceAccount only", async () => {
      const path = `/weft/v1/metrics-export?windowMs=60000&now=${Date.now()}`;
      const own = await get('b', path, weftToken);
      assert.equal(own.status, 200, own.body);
      const exp = JSON.parse(own.body) as { slotMs: number; series: { key: { pod: string } }[] };
      assert.deepEqual(exp.series.map((s) => s.key.pod).sort(), [
        'shop/buyer-1',
        'shop/store-1',
        'shop/store-1',
      ]);
      const reader = await get('b', path, readerToken);
      assert.equal(reader.status, 403, reader.body);
      assert.match(reader.body, /only system:serviceaccount:weft-system:weft may read/);
      const anonymous = await get('b', path, 'not-a-token');
      assert.equal(anonymous.status, 401, anonymous.body);
    });

    it('leaves out a peer that does not answer within a second, and says so', async () => {
      // A replica that accepts connections and never answers.
      hung = createServer((s) => {
        hungSockets.push(s);
      });
      const hungPort = await new Promise<number>((resolve) =>
        hung!.listen(0, HOST_IP, () => resolve((hung!.address() as { port: number }).port)),
      );
      await kubectlOk(env, ['apply', '-f', '-'], weftSlice('c', hungPort));
      const item = await eventually('replica a names the hung peer c as missing', async () => {
        const started = Date.now();
        const r = await get(
          'a',
          '/apis/metrics.smi-spec.io/v1alpha1/namespaces/shop/services/store?window=1m',
        );
        const body = JSON.parse(r.body) as TrafficMetrics & {
          metadata: { annotations?: Record<string, string> };
        };
        const missing = body.metadata.annotations?.[MISSING_PEERS_ANNOTATION];
        return missing
          ? { body, missing, header: r.headers[MISSING_PEERS_HEADER], ms: Date.now() - started }
          : undefined;
      });
      assert.deepEqual(counts(item.body), ['8', '3'], 'replica b still answered');
      assert.match(item.missing, /^c \(no answer within 1000 ms\)$/);
      assert.equal(item.header, item.missing);
      assert.ok(item.ms < 5_000, `answered in ${item.ms} ms`);
      await kubectlOk(env, ['delete', 'endpointslice', 'weft-c', '-n', 'weft-system']);
    });

    it('answers with its own part, naming the missing peer, once the other replica stops', async () => {
      await replicas.b!.stop();
      delete replicas.b;
      const item = await eventually('replica a answers without b', async () => {
        const r = await get(
          'a',
          '/apis/metrics.smi-spec.io/v1alpha1/namespaces/shop/services/store?window=1m',
        );
        const body = JSON.parse(r.body) as TrafficMetrics & {
          metadata: { annotations?: Record<string, string> };
        };
        const missing = body.metadata.annotations?.[MISSING_PEERS_ANNOTATION] ?? '';
        return /^b \(/.test(missing) ? { body, missing } : undefined;
      });
      assert.deepEqual(counts(item.body), ['5', '1'], "replica a's own streams only");
      assert.match(item.missing, /ECONNREFUSED/);
      const metrics = await (await fetch(`${replicas.a!.adminUrl}/metrics`)).text();
      const failures = Number(/^weft_metrics_peer_failures_total (\d+)$/m.exec(metrics)?.[1] ?? 'NaN');
      assert.ok(failures >= 2, `weft_metrics_peer_failures_total ${failures}`);
    });
  },
);

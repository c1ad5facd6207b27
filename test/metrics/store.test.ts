/**
 * The metrics store, the sink's decoding of Envoy's StreamMetricsMessage (through the real
 * protobuf encoding) and the TrafficMetrics API's answers, without Envoy: windows, bounds,
 * percentiles and their bucket error, grouping of pods into resources, errors a caller sees.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { accessAttributes } from '../../src/metrics/aggregated';
import { answer, parseSecondsQuantity, secondsQuantity, type TrafficMetrics } from '../../src/metrics/api';
import {
  classifyStat,
  decodeKeptStats,
  decodeStreamMetrics,
  deltasOf,
  encodeStreamMetrics,
} from '../../src/metrics/sink';
import { MetricsStore, parseWindow, quantile } from '../../src/metrics/store';
import { topologyDot, topologyEdges } from '../../src/metrics/view';
import { buildModel } from '../../src/smi';
import type { MeshModel } from '../../src/smi/model';

const BOUNDS = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000];

/** A histogram of `latencies` (ms) over {@link BOUNDS}, per bucket plus overflow. */
function hist(latencies: number[]): number[] {
  const b = new Array(BOUNDS.length + 1).fill(0);
  for (const l of latencies) {
    const i = BOUNDS.findIndex((x) => l <= x);
    b[i < 0 ? BOUNDS.length : i]++;
  }
  return b;
}

describe('metrics store', () => {
  it('sums a window of slots and forgets what is older than the window', () => {
    const s = new MetricsStore({ slotMs: 10_000, retentionMs: 60_000 });
    const key = { kind: 'out', pod: 'shop/buyer', service: 'shop/store' } as const;
    s.add(key, 1_000, { success: 5, failure: 1 });
    s.add(key, 25_000, { success: 2 });
    assert.deepEqual(
      [s.sum(() => true, 30_000, 29_000).success, s.sum(() => true, 10_000, 29_000).success],
      [7, 2],
    );
    assert.equal(s.sum(() => true, 30_000, 29_000).failure, 1);
    // Past the retention the slot is gone, and with it the series.
    s.expire(200_000);
    assert.equal(s.size, 0);
  });

  it('holds at most maxSeries series, dropping the one updated longest ago', () => {
    const s = new MetricsStore({ maxSeries: 2 });
    for (const pod of ['a/1', 'a/2', 'a/3']) s.add({ kind: 'in', pod, service: '' }, 0, { success: 1 });
    assert.equal(s.size, 2);
    assert.deepEqual(
      s.keys(60_000, 0).map((k) => k.pod),
      ['a/2', 'a/3'],
    );
  });

  it('computes percentiles within the bucket that holds them', () => {
    const lat = [...new Array(90).fill(3), ...new Array(10).fill(300)];
    const s = { success: 100, failure: 0, buckets: hist(lat), bounds: BOUNDS };
    const p50 = quantile(s, 0.5)!;
    const p99 = quantile(s, 0.99)!;
    assert.ok(p50 > 1 && p50 <= 5, `p50 ${p50} in (1, 5]`);
    assert.ok(p99 > 250 && p99 <= 500, `p99 ${p99} in (250, 500]`);
    assert.equal(quantile({ ...s, buckets: hist([]) }, 0.5), undefined);
  });

  it('keeps percentiles when a series in the sum only counted (no latencies)', () => {
    const s = new MetricsStore();
    s.add({ kind: 'out', pod: 'a/1', service: 'a/x' }, 0, { failure: 3 });
    s.add({ kind: 'out', pod: 'a/2', service: 'a/x' }, 0, {
      success: 2,
      buckets: hist([3, 300]),
      bounds: BOUNDS,
    });
    const sum = s.sum(() => true, 30_000, 1000);
    assert.deepEqual([sum.success, sum.failure, sum.series], [2, 3, 2]);
    const p99 = quantile(sum, 0.99)!;
    assert.ok(p99 > 250 && p99 <= 500, `p99 ${p99}`);
  });

  it('keeps counts that came before the first latencies of a series', () => {
    const s = new MetricsStore();
    const key = { kind: 'out', pod: 'a/1', service: 'a/x' } as const;
    s.add(key, 0, { success: 15, failure: 5 });
    s.add(key, 1000, { buckets: hist([3, 300]), bounds: BOUNDS });
    const sum = s.sum(() => true, 30_000, 2000);
    assert.deepEqual([sum.success, sum.failure], [15, 5]);
    assert.ok(quantile(sum, 0.99)! > 250);
  });

  it('parses windows and quantities', () => {
    assert.equal(parseWindow('1m30s'), 90_000);
    assert.equal(parseWindow('500ms'), 500);
    assert.equal(parseWindow('30'), undefined);
    assert.equal(parseWindow('5x'), undefined);
    assert.equal(parseSecondsQuantity(secondsQuantity(12)), 12);
    assert.equal(parseSecondsQuantity(secondsQuantity(1.5)), 1.5);
  });
});

describe('metrics sink decoding', () => {
  it('maps stat names to series and folds counters and histograms', () => {
    assert.deepEqual(classifyStat('shop/buyer', 'cluster.outbound_8080_shop_store-v1.upstream_rq_5xx'), {
      key: { kind: 'out', pod: 'shop/buyer', service: 'shop/store-v1' },
      what: 'failure',
    });
    assert.equal(
      classifyStat('shop/buyer', 'http.outbound_8080_shop_store.downstream_rq_time')?.key.kind,
      'apex',
    );
    assert.equal(classifyStat('shop/buyer', 'http.inbound_8080.downstream_rq_2xx')?.what, 'success');
    assert.deepEqual(
      classifyStat('shop/store', 'vhost.inbound|8080.route.store-paths__open.upstream_rq_5xx'),
      {
        key: { kind: 'route', pod: 'shop/store', service: '', route: 'store-paths__open' },
        what: 'failure',
      },
    );
    // Refusals of the RBAC filters (HTTP and network) are kept, per pod; shadow refusals are not.
    for (const name of ['http.inbound_8080.rbac.denied', 'inbound_7070.rbac.denied'])
      assert.deepEqual(classifyStat('shop/store', name), {
        key: { kind: 'denied', pod: 'shop/store', service: '' },
        what: 'failure',
      });
    assert.equal(classifyStat('shop/store', 'http.inbound_8080.rbac.shadow_denied'), undefined);
    assert.equal(classifyStat('shop/store', 'http.inbound_8080.rbac.allowed'), undefined);
    // A caller's route of a TrafficSplit's match, in the Service's virtual host.
    assert.deepEqual(
      classifyStat('shop/buyer', 'vhost.shop/store|8080.route.ab-test__canary.upstream_rq_2xx'),
      {
        key: { kind: 'splitroute', pod: 'shop/buyer', service: 'shop/store', route: 'ab-test__canary' },
        what: 'success',
      },
    );
    assert.equal(classifyStat('shop/buyer', 'vhost.shop/store|8080.route.a.b.upstream_rq_2xx'), undefined);
    assert.equal(classifyStat('shop/buyer', 'cluster.weft-xds.upstream_rq_2xx'), undefined);
    assert.equal(classifyStat('shop/buyer', 'cluster.passthrough.upstream_rq_2xx'), undefined);
    // Through the protobuf wire format, as Envoy sends it.
    const bytes = encodeStreamMetrics({
      identifier: { node: { id: 'shop/buyer' } },
      envoy_metrics: [
        {
          name: 'cluster.outbound_80_shop_api.upstream_rq_2xx',
          type: 0,
          metric: [{ counter: { value: 7 } }],
        },
        {
          name: 'cluster.outbound_80_shop_api.upstream_rq_5xx',
          type: 0,
          metric: [{ counter: { value: 2 } }],
        },
        {
          name: 'cluster.outbound_80_shop_api.upstream_rq_time',
          type: 4,
          metric: [
            {
              histogram: {
                sample_count: 9,
                bucket: [
                  { upper_bound: 5, cumulative_count: 6 },
                  { upper_bound: 500, cumulative_count: 8 },
                ],
              },
            },
          ],
        },
        { name: 'server.uptime', type: 1, metric: [{ gauge: { value: 1 } }] },
      ],
    });
    const msg = decodeStreamMetrics(bytes);
    assert.equal(msg.identifier?.node?.id, 'shop/buyer');
    assert.equal(msg.envoy_metrics?.length, 4);
    // What the sink decodes: the same, without the families Weft does not keep.
    const kept = decodeKeptStats(bytes);
    assert.equal(kept.identifier?.node?.id, 'shop/buyer');
    assert.deepEqual(
      kept.envoy_metrics?.map((f) => f.name),
      msg.envoy_metrics?.slice(0, 3).map((f) => f.name),
    );
    assert.deepEqual(deltasOf('shop/buyer', kept), deltasOf('shop/buyer', msg));
    // One series fed by two stats in a message (a route on two ports): counts and histograms add.
    const twoPorts = deltasOf('shop/store', {
      envoy_metrics: [8080, 9090].flatMap((port, i) => [
        {
          name: `vhost.inbound|${port}.route.g__m.upstream_rq_2xx`,
          type: 0,
          metric: [{ counter: { value: 2 + i } }],
        },
        {
          name: `vhost.inbound|${port}.route.g__m.upstream_rq_time`,
          type: 4,
          metric: [
            {
              histogram: {
                sample_count: 2 + i,
                bucket: [
                  { upper_bound: 5, cumulative_count: 1 },
                  { upper_bound: 500, cumulative_count: 2 + i },
                ],
              },
            },
          ],
        },
      ]),
    });
    assert.deepEqual(
      twoPorts.map((d) => [d.key.route, d.success, d.buckets]),
      [['g__m', 5, [2, 3, 0]]],
    );
    assert.deepEqual(deltasOf('shop/buyer', msg), [
      {
        key: { kind: 'out', pod: 'shop/buyer', service: 'shop/api' },
        success: 7,
        failure: 2,
        buckets: [6, 2, 1],
        bounds: [5, 500],
      },
    ]);
  });
});

const MANIFESTS = [
  { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop', labels: { team: 'a' } } },
  {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'api', namespace: 'shop', labels: { tier: 'front' } },
    spec: { clusterIP: '10.96.0.10', selector: { app: 'api' }, ports: [{ port: 80 }] },
  },
  {
    apiVersion: 'specs.smi-spec.io/v1alpha4',
    kind: 'HTTPRouteGroup',
    metadata: { name: 'api.routes', namespace: 'shop' },
    spec: { matches: [{ name: 'books', pathRegex: '/books' }] },
  },
  ...['api-5d9f7c8b6-abcde', 'api-5d9f7c8b6-fghij', 'web-7c6b5d4f9-xyzab'].map((name) => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: 'shop',
      labels: { app: name.split('-')[0]!, 'pod-template-hash': name.split('-')[1]! },
    },
    spec: { containers: [{ name: 'app', image: 'x' }] },
    status: {
      phase: 'Running',
      podIP: name.startsWith('web') ? '10.1.0.3' : name.endsWith('e') ? '10.1.0.1' : '10.1.0.2',
    },
  })),
];

describe('TrafficMetrics API', () => {
  const model: MeshModel = buildModel(MANIFESTS as never).model;
  const store = new MetricsStore();
  const now = 100_000;
  // web's pod called api twice (one 503); each api pod received one call.
  store.add({ kind: 'out', pod: 'shop/web-7c6b5d4f9-xyzab', service: 'shop/api' }, now - 1000, {
    success: 1,
    failure: 1,
    buckets: hist([3, 300]),
    bounds: BOUNDS,
  });
  for (const p of ['api-5d9f7c8b6-abcde', 'api-5d9f7c8b6-fghij'])
    store.add({ kind: 'in', pod: `shop/${p}`, service: '' }, now - 1000, {
      success: 1,
      buckets: hist([2]),
      bounds: BOUNDS,
    });
  // Both api pods counted requests on the books route; one also on a route no group names (now).
  for (const p of ['api-5d9f7c8b6-abcde', 'api-5d9f7c8b6-fghij'])
    store.add({ kind: 'route', pod: `shop/${p}`, service: '', route: 'api_2eroutes__books' }, now - 1000, {
      success: 1,
      buckets: hist([2]),
      bounds: BOUNDS,
    });
  store.add({ kind: 'route', pod: 'shop/api-5d9f7c8b6-abcde', service: '', route: 'gone_x' }, now - 1000, {
    failure: 3,
  });
  const ctx = { model, store, now, visible: () => true };
  const get = (path: string, q: Record<string, string> = {}) => answer(path, q, ctx);
  const n = (t: TrafficMetrics, name: string): string | undefined =>
    t.metrics.find((m) => m.name === name)?.value;

  it('lists its resources and versions', () => {
    const list = get('/v1alpha1').body as { resources: { name: string }[] };
    assert.ok(list.resources.some((r) => r.name === 'pods/edges'));
    assert.ok(!list.resources.some((r) => r.name === 'trafficsplits'), 'trafficsplits are v1alpha2');
    assert.ok(
      (get('/v1alpha2').body as { resources: { name: string }[] }).resources.some(
        (r) => r.name === 'trafficsplits',
      ),
    );
  });

  it('groups pods into their Deployment and sums what they received', () => {
    const d = get('/v1alpha1/namespaces/shop/deployments/api').body as TrafficMetrics;
    assert.deepEqual(d.resource, { kind: 'Deployment', namespace: 'shop', name: 'api' });
    assert.equal(n(d, 'success_count'), '2');
    const list = get('/v1alpha1/namespaces/shop/deployments').body as { items: TrafficMetrics[] };
    assert.deepEqual(
      list.items.map((i) => i.resource.name),
      ['api', 'web'],
    );
    const ns = get('/v1alpha1/namespaces/shop').body as TrafficMetrics;
    assert.equal(n(ns, 'success_count'), '2');
  });

  it("v1alpha2: a resource's edges hold one item per route, named <group>/<match>", () => {
    const e = get('/v1alpha2/namespaces/shop/deployments/api/edges').body as { items: TrafficMetrics[] };
    const routes = e.items.filter((i) => i.route !== undefined);
    assert.deepEqual(
      routes.map((i) => [i.route, n(i, 'success_count'), n(i, 'failure_count')]),
      [
        ['api.routes/books', '2', '0'],
        ['gone_x', '0', '3'],
      ],
    );
    assert.deepEqual(routes[0]!.edge, { direction: 'from', side: 'server', resource: {} });
    // Routes are v1alpha2's.
    const v1 = get('/v1alpha1/namespaces/shop/deployments/api/edges').body as { items: TrafficMetrics[] };
    assert.ok(v1.items.every((i) => i.route === undefined));
    // A resource's own item: everything it received, measured where it was received.
    const own = get('/v1alpha1/namespaces/shop/deployments/api').body as TrafficMetrics;
    assert.deepEqual(own.edge, { direction: 'from', side: 'server', resource: {} });
    const svc = get('/v1alpha1/namespaces/shop/services/api').body as TrafficMetrics;
    assert.deepEqual(svc.edge, { direction: 'from', side: 'client', resource: {} });
  });

  it('names an edge in the kind asked for when the Service maps to one such resource', () => {
    const e = get('/v1alpha1/namespaces/shop/deployments/web/edges').body as { items: TrafficMetrics[] };
    assert.equal(e.items.length, 1);
    assert.deepEqual(e.items[0]!.edge, {
      direction: 'to',
      side: 'client',
      resource: { kind: 'Deployment', namespace: 'shop', name: 'api' },
    });
    assert.equal(n(e.items[0]!, 'failure_count'), '1');
    // Two pods behind the Service: a pod edge names the Service.
    const p = get('/v1alpha1/namespaces/shop/pods/web-7c6b5d4f9-xyzab/edges').body as {
      items: TrafficMetrics[];
    };
    assert.deepEqual(p.items[0]!.edge.resource, { kind: 'Service', namespace: 'shop', name: 'api' });
    const dot = topologyDot(topologyEdges([e], 'Deployment'));
    assert.match(dot, /"shop\/web" -> "shop\/api" \[label="50\.00% /);
  });

  it('filters lists by label selector, and says what is wrong with a request', () => {
    const l = get('/v1alpha1/namespaces/shop/pods', { labelSelector: 'app=api' }).body as {
      items: TrafficMetrics[];
    };
    assert.equal(l.items.length, 2);
    const set = get('/v1alpha1/namespaces/shop/pods', {
      labelSelector: 'app in (api, db),pod-template-hash notin (x)',
    });
    assert.equal((set.body as { items: TrafficMetrics[] }).items.length, 2);
    assert.deepEqual((set.body as { selector: unknown }).selector, {
      matchExpressions: [
        { key: 'app', operator: 'In', values: ['api', 'db'] },
        { key: 'pod-template-hash', operator: 'NotIn', values: ['x'] },
      ],
    });
    const none = get('/v1alpha1/namespaces/shop/pods', { labelSelector: 'app notin (api,web)' });
    assert.equal((none.body as { items: TrafficMetrics[] }).items.length, 0);
    assert.equal(get('/v1alpha1/namespaces/shop/pods', { labelSelector: 'app ~ a' }).status, 400);
    assert.equal(get('/v1alpha1/namespaces/shop/pods', { window: 'soon' }).status, 400);
    const missing = get('/v1alpha1/namespaces/shop/pods/nope');
    assert.equal(missing.status, 404);
    assert.match((missing.body as { message: string }).message, /not in the mesh/);
    assert.equal(get('/v9/pods').status, 404);
    const hidden = answer('/v1alpha1/namespaces/shop/pods', {}, { ...ctx, visible: () => false });
    assert.equal(hidden.status, 403);
    // Across namespaces, a caller sees the namespaces it may read and nothing else.
    const across = answer('/v1alpha1/pods', {}, { ...ctx, visible: (ns) => ns !== 'shop' });
    assert.deepEqual([across.status, (across.body as { items: unknown[] }).items.length], [200, 0]);
    // Services are selected by their own labels.
    const names = (q: string): string[] =>
      (
        get('/v1alpha1/namespaces/shop/services', { labelSelector: q }).body as { items: TrafficMetrics[] }
      ).items.map((i) => i.resource.name ?? '');
    assert.deepEqual(names('tier=front'), ['api']);
    assert.deepEqual(names('tier=back'), []);
    assert.deepEqual(names('tier!=front'), []);
  });

  it('selects TrafficSplits and Services by their own labels (MeshModel.objectLabels)', () => {
    const svc = (name: string, labels: Record<string, string>) => ({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, namespace: 'ab', labels },
      spec: { clusterIP: `10.96.1.${name.length}`, selector: { app: name }, ports: [{ port: 80 }] },
    });
    const m = buildModel([
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ab' } },
      svc('store', { tier: 'front' }),
      svc('store-v1', { tier: 'back' }),
      svc('store-v22', {}),
      ...['store-split', 'other-split'].map((name, i) => ({
        apiVersion: 'split.smi-spec.io/v1alpha4',
        kind: 'TrafficSplit',
        metadata: { name, namespace: 'ab', labels: { track: i === 0 ? 'stable' : 'canary' } },
        spec: {
          service: i === 0 ? 'store' : 'store-v1',
          backends: [{ service: 'store-v22', weight: 1 }],
        },
      })),
    ] as never).model;
    const c = { model: m, store: new MetricsStore(), now: 100_000, visible: () => true };
    const names = (plural: string, q: string): string[] =>
      (
        answer(`/v1alpha2/namespaces/ab/${plural}`, { labelSelector: q }, c).body as {
          items: TrafficMetrics[];
        }
      ).items.map((i) => i.resource.name ?? '');
    assert.deepEqual(names('trafficsplits', 'track=stable'), ['store-split']);
    assert.deepEqual(names('trafficsplits', 'track in (stable,canary)'), ['other-split', 'store-split']);
    assert.deepEqual(names('trafficsplits', 'tier=front'), []);
    assert.deepEqual(names('services', 'tier'), ['store', 'store-v1']);
    assert.deepEqual(names('services', 'tier=back'), ['store-v1']);
    assert.deepEqual(names('services', '!tier'), ['store-v22']);
  });

  it('groups pods by owner reference and node: ReplicationControllers, Nodes, ReplicaSets', () => {
    const pod = (name: string, node: string, owner: { kind: string; name: string }, labels = {}) => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: 'ops', labels, ownerReferences: [{ ...owner, controller: true }] },
      spec: { nodeName: node, containers: [{ name: 'app', image: 'x' }] },
      status: { phase: 'Running', podIP: `10.2.0.${name.length}${name.charCodeAt(name.length - 1) % 10}` },
    });
    const m = buildModel([
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ops' } },
      pod('legacy-x1', 'node-a', { kind: 'ReplicationController', name: 'legacy' }),
      pod('legacy-y22', 'node-b', { kind: 'ReplicationController', name: 'legacy' }),
      // A Deployment's pod through its ReplicaSet, named unlike the usual pattern.
      pod('odd-name', 'node-a', { kind: 'ReplicaSet', name: 'web-6f7d' }, { 'pod-template-hash': '6f7d' }),
    ] as never).model;
    const s = new MetricsStore();
    for (const [p, n] of [
      ['legacy-x1', 2],
      ['legacy-y22', 3],
      ['odd-name', 5],
    ] as const)
      s.add({ kind: 'in', pod: `ops/${p}`, service: '' }, now - 1000, { success: n });
    const c = { model: m, store: s, now, visible: () => true };
    const one = (path: string): TrafficMetrics => answer(path, {}, c).body as TrafficMetrics;
    assert.equal(n(one('/v1alpha1/namespaces/ops/replicationcontrollers/legacy'), 'success_count'), '5');
    assert.deepEqual(one('/v1alpha1/nodes/node-a').resource, { kind: 'Node', name: 'node-a' });
    assert.equal(n(one('/v1alpha1/nodes/node-a'), 'success_count'), '7');
    assert.equal(n(one('/v1alpha1/nodes/node-b'), 'success_count'), '3');
    assert.equal(n(one('/v1alpha1/namespaces/ops/deployments/web'), 'success_count'), '5');
    assert.equal(n(one('/v1alpha1/namespaces/ops/replicasets/web-6f7d'), 'success_count'), '5');
    const nodes = answer('/v1alpha1/nodes', {}, c).body as { items: TrafficMetrics[] };
    assert.deepEqual(
      nodes.items.map((i) => i.resource.name),
      ['node-a', 'node-b'],
    );
    // Node figures sum pods of every namespace: a caller that may not read them all sees none.
    const partial = answer('/v1alpha1/nodes/node-a', {}, { ...c, visible: (ns) => ns === 'ops' });
    assert.equal(partial.status, 403);
    // Nodes are cluster-scoped: under a namespace's path there is no such resource, and the
    // aggregated API asks the API server about them at the cluster scope.
    assert.equal(answer('/v1alpha1/namespaces/ops/nodes/node-a', {}, c).status, 404);
    assert.equal(answer('/v1alpha1/namespaces/ops/nodes/node-a/edges', {}, c).status, 404);
    assert.equal(answer('/v1alpha1/namespaces/ops/nodes', {}, c).status, 404);
    assert.deepEqual(accessAttributes('/v1alpha1/namespaces/ops/nodes/node-a'), {
      verb: 'get',
      version: 'v1alpha1',
      resource: 'nodes',
      name: 'node-a',
    });
  });
});

/**
 * Traffic metrics from real sidecars: Envoy's metrics service sink streams each sidecar's stats to
 * Weft (as the injected bootstrap sets it up), and the SMI TrafficMetrics API on Weft's admin
 * server answers from them. A known number of calls with known status codes (the app answers 503
 * when asked) and a known delay (injected by Envoy's fault filter in store-v1's sidecar, through an
 * EnvoyPatch) must come back as exact success and failure counts, and as percentiles inside the
 * histogram bucket that holds the delay.
 *
 * Pods: buyer (client), store-v1 and store-v2 (servers), from the Envoy tier's manifests; the
 * Service `store` splits 90/10 over the other two, so which backend got each split call is up to
 * Envoy, and the assertions hold for any share.
 *
 * Needs root, ip, iptables, unshare, setpriv and Envoy; skips saying what is missing otherwise.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { findEnvoy, NO_ENVOY } from '../../src/envoy/binary';
import { setLogLevel } from '../../src/log';
import { parseSecondsQuantity, type TrafficMetrics } from '../../src/metrics/api';
import type { EnvoyMesh } from '../../src/netns/mesh';
import { netnsUnavailable } from '../../src/netns/system';
import { type ShopMesh, startShopMesh } from './metrics-fixture';
import { PORT, STORE_SPLIT, type TierAddresses } from './tier-fixture';

setLogLevel(process.env.WEFT_LOG_LEVEL === 'debug' ? 'debug' : 'silent');

const envoy = findEnvoy();
const missing =
  [netnsUnavailable(), envoy ? undefined : NO_ENVOY].filter((r) => r !== undefined).join('; ') || undefined;

const ROOT = join(__dirname, '..', '..', '..');

/** Runs the `weft` CLI as a user would, in a child process. */
function weft(args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(ROOT, 'bin', 'weft.js'), ...args], (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, out: stdout, err: stderr }),
    );
  });
}

const API = '/apis/metrics.smi-spec.io';

/** Calls of each kind buyer makes to store-v1, and to the split service store. */
const FAST = 12;
const FAILED = 4;
const SLOW = 4;
const DELAY_MS = 300;
const SPLIT = 10;

/**
 * An EnvoyPatch putting Envoy's fault filter in store-v1's inbound HTTP chains, before the router:
 * a request carrying `x-envoy-fault-delay-request: <ms>` waits that long in the sidecar before it
 * goes on to the app. Inside the connection manager and outside the route's upstream request, the
 * delay shows in the caller's and the pod's own figures, and not in the route's.
 */
/**
 * The shop's 90/10 split as an A/B test: only requests with `x-ab: canary` are split (the calls to
 * `store` here all carry it), so buyer's sidecar counts them on the match's route too.
 */
const AB_SPLIT = `${STORE_SPLIT.trimEnd()}
  matches: [{ kind: HTTPRouteGroup, name: ab-test }]
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: { name: ab-test, namespace: shop }
spec:
  matches:
    - { name: canary, headers: [{ x-ab: canary }] }
`;

const FAULT_PATCH = `apiVersion: weft.dev/v1alpha1
kind: EnvoyPatch
metadata: { name: store-v1-delays, namespace: shop }
spec:
  selector: { matchLabels: { app: store, version: v1 } }
  patches:
    - target: { type: Listener, name: inbound }
      insertHttpFilter:
        before: envoy.filters.http.router
        filter:
          name: delay-on-request
          typed_config:
            "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
            delay: { header_delay: {}, percentage: { numerator: 100, denominator: HUNDRED } }
`;

interface MetricsList {
  kind: string;
  items: TrafficMetrics[];
}

function metric(t: TrafficMetrics, name: string): string | undefined {
  return t.metrics.find((m) => m.name === name)?.value;
}

function count(t: TrafficMetrics, name: 'success_count' | 'failure_count'): number {
  return Number(metric(t, name) ?? Number.NaN);
}

function latencyMs(t: TrafficMetrics, q: 50 | 90 | 99): number {
  const v = metric(t, `p${q}_response_latency`);
  assert.ok(v, `p${q} latency in ${JSON.stringify(t.metrics)}`);
  return parseSecondsQuantity(v);
}

describe('Traffic metrics from real Envoy sidecars', { skip: missing }, () => {
  let shop: ShopMesh;
  let mesh: EnvoyMesh;
  let A: TierAddresses;

  const get = async <T>(path: string): Promise<{ status: number; body: T }> => {
    const res = await fetch(`${mesh.weft.adminUrl}${API}${path}`, { signal: AbortSignal.timeout(5000) });
    return { status: res.status, body: (await res.json()) as T };
  };

  /** Polls `path` until `done` holds (stats arrive every flush interval, 5 s by default). */
  const until = async <T>(path: string, done: (b: T) => boolean, ms = 60_000): Promise<T> => {
    const end = Date.now() + ms;
    let last: unknown;
    for (;;) {
      const r = await get<T>(path);
      last = r.body;
      if (r.status === 200 && done(r.body)) return r.body;
      if (Date.now() > end)
        throw new Error(`${path} never satisfied the test within ${ms} ms: ${JSON.stringify(last)}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  };

  before(async () => {
    shop = await startShopMesh({
      network: process.env.WEFT_METRICS_NETWORK ?? 'tm',
      envoyBinary: envoy!,
      manifests: { '30-split.yaml': AB_SPLIT, '40-fault.yaml': FAULT_PATCH },
    });
    mesh = shop.mesh;
    A = shop.addresses;
    const buyer = shop.pods.get('buyer')!.app!;
    const call = async (
      host: string,
      path: string,
      n: number,
      status: number,
      headers: Record<string, string> = {},
    ): Promise<void> => {
      const out = await buyer.call({
        op: 'http',
        protocol: 'http1',
        host,
        port: PORT.http1,
        path,
        n,
        headers,
      });
      for (const o of out) assert.ok(o.ok && o.status === status, `${host}${path}: ${JSON.stringify(o)}`);
    };
    await call(A.services['store-v1'], '/open', FAST, 200);
    await call(A.services['store-v1'], '/open?status=503', FAILED, 503);
    // Delayed by Envoy's fault filter in store-v1's sidecar, as the request header asks.
    await call(A.services['store-v1'], '/open', SLOW, 200, {
      'x-envoy-fault-delay-request': String(DELAY_MS),
    });
    await call(A.services.store, '/open', SPLIT, 200, { 'x-ab': 'canary' });
  });

  after(async () => {
    await shop?.stop();
  });

  it('counts every call on its edge exactly, client side, and names the destination pod', async () => {
    const list = await until<MetricsList>('/v1alpha1/namespaces/shop/pods/buyer/edges?window=5m', (b) => {
      const sum = (n: 'success_count' | 'failure_count'): number =>
        b.items.filter((i) => i.edge.direction === 'to').reduce((a, i) => a + count(i, n), 0);
      return sum('success_count') >= FAST + SLOW + SPLIT && sum('failure_count') >= FAILED;
    });
    const to = (pod: string): TrafficMetrics | undefined =>
      list.items.find((i) => i.edge.direction === 'to' && i.edge.resource?.name === pod);
    const v1 = to('store-v1');
    assert.ok(v1, `an edge to store-v1: ${JSON.stringify(list.items.map((i) => i.edge))}`);
    assert.deepEqual(v1.edge.resource, { kind: 'Pod', namespace: 'shop', name: 'store-v1' });
    const v2 = to('store-v2');
    const split1 = count(v1, 'success_count') - FAST - SLOW;
    const split2 = v2 ? count(v2, 'success_count') : 0;
    assert.ok(split1 >= 0, `store-v1 got at least the direct calls: ${JSON.stringify(v1.metrics)}`);
    assert.equal(split1 + split2, SPLIT, 'the split calls, each counted once on one backend');
    assert.equal(count(v1, 'failure_count'), FAILED, 'the 503s are failures');
    if (v2) assert.equal(count(v2, 'failure_count'), 0);
    // 4 of at most 30 calls took 300 ms: p90 and p99 lie in Envoy's (250 ms, 500 ms] bucket, p50
    // below it.
    for (const q of [90, 99] as const) {
      const ms = latencyMs(v1, q);
      assert.ok(ms > 250 && ms <= 500, `p${q} ${ms} ms within the bucket of the ${DELAY_MS} ms delay`);
    }
    assert.ok(latencyMs(v1, 50) <= 250, `p50 ${latencyMs(v1, 50)} ms below the delayed calls' bucket`);
    // From the other side: store-v1's edges show buyer as a source, with the same counts.
    const back = await get<MetricsList>('/v1alpha1/namespaces/shop/pods/store-v1/edges?window=5m');
    const fromBuyer = back.body.items.find(
      (i) => i.edge.direction === 'from' && i.edge.resource?.name === 'buyer',
    );
    assert.ok(fromBuyer, JSON.stringify(back.body));
    assert.equal(count(fromBuyer, 'success_count'), count(v1, 'success_count'));
    assert.equal(count(fromBuyer, 'failure_count'), FAILED);
  });

  it('counts what each pod received on its own sidecar (server side), the same numbers', async () => {
    const edges = await get<MetricsList>('/v1alpha1/namespaces/shop/pods/buyer/edges?window=5m');
    const v1Edge = edges.body.items.find(
      (i) => i.edge.direction === 'to' && i.edge.resource?.name === 'store-v1',
    )!;
    const v1 = await until<TrafficMetrics>(
      '/v1alpha1/namespaces/shop/pods/store-v1?window=5m',
      (b) =>
        count(b, 'success_count') >= count(v1Edge, 'success_count') && count(b, 'failure_count') >= FAILED,
    );
    assert.equal(v1.kind, 'TrafficMetrics');
    assert.deepEqual(v1.resource, { kind: 'Pod', namespace: 'shop', name: 'store-v1' });
    assert.equal(v1.window, '5m0s');
    assert.equal(count(v1, 'success_count'), count(v1Edge, 'success_count'));
    assert.equal(count(v1, 'failure_count'), FAILED);
    const p99 = latencyMs(v1, 99);
    assert.ok(p99 > 250 && p99 <= 500, `server-side p99 ${p99} ms in the delay's bucket`);
    // The list with a label selector holds only the pods that match.
    const list = await get<MetricsList>('/v1alpha1/namespaces/shop/pods?labelSelector=app%3Dstore&window=5m');
    assert.equal(list.status, 200);
    assert.deepEqual(list.body.items.map((i) => i.resource.name).sort(), ['store-v1', 'store-v2']);
    // buyer received nothing: its own item has zero counts and no latencies.
    const buyer = await get<TrafficMetrics>('/v1alpha1/namespaces/shop/pods/buyer?window=5m');
    assert.equal(count(buyer.body, 'success_count'), 0);
    assert.equal(metric(buyer.body, 'p50_response_latency'), undefined);
  });

  it("breaks a pod's traffic down by route (v1alpha2): each HTTPRouteGroup match, counted server side", async () => {
    const own = await get<TrafficMetrics>('/v1alpha2/namespaces/shop/pods/store-v1?window=5m');
    assert.equal(own.status, 200);
    assert.deepEqual(own.body.edge, { direction: 'from', side: 'server', resource: {} });
    // Every call store-v1 received was allowed by the `open` match of store-paths, and took its
    // route: the route's figures are the pod's own.
    const edges = await until<MetricsList>('/v1alpha2/namespaces/shop/pods/store-v1/edges?window=5m', (b) => {
      const r = b.items.find((i) => i.route !== undefined);
      return r !== undefined && count(r, 'success_count') >= count(own.body, 'success_count');
    });
    const routes = edges.items.filter((i) => i.route !== undefined);
    assert.deepEqual(
      routes.map((i) => [i.route, i.edge]),
      [['store-paths/open', { direction: 'from', side: 'server', resource: {} }]],
    );
    const open = routes[0]!;
    assert.equal(count(open, 'success_count'), count(own.body, 'success_count'));
    assert.equal(count(open, 'failure_count'), FAILED, 'the 503s are failures on the route too');
    // The route times its upstream request, to the app: the fault filter's delay came before it.
    const p99 = latencyMs(open, 99);
    assert.ok(p99 <= 250, `the route's p99 ${p99} ms below the delay's bucket`);
    for (const i of edges.items.filter((x) => x.route === undefined))
      assert.equal(
        i.edge.side,
        'client',
        `edges between pods are measured client side: ${JSON.stringify(i.edge)}`,
      );
    // Routes are v1alpha2's.
    const v1 = await get<MetricsList>('/v1alpha1/namespaces/shop/pods/store-v1/edges?window=5m');
    assert.ok(v1.body.items.length > 0);
    assert.ok(v1.body.items.every((i) => i.route === undefined));
    // buyer received nothing, so it has no routes.
    const buyer = await get<MetricsList>('/v1alpha2/namespaces/shop/pods/buyer/edges?window=5m');
    assert.deepEqual(
      buyer.body.items.filter((i) => i.route !== undefined),
      [],
    );
  });

  it('shows the TrafficSplit (v1alpha2): the calls to its root, and one edge per backend with its weight', async () => {
    const split = await until<TrafficMetrics>(
      '/v1alpha2/namespaces/shop/trafficsplits/store-split?window=5m',
      (b) => count(b, 'success_count') >= SPLIT,
    );
    assert.equal(count(split, 'success_count'), SPLIT);
    assert.equal(count(split, 'failure_count'), 0);
    const edges = await get<MetricsList>(
      '/v1alpha2/namespaces/shop/trafficsplits/store-split/edges?window=5m',
    );
    assert.deepEqual(
      edges.body.items.filter((i) => i.backend).map((i) => i.backend),
      [
        { apex: 'store', name: 'store-v1', weight: 90 },
        { apex: 'store', name: 'store-v2', weight: 10 },
      ],
    );
    // As the spec's example: the edge is the calls the split received, seen by the callers.
    for (const i of edges.body.items)
      assert.deepEqual(i.edge, { direction: 'from', side: 'client', resource: {} });
    // The A/B match's route, counted by buyer's sidecar: every split call carried the header.
    const canary = edges.body.items.filter((i) => i.route !== undefined);
    assert.deepEqual(
      canary.map((i) => [i.route, count(i, 'success_count'), count(i, 'failure_count')]),
      [['ab-test/canary', SPLIT, 0]],
    );
    const missing = await get<unknown>('/v1alpha1/namespaces/shop/trafficsplits/store-split');
    assert.equal(missing.status, 404, 'trafficsplits are v1alpha2 only');
  });

  it('weft top and weft topology print what the API holds (table, JSON, text and DOT)', async () => {
    const url = mesh.weft.adminUrl!;
    const json = await weft(['top', 'pods', '--admin-url', url, '--in', 'shop', '-w', '5m', '-o', 'json']);
    assert.equal(json.code, 0, json.err);
    const rows = JSON.parse(json.out) as { name: string; success: number; failure: number; p99?: number }[];
    const v1 = rows.find((r) => r.name === 'store-v1');
    const v2 = rows.find((r) => r.name === 'store-v2');
    assert.ok(v1 && v2, json.out);
    assert.equal(v1.success + v2.success, FAST + SLOW + SPLIT);
    assert.equal(v1.failure, FAILED);
    assert.ok(v1.p99 !== undefined && v1.p99 > 250 && v1.p99 <= 500, json.out);
    const table = await weft(['top', 'pods', '--admin-url', url, '-w', '5m']);
    assert.equal(table.code, 0, table.err);
    assert.match(table.out, /^NAMESPACE\s+NAME\s+SUCCESS\s+RPS\s+LATENCY_P50\s+LATENCY_P90\s+LATENCY_P99$/m);
    const successV1 = Math.round((10000 * v1.success) / (v1.success + FAILED)) / 100;
    assert.match(
      table.out,
      new RegExp(`^shop\\s+store-v1\\s+${successV1.toFixed(2).replace('.', '\\.')}%`, 'm'),
    );
    // --routes: a row per route under each pod (store-v1's calls all took store-paths/open).
    const routed = await weft([
      'top',
      'pods',
      '--admin-url',
      url,
      '--in',
      'shop',
      '-w',
      '5m',
      '--routes',
      '-o',
      'json',
    ]);
    assert.equal(routed.code, 0, routed.err);
    const routedRows = JSON.parse(routed.out) as { name: string; success: number; failure: number }[];
    const at = routedRows.findIndex((r) => r.name === 'store-v1');
    assert.deepEqual(routedRows[at + 1], {
      ...routedRows[at + 1],
      name: '  route store-paths/open',
      failure: FAILED,
    });
    assert.equal(routedRows[at + 1]!.success, v1.success);
    const splits = await weft(['top', 'trafficsplits', '--admin-url', url, '-w', '5m']);
    assert.equal(splits.code, 0, splits.err);
    assert.match(splits.out, /^shop\s+store-split\s+100\.00%/m);
    assert.match(splits.out, /store-v1 \(weight 90\)/);
    assert.doesNotMatch(splits.out, /route/);
    const abRoutes = await weft(['top', 'trafficsplits', '--admin-url', url, '-w', '5m', '--routes']);
    assert.equal(abRoutes.code, 0, abRoutes.err);
    assert.match(abRoutes.out, /^shop\s+route ab-test\/canary\s+100\.00%/m);
    // The split's root service counts what was addressed to it, whichever backend took it.
    const services = await weft([
      'top',
      'services',
      '--admin-url',
      url,
      '--in',
      'shop',
      '-w',
      '5m',
      '-o',
      'json',
    ]);
    assert.equal(services.code, 0, services.err);
    const store = (JSON.parse(services.out) as { name: string; success: number }[]).find(
      (r) => r.name === 'store',
    );
    assert.equal(store?.success, SPLIT, services.out);
    const text = await weft(['topology', 'pods', '--admin-url', url, '-w', '5m']);
    assert.equal(text.code, 0, text.err);
    assert.match(text.out, /^shop\/buyer\s+-->\s+shop\/store-v1\s/m);
    const dot = await weft(['topology', 'pods', '--admin-url', url, '-w', '5m', '-o', 'dot']);
    assert.equal(dot.code, 0, dot.err);
    assert.match(dot.out, /^digraph weft \{/);
    assert.match(dot.out, /"shop\/buyer" -> "shop\/store-v1" \[label="/);
    const bad = await weft(['top', 'gadgets', '--admin-url', url]);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /unknown kind "gadgets"/);
  });
});

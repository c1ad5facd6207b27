/**
 * TrafficMetrics from a real Prometheus instead of the stats sink: Prometheus scrapes the real
 * sidecars' `:15090/stats/prometheus` (as a cluster that already scrapes them would, with
 * `namespace` and `pod` labels), and Weft, started with a Prometheus URL, reads the counts from it.
 * The same known calls as the sink's test must come back as the same exact counts, and the
 * sidecars, injected for this source, stream nothing to Weft.
 *
 * Needs root, network namespaces, Envoy and a Prometheus binary (WEFT_PROMETHEUS_BIN, else
 * `prometheus` on PATH; Debian's package `prometheus`); skips saying what is missing otherwise.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { findEnvoy, NO_ENVOY } from '../../src/envoy/binary';
import { SIDECAR } from '../../src/inject/bootstrap';
import { setLogLevel } from '../../src/log';
import type { TrafficMetrics } from '../../src/metrics/api';
import { freePort } from '../../src/net';
import type { EnvoyMesh } from '../../src/netns/mesh';
import { netnsUnavailable } from '../../src/netns/system';
import { type ShopMesh, startShopMesh } from './metrics-fixture';
import { PORT, type TierPod } from './tier-fixture';

setLogLevel(process.env.WEFT_LOG_LEVEL === 'debug' ? 'debug' : 'silent');

function findPrometheus(): string | undefined {
  if (process.env.WEFT_PROMETHEUS_BIN) return process.env.WEFT_PROMETHEUS_BIN;
  try {
    return execFileSync('sh', ['-c', 'command -v prometheus'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

const envoy = findEnvoy();
const prometheus = findPrometheus();
const missing =
  [
    netnsUnavailable(),
    envoy ? undefined : NO_ENVOY,
    prometheus ? undefined : 'no Prometheus binary (WEFT_PROMETHEUS_BIN, or apt-get install prometheus)',
  ]
    .filter((r) => r !== undefined)
    .join('; ') || undefined;

const RUNNING: readonly TierPod[] = ['buyer', 'store-v1', 'store-v2'];
const OK = 15;
const FAILED = 5;

interface MetricsList {
  items: TrafficMetrics[];
}

const count = (t: TrafficMetrics | undefined, n: string): number =>
  Number(t?.metrics.find((m) => m.name === n)?.value ?? Number.NaN);

describe('Traffic metrics from a real Prometheus scraping real sidecars', { skip: missing }, () => {
  let shop: ShopMesh;
  let mesh: EnvoyMesh;
  let prom: ChildProcess | undefined;
  let promUrl: string;

  const get = async <T>(path: string): Promise<T> => {
    const res = await fetch(`${mesh.weft.adminUrl}/apis/metrics.smi-spec.io${path}`);
    assert.equal(res.status, 200, path);
    return (await res.json()) as T;
  };

  before(async () => {
    const promPort = await freePort();
    promUrl = `http://127.0.0.1:${promPort}`;
    shop = await startShopMesh({
      network: process.env.WEFT_METRICS_NETWORK ?? 'tp',
      envoyBinary: envoy!,
      serve: { prometheusUrl: promUrl, prometheusIntervalMs: 1000 },
      // Prometheus scrapes each pod's stats port on its pod IP, labelling the series as Kubernetes
      // service discovery with the usual relabelling would.
      beforeStart: (A, work) => {
        const scrape = RUNNING.map(
          (p) =>
            `      - targets: ["${A.pods[p]}:${SIDECAR.statsPort}"]\n        labels: { namespace: shop, pod: ${p} }`,
        ).join('\n');
        writeFileSync(
          join(work, 'prometheus.yml'),
          `global: { scrape_interval: 1s, scrape_timeout: 1s }
scrape_configs:
  - job_name: sidecars
    metrics_path: /stats/prometheus
    static_configs:
${scrape}
`,
        );
        prom = spawn(
          prometheus!,
          [
            `--config.file=${join(work, 'prometheus.yml')}`,
            `--storage.tsdb.path=${join(work, 'tsdb')}`,
            `--web.listen-address=127.0.0.1:${promPort}`,
          ],
          { stdio: 'ignore' },
        );
      },
    });
    mesh = shop.mesh;
    const A = shop.addresses;
    // Counting starts at Weft's first answer from Prometheus (its baseline): call after it.
    const source = mesh.weft.trafficMetrics!.prometheus!;
    for (const end = Date.now() + 60_000; source.stats.polls === 0; ) {
      if (Date.now() > end) throw new Error(`Weft never got an answer from Prometheus at ${promUrl}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const buyer = shop.pods.get('buyer')!.app!;
    for (const [path, n, status] of [
      ['/open', OK, 200],
      ['/open?status=503', FAILED, 503],
    ] as const) {
      const out = await buyer.call({
        op: 'http',
        protocol: 'http1',
        host: A.services['store-v1'],
        port: PORT.http1,
        path,
        n,
      });
      for (const o of out) assert.ok(o.ok && o.status === status, JSON.stringify(o));
    }
  });

  after(async () => {
    if (prom && prom.exitCode === null) {
      const exited = new Promise((r) => prom!.once('exit', r));
      prom.kill('SIGTERM');
      await exited;
    }
    await shop?.stop();
  });

  it('counts the calls exactly on the edge and on the server side, with no stats streamed to Weft', async () => {
    const end = Date.now() + 60_000;
    let edge: TrafficMetrics | undefined;
    let server: TrafficMetrics | undefined;
    for (;;) {
      const edges = await get<MetricsList>('/v1alpha1/namespaces/shop/pods/buyer/edges?window=5m');
      edge = edges.items.find((i) => i.edge.direction === 'to' && i.edge.resource?.name === 'store-v1');
      server = await get<TrafficMetrics>('/v1alpha1/namespaces/shop/pods/store-v1?window=5m');
      const done =
        count(edge, 'success_count') >= OK &&
        count(edge, 'failure_count') >= FAILED &&
        count(server, 'success_count') >= OK &&
        count(server, 'failure_count') >= FAILED &&
        // Envoy merges histograms at its stats flush (5 s), so buckets show up after the counters.
        (edge?.metrics.some((m) => m.name === 'p99_response_latency') ?? false);
      if (done) break;
      if (Date.now() > end) {
        const q = await fetch(
          `${promUrl}/api/v1/query?query=${encodeURIComponent('envoy_cluster_upstream_rq_xx')}`,
        );
        throw new Error(
          `never counted within 60 s: edge ${JSON.stringify(edge?.metrics)}, server ${JSON.stringify(server?.metrics)}; Prometheus has ${(await q.text()).slice(0, 2000)}`,
        );
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
    assert.equal(count(edge, 'success_count'), OK);
    assert.equal(count(edge, 'failure_count'), FAILED);
    assert.equal(count(server, 'success_count'), OK);
    assert.equal(count(server, 'failure_count'), FAILED);
    assert.ok(
      edge?.metrics.some((m) => m.name === 'p99_response_latency'),
      'latency from the histogram buckets',
    );
    assert.equal(mesh.weft.trafficMetrics!.sink.stats.messages, 0, 'the sidecars streamed no stats');
    // The route series come from Prometheus too (Envoy's `envoy_route` label): every call took
    // store-paths' `open` match.
    let route: TrafficMetrics | undefined;
    for (const until = Date.now() + 30_000; ; ) {
      const edges = await get<MetricsList>('/v1alpha2/namespaces/shop/pods/store-v1/edges?window=5m');
      route = edges.items.find((i) => i.route === 'store-paths/open');
      if (count(route, 'success_count') >= OK && count(route, 'failure_count') >= FAILED) break;
      if (Date.now() > until) throw new Error(`no route figures within 30 s: ${JSON.stringify(edges.items)}`);
      await new Promise((r) => setTimeout(r, 1000));
    }
    assert.equal(count(route, 'success_count'), OK);
    assert.equal(count(route, 'failure_count'), FAILED);
  });
});

/**
 * Traffic metrics without Prometheus: the sidecars stream their stats to Weft's metrics sink
 * (sink.ts), Weft keeps a bounded window per series (store.ts) and answers the SMI Traffic
 * Metrics API from it (api.ts), on the admin server and as a Kubernetes aggregated API.
 */
import type { ServerDuplexStream } from '@grpc/grpc-js';
import type { Metrics } from '../admin/metrics';
import type { MeshModel } from '../smi/model';
import type { AdsServer } from '../xds/server/ads-server';
import { MetricsSink } from './sink';
import { MetricsStore, type StoreOptions } from './store';

export { answer, apiGroup, GROUP, KINDS, type TrafficMetrics, VERSIONS } from './api';
export { MetricsSink } from './sink';
export { MetricsStore } from './store';

/** Traffic metrics as `weft serve` runs them. */
export interface TrafficMetricsRuntime {
  readonly store: MetricsStore;
  readonly sink: MetricsSink;
  /** The model the API resolves resources in. */
  model(): MeshModel | undefined;
  stop(): void;
}

/**
 * Serves the metrics sink on the xDS server's port (call before it listens) and returns the store.
 * With `mtls`, a stream's node id must name a pod whose ServiceAccount identity is the one the
 * peer's certificate proves.
 */
export function startTrafficMetrics(
  xds: AdsServer,
  model: () => MeshModel | undefined,
  o: { mtls: boolean; store?: StoreOptions },
): TrafficMetricsRuntime {
  const store = new MetricsStore(o.store);
  const sink = new MetricsSink({
    store,
    verify: (nodeId, call) => {
      if (!o.mtls) return undefined;
      const [namespace, name] = nodeId.split('/');
      const pod = model()?.workloads.find(
        (w) => w.kind === 'Pod' && w.namespace === namespace && w.name === name,
      );
      if (!pod) return `no pod ${nodeId} in the mesh`;
      const proven = xds.peerIdentity(call as unknown as ServerDuplexStream<unknown, unknown>);
      if (proven !== pod.identity)
        return `the certificate proves ${proven ?? 'no identity'}, pod ${nodeId} runs as ${pod.identity}`;
      return undefined;
    },
  });
  xds.alsoServe((server) => server.addService(sink.definition(), { StreamMetrics: sink.handler }));
  // Idle series go when their last slot leaves the window, not only when traffic comes back.
  const timer = setInterval(() => store.expire(Date.now()), 60_000);
  timer.unref();
  return { store, sink, model, stop: () => clearInterval(timer) };
}

/** Registers the sink's and the store's own metrics. */
export function registerTrafficMetrics(metrics: Metrics, rt: TrafficMetricsRuntime): void {
  const s = rt.sink.stats;
  metrics.collect('weft_metrics_sink_streams', 'Sidecars streaming stats to Weft.', 'gauge', () => [
    { labels: {}, value: s.streams },
  ]);
  metrics.collect('weft_metrics_sink_received_bytes_total', 'Bytes of stats received.', 'counter', () => [
    { labels: {}, value: s.bytes },
  ]);
  metrics.collect('weft_metrics_sink_messages_total', 'Stats messages received.', 'counter', () => [
    { labels: {}, value: s.messages },
  ]);
  metrics.collect(
    'weft_metrics_sink_refused_total',
    'Stats streams refused (node id not proven by the certificate).',
    'counter',
    () => [{ labels: {}, value: s.refused }],
  );
  metrics.collect('weft_metrics_series', 'Traffic series held in the window.', 'gauge', () => [
    { labels: {}, value: rt.store.size },
  ]);
}

/**
 * TrafficMetrics from a Prometheus that already scrapes the sidecars (`:15090/stats/prometheus`),
 * instead of the stats sink: for clusters that ship Envoy's stats to Prometheus anyway and would
 * rather not send them twice.
 *
 * Every poll asks Prometheus (HTTP API, instant queries) for the current value of the counters and
 * histogram buckets the store keeps, per pod, and adds the difference from the previous poll to the
 * store, so counts are exact as far as the scrapes go (a counter that went down is a restarted
 * sidecar: its value counts whole). The first poll only takes the baseline. What Envoy calls them
 * in Prometheus (tags extracted into labels):
 *
 * | metric | labels | series |
 * |---|---|---|
 * | `envoy_cluster_upstream_rq_xx`, `envoy_cluster_upstream_rq_time_bucket` | `envoy_cluster_name="outbound_<port>_<ns>_<svc>"` | `out` |
 * | `envoy_http_downstream_rq_xx`, `envoy_http_downstream_rq_time_bucket` | `envoy_http_conn_manager_prefix="outbound_<port>_<ns>_<svc>"` | `apex` |
 * | the same | `envoy_http_conn_manager_prefix="inbound_<port>"` | `in` |
 * | `envoy_vhost_route_upstream_rq_xx`, `envoy_vhost_route_upstream_rq_time_bucket` | `envoy_virtual_host="inbound\|<port>"`, `envoy_route="<group>__<match>"` | `route` |
 * | the same | `envoy_virtual_host="<ns>/<svc>\|<port>"`, `envoy_route="<group>__<match>"` | `splitroute` |
 *
 * The pod is read from two labels the scrape configuration attaches (by default `namespace` and
 * `pod`, as the usual Kubernetes relabelling and the Prometheus operator's PodMonitors name them).
 */
import { logger } from '../log';
import type { MetricsStore, SeriesKey } from './store';

const log = logger('metrics');

/** Options of {@link PrometheusSource}. */
export interface PrometheusSourceOptions {
  /** Prometheus' base URL, e.g. `http://prometheus.monitoring:9090`. */
  url: string;
  store: MetricsStore;
  /** Labels naming the pod's namespace and name (default `namespace`, `pod`). */
  namespaceLabel?: string;
  podLabel?: string;
  /** How often to poll (default 10 s, about a scrape interval). */
  intervalMs?: number;
  now?: () => number;
}

interface VectorSample {
  metric: Record<string, string>;
  value: [number, string];
}

const QUERIES = {
  clusterRq: 'envoy_cluster_upstream_rq_xx{envoy_cluster_name=~"outbound_.+"}',
  clusterTime: 'envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=~"outbound_.+"}',
  hcmRq: 'envoy_http_downstream_rq_xx{envoy_http_conn_manager_prefix=~"(outbound|inbound)_.+"}',
  hcmTime: 'envoy_http_downstream_rq_time_bucket{envoy_http_conn_manager_prefix=~"(outbound|inbound)_.+"}',
  // Only routes with a stat prefix have statistics: Weft's inbound and split match routes.
  routeRq: 'envoy_vhost_route_upstream_rq_xx',
  routeTime: 'envoy_vhost_route_upstream_rq_time_bucket',
} as const;

/** Where a sample's series is named: a cluster, a connection manager, or a route. */
type Source = 'cluster' | 'hcm' | 'route';

const OUT = /^outbound_\d+_([a-z0-9-]+)_([a-z0-9-]+)$/;
const IN = /^inbound_\d+$/;

const VHOST_IN = /^inbound\|\d+$/;
const VHOST_OUT = /^([a-z0-9-]+)\/([a-z0-9-]+)\|\d+$/;

/**
 * The series a stat prefix (cluster, connection manager or route) of `pod` feeds, if any; a route
 * is placed by its virtual host (`vhost`).
 */
function seriesOf(pod: string, prefix: string, source: Source, vhost = ''): SeriesKey | undefined {
  if (source === 'route') {
    if (!/^[A-Za-z0-9_-]+$/.test(prefix)) return undefined;
    if (VHOST_IN.test(vhost)) return { kind: 'route', pod, service: '', route: prefix };
    const o = VHOST_OUT.exec(vhost);
    return o ? { kind: 'splitroute', pod, service: `${o[1]}/${o[2]}`, route: prefix } : undefined;
  }
  const hcm = source === 'hcm';
  const m = OUT.exec(prefix);
  if (m) return { kind: hcm ? 'apex' : 'out', pod, service: `${m[1]}/${m[2]}` };
  if (hcm && IN.test(prefix)) return { kind: 'in', pod, service: '' };
  return undefined;
}

/** See the module comment. */
export class PrometheusSource {
  /** Polls done, and failed. */
  readonly stats = { polls: 0, failures: 0 };
  private last = new Map<string, number>();
  private primed = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly now: () => number;

  constructor(private readonly o: PrometheusSourceOptions) {
    this.now = o.now ?? Date.now;
  }

  /** Polls now and then every interval. */
  start(): void {
    const tick = (): void => {
      void this.poll().finally(() => {
        this.timer = setTimeout(tick, this.o.intervalMs ?? 10_000);
        this.timer.unref();
      });
    };
    tick();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
  }

  private async query(q: string): Promise<VectorSample[]> {
    const url = new URL('/api/v1/query', this.o.url);
    url.searchParams.set('query', q);
    const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
    const body = (await res.json()) as {
      status?: string;
      error?: string;
      data?: { result?: VectorSample[] };
    };
    if (!res.ok || body.status !== 'success') throw new Error(`${q}: ${body.error ?? `HTTP ${res.status}`}`);
    return body.data?.result ?? [];
  }

  /** One poll: the deltas since the previous one go into the store. Resolves false on failure. */
  async poll(): Promise<boolean> {
    let results: VectorSample[][];
    try {
      results = await Promise.all([
        this.query(QUERIES.clusterRq),
        this.query(QUERIES.clusterTime),
        this.query(QUERIES.hcmRq),
        this.query(QUERIES.hcmTime),
        this.query(QUERIES.routeRq),
        this.query(QUERIES.routeTime),
      ]);
    } catch (err) {
      this.stats.failures++;
      log.warn('cannot read traffic metrics from Prometheus', {
        url: this.o.url,
        error: err instanceof Error ? err.message : String(err),
      });
      return false;
    }
    this.stats.polls++;
    const [clusterRq, clusterTime, hcmRq, hcmTime, routeRq, routeTime] = results as [
      VectorSample[],
      VectorSample[],
      VectorSample[],
      VectorSample[],
      VectorSample[],
      VectorSample[],
    ];
    const nsLabel = this.o.namespaceLabel ?? 'namespace';
    const podLabel = this.o.podLabel ?? 'pod';
    const next = new Map<string, number>();
    type Acc = { key: SeriesKey; success: number; failure: number; cumulative: Map<number, number> };
    const acc = new Map<string, Acc>();
    const delta = (id: string, value: number): number => {
      next.set(id, value);
      const before = this.last.get(id);
      if (!this.primed) return 0;
      // A new series, or a counter that went down (the sidecar restarted): all of it is new.
      return before === undefined || value < before ? value : value - before;
    };
    const accOf = (key: SeriesKey): Acc => {
      const id = `${key.kind}|${key.pod}|${key.service}|${key.route ?? ''}`;
      let a = acc.get(id);
      if (!a) {
        a = { key, success: 0, failure: 0, cumulative: new Map() };
        acc.set(id, a);
      }
      return a;
    };
    const walk = (samples: VectorSample[], source: Source, histogram: boolean): void => {
      for (const s of samples) {
        const ns = s.metric[nsLabel];
        const pod = s.metric[podLabel];
        const prefix =
          source === 'hcm'
            ? s.metric.envoy_http_conn_manager_prefix
            : source === 'cluster'
              ? s.metric.envoy_cluster_name
              : s.metric.envoy_route;
        if (!ns || !pod || !prefix) continue;
        const key = seriesOf(`${ns}/${pod}`, prefix, source, s.metric.envoy_virtual_host);
        if (!key) continue;
        const value = Number(s.value[1]);
        const id = `${source}|${ns}/${pod}|${source === 'route' ? `${s.metric.envoy_virtual_host}|` : ''}${prefix}|${histogram ? `le=${s.metric.le}` : `class=${s.metric.envoy_response_code_class}`}`;
        const d = delta(id, value);
        const a = accOf(key);
        if (histogram) {
          const le = s.metric.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(s.metric.le);
          a.cumulative.set(le, (a.cumulative.get(le) ?? 0) + d);
        } else if (s.metric.envoy_response_code_class === '5') a.failure += d;
        else a.success += d;
      }
    };
    walk(clusterRq, 'cluster', false);
    walk(clusterTime, 'cluster', true);
    walk(hcmRq, 'hcm', false);
    walk(hcmTime, 'hcm', true);
    walk(routeRq, 'route', false);
    walk(routeTime, 'route', true);
    const at = this.now();
    if (this.primed)
      for (const a of acc.values()) {
        const les = [...a.cumulative.keys()].sort((x, y) => x - y);
        const bounds = les.filter((l) => Number.isFinite(l));
        const buckets: number[] = [];
        let prev = 0;
        for (const le of les) {
          const c = a.cumulative.get(le) ?? 0;
          buckets.push(Math.max(0, c - prev));
          prev = Math.max(prev, c);
        }
        if (!les.some((l) => !Number.isFinite(l))) buckets.push(0);
        const hasLatency = buckets.some((b) => b > 0);
        if (a.success === 0 && a.failure === 0 && !hasLatency) continue;
        this.o.store.add(a.key, at, {
          success: a.success,
          failure: a.failure,
          ...(hasLatency ? { buckets, bounds } : {}),
        });
      }
    this.last = next;
    this.primed = true;
    return true;
  }
}

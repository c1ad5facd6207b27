/**
 * xDS benchmark: 1,000 services (a Listener, a RouteConfiguration, a Cluster and a
 * ClusterLoadAssignment with 5 endpoints each) in one proxy group, K simulated proxies in a child
 * process, state of the world and delta. For each change of one cluster it measures, on the
 * server: time until the last proxy ACKed the new clusters and the endpoint push that follows,
 * bytes sent, CPU seconds, and resources encoded; and resident memory per idle proxy.
 */
import { fork } from 'node:child_process';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ServerCredentials } from '@grpc/grpc-js';
import type { JsonObject, SnapshotInput } from '../src/xds/cache/snapshot';
import { envoyResourceEncoder } from '../src/xds/encoder';
import type { ProxyAck } from '../src/xds/proxy-state';
import { CLUSTER, ENDPOINT, LISTENER, ROUTE } from '../src/xds/resource-types';
import { AdsServer } from '../src/xds/server/ads-server';

const HCM =
  'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const ROUTER = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';

/** The 1,000-service input; `version` changes one cluster's stat name so one cluster differs. */
export function thousandServices(n: number, changed = -1, version = 0): SnapshotInput {
  const listeners: JsonObject[] = [];
  const routes: JsonObject[] = [];
  const clusters: JsonObject[] = [];
  const cla: JsonObject[] = [];
  for (let i = 0; i < n; i++) {
    const svc = `svc-${String(i).padStart(4, '0')}.bench.svc.cluster.local:8080`;
    listeners.push({
      name: svc,
      api_listener: {
        api_listener: {
          '@type': HCM,
          stat_prefix: `svc-${i}`,
          rds: { route_config_name: `route-${svc}`, config_source: { ads: {}, resource_api_version: 'V3' } },
          http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER } }],
        },
      },
    });
    routes.push({
      name: `route-${svc}`,
      virtual_hosts: [
        { name: svc, domains: ['*'], routes: [{ match: { prefix: '' }, route: { cluster: svc } }] },
      ],
    });
    clusters.push({
      name: svc,
      type: 'EDS',
      eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' } },
      lb_policy: 'ROUND_ROBIN',
      ...(i === changed ? { alt_stat_name: `v${version}` } : {}),
    });
    cla.push({
      cluster_name: svc,
      endpoints: [
        {
          locality: { zone: 'bench' },
          load_balancing_weight: 1,
          lb_endpoints: Array.from({ length: 5 }, (_, e) => ({
            endpoint: {
              address: {
                socket_address: { address: `127.1.${(i >> 8) & 255}.${i & 255}`, port_value: 8000 + e },
              },
            },
          })),
        },
      ],
    });
  }
  return { [LISTENER]: listeners, [ROUTE]: routes, [CLUSTER]: clusters, [ENDPOINT]: cla };
}

/** Figures of one scenario. */
export interface XdsFigures {
  clients: number;
  mode: 'sotw' | 'delta';
  syncMs: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  bytesPerChange: number;
  cpuSecPerChange: number;
  encodesPerChange: number;
  rssPerClientKB: number;
  heapPerClientKB: number;
}

function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) {
    g();
    g();
  }
}

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** Runs one scenario: K clients in `mode`, `changes` one-cluster changes. */
export async function runXdsScenario(
  clients: number,
  mode: 'sotw' | 'delta',
  services = 1000,
  changes = 5,
): Promise<XdsFigures> {
  const server = new AdsServer();
  const port = await server.listen('127.0.0.1:0', ServerCredentials.createInsecure());
  const encoder = envoyResourceEncoder();
  server.cache.set('bench', encoder.snapshot(thousandServices(services)));
  gc();
  const mem0 = process.memoryUsage();
  const child = fork(
    join(__dirname, 'ads-load.js'),
    [
      '--target',
      `127.0.0.1:${port}`,
      '--clients',
      String(clients),
      '--mode',
      mode,
      '--cluster',
      'bench',
      '--connections',
      String(Math.min(clients, 1000)),
    ],
    { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] },
  );
  const synced = await new Promise<{ ms: number }>((resolve, reject) => {
    child.on('message', (m: { kind?: string; ms?: number }) => {
      if (m.kind === 'synced') resolve({ ms: m.ms ?? 0 });
    });
    child.on('exit', (code) => reject(new Error(`load generator exited with ${code}`)));
  });
  gc();
  const mem1 = process.memoryUsage();
  const latencies: number[] = [];
  let bytes = 0;
  let cpu = 0;
  let encodes = 0;
  for (let k = 1; k <= changes; k++) {
    const input = thousandServices(services, 1, k);
    const pending = new Map<string, { cds: boolean; eds: boolean }>();
    let t0 = 0;
    let target = '';
    const done = new Promise<void>((resolve) => {
      const onAck = (a: ProxyAck): void => {
        const p = pending.get(a.proxy) ?? { cds: false, eds: false };
        if (a.typeUrl === CLUSTER && a.version === target) p.cds = true;
        if (a.typeUrl === ENDPOINT && p.cds) p.eds = true;
        pending.set(a.proxy, p);
        if (p.cds && p.eds && !Object.hasOwn(p, 't')) {
          (p as { t?: number }).t = performance.now() - t0;
          latencies.push((p as { t?: number }).t!);
          if (latencies.length === k * clients) {
            server.registry.off('ack', onAck);
            resolve();
          }
        }
      };
      server.registry.on('ack', onAck);
    });
    const enc0 = encoder.encodes;
    const bytes0 = server.stats.bytesSent;
    const cpu0 = process.cpuUsage();
    t0 = performance.now();
    const snap = encoder.snapshot(input);
    target = snap.of(CLUSTER).version;
    server.cache.set('bench', snap);
    await done;
    const c = process.cpuUsage(cpu0);
    cpu += (c.user + c.system) / 1e6;
    bytes += server.stats.bytesSent - bytes0;
    encodes += encoder.encodes - enc0;
  }
  child.send({ kind: 'stop' });
  await new Promise((r) => child.once('exit', r));
  await server.shutdown(1000);
  const sorted = latencies.sort((a, b) => a - b);
  return {
    clients,
    mode,
    syncMs: synced.ms,
    p50Ms: pct(sorted, 50),
    p99Ms: pct(sorted, 99),
    maxMs: sorted[sorted.length - 1] ?? 0,
    bytesPerChange: Math.round(bytes / changes),
    cpuSecPerChange: cpu / changes,
    encodesPerChange: encodes / changes,
    rssPerClientKB: (mem1.rss - mem0.rss) / clients / 1024,
    heapPerClientKB: (mem1.heapUsed + mem1.external - mem0.heapUsed - mem0.external) / clients / 1024,
  };
}

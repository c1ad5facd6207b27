/**
 * Traffic metrics figures: what the stats sink costs.
 * - Per proxy, from real sidecars: a mesh of three Envoy sidecars exactly as injected (network
 *   namespaces, Weft's bootstrap and default 5 s flush interval) with traffic between them; Weft's
 *   sink counts the bytes it receives over a few flushes. Needs root and Envoy; skipped otherwise.
 * - Per 1,000 proxies, on Weft's side: 1,000 simulated sidecars (a forked process, real gRPC
 *   streams) each replaying the largest message a real sidecar sent (or a synthetic one without
 *   Envoy) every 5 s; Weft's sink and store run in this process, whose CPU and memory are measured.
 */
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { findEnvoy } from '../src/envoy/binary';
import { encodeStreamMetrics, MetricsSink, type StreamMetricsMessage } from '../src/metrics/sink';
import { MetricsStore } from '../src/metrics/store';
import { netnsUnavailable } from '../src/netns/system';
import { startShopMesh } from '../test/envoy/metrics-fixture';
import { PORT } from '../test/envoy/tier-fixture';

/** Bytes real sidecars sent. */
export interface RealSinkFigures {
  proxies: number;
  seconds: number;
  bytesPerSecondPerProxy: number;
  meanMessageBytes: number;
  maxMessageBytes: number;
  /** The largest message, to replay at scale. */
  largest: Buffer;
}

/** Weft's cost for simulated proxies. */
export interface LoadFigures {
  proxies: number;
  seconds: number;
  messageBytes: number;
  messagesPerSecond: number;
  /** CPU seconds Weft spent per second of wall time (1.0 = one core busy). */
  cpuCoresBusy: number;
  heapMB: number;
  rssMB: number;
  series: number;
}

/** Real sidecars: bytes per second per proxy at Envoy's default flush interval. */
export async function runRealSink(): Promise<RealSinkFigures | undefined> {
  const envoy = findEnvoy();
  if (!envoy || netnsUnavailable()) return undefined;
  const shop = await startShopMesh({ network: 'tmb', envoyBinary: envoy });
  try {
    const A = shop.addresses;
    const running = [...shop.pods.keys()];
    const mesh = shop.mesh;
    const sink = mesh.weft.trafficMetrics!.sink;
    let largest = Buffer.alloc(0);
    let maxBytes = 0;
    sink.tap = (b) => {
      if (b.length > maxBytes) {
        maxBytes = b.length;
        largest = Buffer.from(b);
      }
    };
    const buyer = shop.pods.get('buyer')!.app!;
    for (const host of [A.services.store, A.services['store-v1'], A.services['store-v2']])
      await buyer.call({ op: 'http', protocol: 'http1', host, port: PORT.http1, path: '/open', n: 20 });
    // Let every sidecar flush a few times, then measure whole flush intervals.
    await new Promise((r) => setTimeout(r, 6000));
    const b0 = sink.stats.bytes;
    const m0 = sink.stats.messages;
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, 20_000));
    const seconds = (performance.now() - t0) / 1000;
    const bytes = sink.stats.bytes - b0;
    const messages = sink.stats.messages - m0;
    return {
      proxies: running.length,
      seconds,
      bytesPerSecondPerProxy: bytes / seconds / running.length,
      meanMessageBytes: messages > 0 ? bytes / messages : 0,
      maxMessageBytes: maxBytes,
      largest,
    };
  } finally {
    await shop.stop();
  }
}

/** A sidecar-sized message when no real one was recorded: three destinations, 300 other stats. */
function syntheticMessage(): Buffer {
  const families: NonNullable<StreamMetricsMessage['envoy_metrics']> = [];
  const bounds = [
    0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000,
    3600000,
  ];
  const histogram = (name: string) => ({
    name,
    type: 4,
    metric: [
      {
        histogram: {
          sample_count: 10,
          bucket: bounds.map((b, i) => ({ upper_bound: b, cumulative_count: Math.min(10, i) })),
        },
      },
    ],
  });
  for (const svc of ['store', 'store-v1', 'store-v2']) {
    for (const c of ['2xx', '5xx']) {
      families.push({
        name: `cluster.outbound_8080_shop_${svc}.upstream_rq_${c}`,
        type: 0,
        metric: [{ counter: { value: 3 } }],
      });
      families.push({
        name: `http.outbound_8080_shop_${svc}.downstream_rq_${c}`,
        type: 0,
        metric: [{ counter: { value: 3 } }],
      });
    }
    families.push(histogram(`cluster.outbound_8080_shop_${svc}.upstream_rq_time`));
    families.push(histogram(`http.outbound_8080_shop_${svc}.downstream_rq_time`));
  }
  for (let i = 0; i < 300; i++)
    families.push({
      name: `cluster.outbound_8080_shop_other.stat_number_${i}`,
      type: 0,
      metric: [{ counter: { value: 0 } }],
    });
  return Buffer.from(encodeStreamMetrics({ envoy_metrics: families }));
}

function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

/** `proxies` simulated sidecars sending `message` every 5 s for `seconds`. */
export async function runSinkLoad(
  proxies: number,
  message: Buffer | undefined,
  seconds = 30,
): Promise<LoadFigures> {
  const msg = message && message.length > 0 ? message : syntheticMessage();
  const dir = mkdtempSync(join(tmpdir(), 'weft-bench-sink-'));
  const file = join(dir, 'message.bin');
  writeFileSync(file, msg);
  const store = new MetricsStore();
  const sink = new MetricsSink({ store });
  const server = new Server({ 'grpc.max_receive_message_length': 64 * 1024 * 1024 });
  server.addService(sink.definition(), { StreamMetrics: sink.handler });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  gc();
  const heap0 = process.memoryUsage().heapUsed;
  const rss0 = process.memoryUsage().rss;
  const child = fork(
    join(__dirname, 'metrics-load.js'),
    [
      '--target',
      `127.0.0.1:${port}`,
      '--clients',
      String(proxies),
      '--message',
      file,
      '--duration-ms',
      String(seconds * 1000),
    ],
    { stdio: 'inherit' },
  );
  let cpu0 = process.cpuUsage();
  let t0 = performance.now();
  let m0 = 0;
  const result = await new Promise<LoadFigures>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) reject(new Error(`metrics-load exited with ${code}`));
    });
    child.on('message', (m: { kind: string }) => {
      if (m.kind === 'ready') {
        cpu0 = process.cpuUsage();
        t0 = performance.now();
        m0 = sink.stats.messages;
      } else if (m.kind === 'done') {
        const cpu = process.cpuUsage(cpu0);
        const wall = (performance.now() - t0) / 1000;
        gc();
        const mem = process.memoryUsage();
        resolve({
          proxies,
          seconds: wall,
          messageBytes: msg.length,
          messagesPerSecond: (sink.stats.messages - m0) / wall,
          cpuCoresBusy: (cpu.user + cpu.system) / 1e6 / wall,
          heapMB: (mem.heapUsed - heap0) / 2 ** 20,
          rssMB: (mem.rss - rss0) / 2 ** 20,
          series: store.size,
        });
      }
    });
  });
  server.forceShutdown();
  rmSync(dir, { recursive: true, force: true });
  return result;
}

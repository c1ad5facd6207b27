/**
 * Stats sink load generator: K simulated sidecars, each on a real gRPC client stream of
 * `envoy.service.metrics.v3.MetricsService/StreamMetrics`, sending one recorded Envoy message per
 * flush interval (its first one with the node identifier `bench/proxy-<i>`, as Envoy does), spread
 * evenly over the interval. Forked by bench/metrics.ts, which measures the receiving side; reports
 * `{kind: 'ready'}` once every stream has sent its first message and `{kind: 'done', sent}` at the
 * end, over IPC.
 *
 *   node dist/bench/metrics-load.js --target 127.0.0.1:PORT --clients 1000 --message FILE
 */
import { readFileSync } from 'node:fs';
import { Client, credentials, Metadata } from '@grpc/grpc-js';
import { decodeStreamMetrics, encodeStreamMetrics, STREAM_METRICS_PATH } from '../src/metrics/sink';

function arg(name: string, dflt?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? process.argv[i + 1] : dflt;
  if (v === undefined) throw new Error(`--${name} is required`);
  return v;
}

async function main(): Promise<void> {
  const target = arg('target');
  const clients = Number(arg('clients', '1000'));
  const intervalMs = Number(arg('interval-ms', '5000'));
  const durationMs = Number(arg('duration-ms', '30000'));
  const connections = Number(arg('connections', '10'));
  const recorded = decodeStreamMetrics(readFileSync(arg('message')));
  const later = Buffer.from(encodeStreamMetrics({ envoy_metrics: recorded.envoy_metrics ?? [] }));
  const channels = Array.from(
    { length: connections },
    // A distinct option per client keeps each on a connection of its own.
    (_, i) => new Client(target, credentials.createInsecure(), { 'weft.bench.connection': i }),
  );
  const streams = Array.from({ length: clients }, (_, i) => {
    const call = channels[i % connections]!.makeClientStreamRequest<Buffer, Buffer>(
      STREAM_METRICS_PATH,
      (b) => b,
      (b) => b,
      new Metadata(),
      () => undefined,
    );
    return {
      call,
      first: Buffer.from(
        encodeStreamMetrics({ ...recorded, identifier: { node: { id: `bench/proxy-${i}` } } }),
      ),
    };
  });
  let sent = 0;
  const start = Date.now();
  const timers: NodeJS.Timeout[] = [];
  await new Promise<void>((ready) => {
    let firsts = 0;
    streams.forEach((s, i) => {
      const offset = (i * intervalMs) / clients;
      timers.push(
        setTimeout(() => {
          s.call.write(s.first);
          sent++;
          if (++firsts === clients) ready();
          timers.push(
            setInterval(() => {
              s.call.write(later);
              sent++;
            }, intervalMs),
          );
        }, offset),
      );
    });
  });
  process.send?.({ kind: 'ready', ms: Date.now() - start });
  await new Promise((r) => setTimeout(r, durationMs));
  for (const t of timers) clearTimeout(t);
  for (const s of streams) s.call.end();
  process.send?.({ kind: 'done', sent });
  for (const c of channels) c.close();
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});

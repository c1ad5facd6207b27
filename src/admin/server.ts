/**
 * The admin HTTP server (fastify): liveness, readiness, Prometheus metrics and JSON debug views of
 * what the control plane holds. It listens on its own port, separate from xDS, and is meant for
 * the cluster network or localhost only.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import type { Condition } from '../smi/model';
import type { ProxyRegistry } from '../xds/proxy-state';
import { PUSH_ORDER, SHORT_NAME } from '../xds/resource-types';
import type { AdsServer } from '../xds/server/ads-server';
import type { Metrics } from './metrics';

/** What the admin server reports on. */
export interface AdminSources {
  metrics: Metrics;
  xds: AdsServer;
  /** True once every input has synced and the first snapshots exist. */
  ready: () => boolean;
  /** Why the server is not ready, for `/readyz`'s body. */
  notReadyReason?: () => string;
  /** Current conditions of the mesh inputs. */
  conditions?: () => readonly Condition[];
}

/** Registers the xDS server's own metrics (connected proxies, ACKs and NACKs per type, bytes sent). */
export function registerXdsMetrics(metrics: Metrics, xds: AdsServer): void {
  const reg: ProxyRegistry = xds.registry;
  metrics.collect('weft_xds_connected_proxies', 'Proxies with an open ADS stream.', 'gauge', () => [
    { labels: {}, value: reg.proxies().length },
  ]);
  reg.on('ack', (a: { typeUrl: keyof typeof SHORT_NAME }) =>
    metrics.inc('weft_xds_acks_total', 'ACKs received, by resource type.', { type: SHORT_NAME[a.typeUrl] }),
  );
  reg.on('nack', (n: { typeUrl: keyof typeof SHORT_NAME }) =>
    metrics.inc('weft_xds_nacks_total', 'NACKs received, by resource type.', { type: SHORT_NAME[n.typeUrl] }),
  );
  metrics.collect('weft_xds_responses_total', 'Discovery responses sent.', 'counter', () => [
    { labels: {}, value: xds.stats.responses },
  ]);
  metrics.collect('weft_xds_sent_bytes_total', 'Bytes of discovery responses sent.', 'counter', () => [
    { labels: {}, value: xds.stats.bytesSent },
  ]);
  metrics.collect('weft_xds_snapshot_groups', 'Proxy groups with a snapshot.', 'gauge', () => [
    { labels: {}, value: xds.cache.groups().length },
  ]);
}

/** Builds the admin server (not yet listening). */
export function buildAdmin(src: AdminSources): FastifyInstance {
  const app = Fastify({ logger: false });
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    if (src.ready()) return { status: 'ready' };
    reply.code(503);
    return { status: 'not ready', reason: src.notReadyReason?.() ?? 'starting' };
  });
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', 'text/plain; version=0.0.4');
    return src.metrics.render();
  });
  app.get('/debug/proxies', async () =>
    src.xds.registry.proxies().map((p) => ({ ...p, connectedAt: p.connectedAt.toISOString() })),
  );
  app.get('/debug/nacks', async () => src.xds.registry.nacks());
  app.get('/debug/snapshots', async () =>
    src.xds.cache.groups().map((group) => {
      const snap = src.xds.cache.get(group)!;
      return {
        group,
        version: snap.version,
        types: Object.fromEntries(
          PUSH_ORDER.map((t) => [
            SHORT_NAME[t],
            { version: snap.of(t).version, names: [...snap.of(t).resources.keys()] },
          ]),
        ),
      };
    }),
  );
  app.get('/debug/conditions', async () => src.conditions?.() ?? []);
  return app;
}

/** Builds the admin server and listens on `address` (`host:port`, IPv6 hosts in brackets); resolves to its URL. */
export async function listenAdmin(
  address: string,
  src: AdminSources,
): Promise<{ app: FastifyInstance; url: string }> {
  const app = buildAdmin(src);
  const i = address.lastIndexOf(':');
  try {
    const url = await app.listen({
      host: address.slice(0, i).replace(/^\[|\]$/g, ''),
      port: Number(address.slice(i + 1)),
    });
    return { app, url };
  } catch (err) {
    await app.close();
    throw err;
  }
}

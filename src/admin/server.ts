/**
 * The admin HTTP server (fastify): liveness, readiness, Prometheus metrics and JSON debug views of
 * what the control plane holds. It listens on its own port, separate from xDS, and is meant for
 * the cluster network or localhost only.
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { type DashboardSources, mountDashboard } from '../dashboard/routes';
import { answerWithPeers, describeMissing, type MetricsPeers, MISSING_PEERS_HEADER } from '../metrics/peers';
import type { MetricsStore } from '../metrics/store';
import type { Condition, MeshModel } from '../smi/model';
import { decodeClientStatusResponse } from '../xds/csds-view';
import { type ProxyRegistry, type ProxyStatus, proxyFlavor } from '../xds/proxy-state';
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
  /**
   * Who may read `/debug/*`. Absent: everyone who reaches the port (folder mode, where the admin
   * port is on loopback). Kubernetes mode checks the caller's bearer token (see `debug-access.ts`).
   */
  debugAccess?: DebugAccess;
  /** Weft's version, shown by `/version`. */
  version?: string;
  /** The SMI Traffic Metrics API under `/apis/metrics.smi-spec.io` (same access as `/debug/*`). */
  trafficMetrics?: {
    store: MetricsStore;
    model: () => MeshModel | undefined;
    /** The other replicas, whose windows are merged into every answer (Kubernetes mode). */
    peers?: MetricsPeers;
  };
  /** The web dashboard under `/dashboard` (same access as `/debug/*`). */
  dashboard?: DashboardSources;
}

/** What a debug caller may see: nothing (with the reason and HTTP status), or namespaces. */
export type DebugGrant =
  | { readonly allowed: false; readonly status: 401 | 403 | 503; readonly reason: string }
  | {
      readonly allowed: true;
      /** The caller's name, for the log. */
      readonly user: string;
      /** `'*'` for every namespace, else the namespaces the caller may read. */
      readonly namespaces: '*' | ReadonlySet<string>;
    };

/** Decides, per request, what a caller of `/debug/*` may read. */
export type DebugAccess = (authorization: string | undefined) => Promise<DebugGrant>;

/** The admin endpoints, as `/` lists them. */
export const ADMIN_ENDPOINTS: readonly { path: string; what: string; open: boolean }[] = [
  { path: '/healthz', what: 'liveness', open: true },
  { path: '/readyz', what: 'readiness; the body says what Weft waits for', open: true },
  { path: '/metrics', what: 'Prometheus metrics', open: true },
  { path: '/version', what: "Weft's version", open: true },
  {
    path: '/debug/proxies',
    what: 'connected proxies: identity, flavor, version, per type sent/ACKed/NACKed',
    open: false,
  },
  { path: '/debug/nacks', what: 'NACKs from proxies, with their own error text', open: false },
  { path: '/debug/snapshots', what: 'snapshot per proxy group: versions and resource names', open: false },
  {
    path: '/debug/config',
    what: 'what each proxy was sent, decoded from CSDS (?proxy=<ns>/<pod>)',
    open: false,
  },
  { path: '/debug/conditions', what: 'conditions of the mesh inputs, with the fix', open: false },
  { path: '/dashboard/', what: 'the web dashboard (weft dashboard opens it)', open: false },
  {
    path: '/apis/metrics.smi-spec.io',
    what: "SMI TrafficMetrics (v1alpha1, v1alpha2) from the sidecars' stats",
    open: false,
  },
];

/** The namespace a proxy belongs to: `<ns>/...` in its node id, else its NAMESPACE metadata. */
function namespaceOfProxy(p: ProxyStatus): string {
  const meta = p.node.metadata.NAMESPACE;
  if (typeof meta === 'string' && meta !== '') return meta;
  return p.node.id.includes('/') ? p.node.id.split('/', 1)[0]! : '';
}

/** The namespace in a condition's object (`Kind/<ns>/<name>`); `''` for cluster-scoped ones. */
function namespaceOfObject(object: string): string {
  return object.split('/')[1] ?? '';
}

/** The namespace of a group (`<flavor>/<kind>/<ns>/<name>`), `''` when it has none. */
function namespaceOfGroup(group: string): string {
  return group.split('/')[2] ?? '';
}

/** A proxy as `/debug/proxies` shows it (JSON-ready). */
export function proxyView(p: ProxyStatus): Record<string, unknown> {
  return {
    ...p,
    flavor: proxyFlavor(p),
    namespace: namespaceOfProxy(p),
    connectedAt: p.connectedAt.toISOString(),
    ...(p.lastSeen ? { lastSeen: p.lastSeen.toISOString() } : {}),
  };
}

/** Registers the xDS server's own metrics (connected proxies, ACKs and NACKs per type, bytes sent). */
export function registerXdsMetrics(metrics: Metrics, xds: AdsServer): void {
  const reg: ProxyRegistry = xds.registry;
  // Every type's counters exist from the start at 0, so rate() and alerts see the first NACK.
  for (const type of new Set(Object.values(SHORT_NAME))) {
    metrics.inc('weft_xds_acks_total', 'ACKs received, by resource type.', { type }, 0);
    metrics.inc('weft_xds_nacks_total', 'NACKs received, by resource type.', { type }, 0);
  }
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
  app.get('/version', async () => ({ weft: src.version ?? 'unknown' }));
  app.get('/', async (_req, reply) => {
    reply.header('content-type', 'text/plain; charset=utf-8');
    const lines = ADMIN_ENDPOINTS.map(
      (e) =>
        `${e.path.padEnd(18)} ${e.what}${e.open || !src.debugAccess ? '' : ' (bearer token; Kubernetes RBAC)'}`,
    );
    return `Weft admin server\n\n${lines.join('\n')}\n`;
  });
  // Debug views say what runs where: in Kubernetes mode only callers the API server vouches for,
  // and only for the namespaces they may read.
  type Allowed = Extract<DebugGrant, { allowed: true }>;
  // Resolves to the caller's grant, or undefined after answering the request with the refusal.
  const grantOf = async (req: FastifyRequest, reply: FastifyReply): Promise<Allowed | undefined> => {
    if (!src.debugAccess) return { allowed: true, user: 'anonymous', namespaces: '*' };
    const g = await src.debugAccess(req.headers.authorization);
    if (g.allowed) return g;
    await reply.code(g.status).send({ error: g.reason });
    return undefined;
  };
  const visible = (g: Allowed, ns: string): boolean => g.namespaces === '*' || g.namespaces.has(ns);
  app.get('/debug/proxies', async (req, reply) => {
    const g = await grantOf(req, reply);
    if (!g) return reply;
    return src.xds.registry
      .proxies()
      .filter((p) => visible(g, namespaceOfProxy(p)))
      .map(proxyView);
  });
  app.get('/debug/nacks', async (req, reply) => {
    const g = await grantOf(req, reply);
    if (!g) return reply;
    return src.xds.registry
      .nacks()
      .filter((n) => visible(g, n.proxy.includes('/') ? n.proxy.split('/', 1)[0]! : ''));
  });
  app.get('/debug/snapshots', async (req, reply) => {
    const g = await grantOf(req, reply);
    if (!g) return reply;
    return src.xds.cache
      .groups()
      .filter((group) => visible(g, namespaceOfGroup(group)))
      .map((group) => {
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
      });
  });
  // The CSDS answer, decoded, for callers without a mesh certificate (weft proxy config in a
  // cluster reaches Weft through port-forward with the user's own credentials).
  app.get('/debug/config', async (req, reply) => {
    const g = await grantOf(req, reply);
    if (!g) return reply;
    const q = req.query as { proxy?: string | string[] };
    const ids = q.proxy === undefined ? [] : Array.isArray(q.proxy) ? q.proxy : [q.proxy];
    const bytes = src.xds.clientStatus(
      { matchers: ids.map((exact) => ({ exact })), excludeResourceContents: false },
      (p) => visible(g, namespaceOfProxy(p)),
    );
    return decodeClientStatusResponse(bytes);
  });
  app.get('/debug/conditions', async (req, reply) => {
    const g = await grantOf(req, reply);
    if (!g) return reply;
    return (src.conditions?.() ?? []).filter((c) => visible(g, namespaceOfObject(c.object)));
  });
  const tm = src.trafficMetrics;
  if (tm) {
    const serve = async (req: FastifyRequest, reply: FastifyReply): Promise<unknown> => {
      const g = await grantOf(req, reply);
      if (!g) return reply;
      const path = (req.params as { '*'?: string })['*'] ?? '';
      const a = await answerWithPeers(
        path,
        req.query as Record<string, string>,
        { model: tm.model(), store: tm.store, now: Date.now(), visible: (ns) => visible(g, ns) },
        tm.peers,
      );
      if (a.missing.length > 0) reply.header(MISSING_PEERS_HEADER, describeMissing(a.missing));
      return reply.code(a.status).send(a.body);
    };
    app.get('/apis/metrics.smi-spec.io', serve);
    app.get('/apis/metrics.smi-spec.io/*', serve);
  }
  if (src.dashboard)
    mountDashboard(app, {
      sources: src.dashboard,
      registry: src.xds.registry,
      conditions: () => src.conditions?.() ?? [],
      access: async (req, reply) => {
        const g = await grantOf(req, reply);
        return g ? (ns: string) => (ns === '' ? g.namespaces === '*' : visible(g, ns)) : undefined;
      },
    });
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

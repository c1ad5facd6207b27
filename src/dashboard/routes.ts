/**
 * The web dashboard on the admin server, under `/dashboard`: the page and its bundle (built into
 * the package by `npm run build`, so nothing is fetched from any other host and it works in an
 * air-gapped cluster), the state as JSON, a Server-Sent Events stream that pushes the state again
 * whenever it changes, and `weft explain` for one call. Read-only: every route is a GET, and
 * every route, the page included, goes through the same access check as `/debug/*`.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ExplainError, explain } from '../explain';
import type { MeshCompiler } from '../mesh/compiler';
import type { TrafficMetricsRuntime } from '../metrics';
import type { MetricsPeers } from '../metrics/peers';
import { type MetricsStore, parseWindow } from '../metrics/store';
import type { EnvoyPatch } from '../patch/select';
import type { Condition, MeshModel } from '../smi/model';
import type { ProxyRegistry } from '../xds/proxy-state';
import { deniedCounts } from './denials';
import { DASHBOARD_WINDOW, type DashboardState, dashboardState } from './state';

/** What the dashboard reads besides the admin server's own sources. */
export interface DashboardSources {
  /** The current model (undefined before the first compile). */
  model: () => MeshModel | undefined;
  /** The parsed EnvoyPatches of the current inputs. */
  patches: () => readonly EnvoyPatch[];
  /** Groups whose config carries a patch (`<ns>/<name>`). */
  groupsPatchedBy: (patch: string) => readonly string[];
  /** The sidecars' traffic and refusals, when Weft receives them. */
  store?: MetricsStore;
  /** The other replicas, whose windows the figures merge as the TrafficMetrics API does. */
  peers?: MetricsPeers;
}

/**
 * The dashboard's sources in `weft serve`: the compiler's model and patches, the sidecars' traffic
 * and, with several replicas, the peers that hold the rest of it.
 */
export function dashboardSources(
  c: MeshCompiler,
  traffic: TrafficMetricsRuntime | undefined,
  peers?: MetricsPeers,
): DashboardSources {
  const sources: DashboardSources = {
    model: () => c.currentModel,
    patches: () => c.currentPatches,
    groupsPatchedBy: (patch) => c.groupsPatchedBy(patch),
  };
  if (traffic) sources.store = traffic.store;
  if (peers) sources.peers = peers;
  return sources;
}

/** What a caller may read: every namespace, or some. */
export type Visibility = (namespace: string) => boolean;

/** What mounting needs from the admin server. */
export interface DashboardMount {
  sources: DashboardSources;
  registry: ProxyRegistry;
  conditions: () => readonly Condition[];
  /** Resolves to the caller's visibility, or undefined after refusing the request. */
  access: (req: FastifyRequest, reply: FastifyReply) => Promise<Visibility | undefined>;
}

/** How often a live stream checks whether the state changed (a compile, a metrics flush, a proxy's ACK). */
const PUSH_INTERVAL_MS = 1000;
/** A comment line now and then keeps idle proxies and port-forwards from closing the stream. */
const HEARTBEAT_MS = 15_000;

/** Chart.js and cytoscape set inline styles on their canvases; nothing else is inline. */
const CSP =
  "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/** Where `npm run build` puts the page and its bundle, relative to this compiled file. */
const ASSETS = join(__dirname, '..', '..', 'web');
const FILES: Readonly<Record<string, string>> = {
  'index.html': 'text/html; charset=utf-8',
  'dashboard.js': 'text/javascript; charset=utf-8',
  'dashboard.css': 'text/css; charset=utf-8',
};

/** The `window` query parameter, when it is one the TrafficMetrics API takes (up to its 10 minutes). */
function windowOf(req: FastifyRequest): string | undefined {
  const w = (req.query as { window?: unknown }).window;
  if (typeof w !== 'string') return undefined;
  const ms = parseWindow(w);
  return ms !== undefined && ms > 0 && ms <= 600_000 ? w : undefined;
}

/**
 * The traffic the figures come from: this replica's store, merged with its peers' windows when
 * there are several replicas (one merge serves every stream and request for a second).
 */
async function trafficOf(
  sources: DashboardSources,
  windowMs: number,
  now: number,
): Promise<MetricsStore | undefined> {
  const own = sources.store;
  if (!own || !sources.peers) return own;
  return (await sources.peers.gather(own, windowMs, now)).store;
}

/** The state the caller may see, now. */
async function stateFor(
  m: DashboardMount,
  visible: Visibility,
  window: string | undefined,
): Promise<DashboardState> {
  const now = Date.now();
  const windowMs = parseWindow(window ?? DASHBOARD_WINDOW) ?? 300_000;
  const store = await trafficOf(m.sources, windowMs, now);
  return dashboardState({
    ...(window ? { window } : {}),
    ...(store ? { denied: deniedCounts(store, now, windowMs) } : {}),
    model: m.sources.model(),
    conditions: m.conditions(),
    proxies: m.registry.proxies(),
    patches: m.sources.patches(),
    groupsPatchedBy: m.sources.groupsPatchedBy,
    store,
    now,
    visible,
  });
}

/** Splits `<namespace>/<name>`; undefined when it is not that shape. */
function nsName(v: unknown): { namespace: string; name: string } | undefined {
  if (typeof v !== 'string') return undefined;
  const m = /^([^/\s]+)\/([^/\s]+)$/.exec(v.trim());
  return m ? { namespace: m[1]!, name: m[2]! } : undefined;
}

/** Mounts the dashboard's routes on `app`. */
export function mountDashboard(app: FastifyInstance, m: DashboardMount): void {
  // Open event streams never end on their own: closing the server ends them.
  const streams = new Set<{ end: () => void }>();
  app.addHook('onClose', async () => {
    for (const s of streams) s.end();
  });
  const cache = new Map<string, Buffer>();
  const asset = (file: string): Buffer | undefined => {
    let b = cache.get(file);
    if (!b) {
      try {
        b = readFileSync(join(ASSETS, file));
      } catch {
        return undefined;
      }
      cache.set(file, b);
    }
    return b;
  };
  app.get('/dashboard', async (_req, reply) => reply.redirect('/dashboard/'));
  app.get('/dashboard/*', async (req, reply) => {
    const visible = await m.access(req, reply);
    if (!visible) return reply;
    const file = (req.params as { '*'?: string })['*'] || 'index.html';
    const type = FILES[file];
    if (!type) return reply.code(404).send({ error: `no ${file} in the dashboard` });
    const body = asset(file);
    if (!body)
      return reply
        .code(503)
        .send({ error: `the dashboard's ${file} is not in this build of Weft; run npm run build` });
    return (
      reply
        .header('content-type', type)
        .header('cache-control', 'no-cache')
        // The browser itself holds the page to Weft: no other host for scripts, data or images,
        // and no framing by other sites.
        .header('content-security-policy', CSP)
        .header('x-content-type-options', 'nosniff')
        .send(body)
    );
  });
  app.get('/dashboard/api/state', async (req, reply) => {
    const visible = await m.access(req, reply);
    if (!visible) return reply;
    return stateFor(m, visible, windowOf(req));
  });
  app.get('/dashboard/api/explain', async (req, reply) => {
    const visible = await m.access(req, reply);
    if (!visible) return reply;
    const q = req.query as Record<string, string | undefined>;
    const from = nsName(q.from);
    const to = nsName(q.to);
    const port = Number(q.port);
    if (!from || !to || !Number.isInteger(port) || port <= 0 || port > 65535)
      return reply.code(400).send({
        error: 'give from=<namespace>/<serviceaccount>, to=<namespace>/<service> and port=<1-65535>',
      });
    if (!visible(from.namespace) || !visible(to.namespace))
      return reply.code(403).send({ error: `you may not read ${from.namespace} and ${to.namespace}` });
    const model = m.sources.model();
    if (!model) return reply.code(503).send({ error: 'Weft has not compiled its inputs yet' });
    try {
      return explain(model, {
        from: { namespace: from.namespace, serviceAccount: from.name },
        to: { namespace: to.namespace, service: to.name, port },
        ...(q.method ? { method: q.method } : {}),
        ...(q.path ? { path: q.path } : {}),
      });
    } catch (err) {
      if (err instanceof ExplainError) return reply.code(404).send({ error: err.message });
      throw err;
    }
  });
  // Server-Sent Events: the state once on connect, then again each time it differs. Comparing
  // the JSON (its timestamp aside) covers every source at once: compiles, metrics flushes, ACKs.
  app.get('/dashboard/api/events', async (req, reply) => {
    const visible = await m.access(req, reply);
    if (!visible) return reply;
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
    });
    let last = '';
    let pushing = false;
    let closed = false;
    const window = windowOf(req);
    const push = async (): Promise<void> => {
      // A merge with slow peers can outlast the interval: skip a tick rather than pile them up.
      if (pushing) return;
      pushing = true;
      try {
        const state = await stateFor(m, visible, window);
        const key = JSON.stringify({ ...state, at: '' });
        if (key === last || closed) return;
        last = key;
        res.write(`event: state\ndata: ${JSON.stringify(state)}\n\n`);
      } finally {
        pushing = false;
      }
    };
    // stateFor does not throw (a peer that fails is left out of the merge), but a write to a
    // closed stream can: the stream's own close handling ends it.
    const pushNow = (): void => {
      push().catch(() => undefined);
    };
    pushNow();
    const tick = setInterval(pushNow, PUSH_INTERVAL_MS);
    const beat = setInterval(() => res.write(': keep-alive\n\n'), HEARTBEAT_MS);
    const stream = {
      end: (): void => {
        stop();
        res.end();
      },
    };
    streams.add(stream);
    const stop = (): void => {
      closed = true;
      clearInterval(tick);
      clearInterval(beat);
      streams.delete(stream);
    };
    req.raw.on('close', stop);
    res.on('error', stop);
  });
}

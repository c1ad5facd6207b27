/**
 * Answering for the whole mesh with several replicas. Each sidecar streams its stats to one Weft
 * replica (whichever the Service picked), and an API request reaches any replica, so one replica's
 * store holds part of the mesh. The replica that answers therefore asks every other ready replica
 * for its window ({@link MetricsStore.export}, served by the aggregated API server at
 * {@link EXPORT_PATH} to Weft's own ServiceAccount only), merges the exports with its own into a
 * store made for this one request, and answers from that.
 *
 * Peers are the ready endpoints of Weft's own Service (its EndpointSlices, in Weft's namespace),
 * other than this replica; the list is kept for a few seconds, nothing else is kept between
 * requests. A peer that does not answer within the timeout (1 s) is left out: the answer says so
 * ({@link MISSING_PEERS_ANNOTATION} and the {@link MISSING_PEERS_HEADER} header), a line is logged
 * and {@link MetricsPeers.failures} counts it, but one slow peer never fails the request.
 *
 * Calls to a peer present this replica's ServiceAccount token (re-read from its file for every
 * call, as projected tokens rotate) and check the peer's serving certificate against the mesh CA,
 * for the Service's name, as the aggregation layer does.
 */
import { readFile } from 'node:fs/promises';
import { request } from 'node:https';
import { networkInterfaces } from 'node:os';
import { messageOf } from '../identity/x509';
import type { KubeClient } from '../kube/client';
import { logger } from '../log';
import { type ApiAnswer, type ApiContext, answer, DEFAULT_WINDOW_MS } from './api';
import { MetricsStore, parseStoreExport, parseWindow, type StoreExport } from './store';

const log = logger('metrics');

/** Where the aggregated API server serves a replica's window to its peers. */
export const EXPORT_PATH = '/weft/v1/metrics-export';
/** The annotation, on an answer's `metadata`, naming the replicas whose windows are missing. */
export const MISSING_PEERS_ANNOTATION = 'weft.dev/missing-peers';
/** The response header naming the same. */
export const MISSING_PEERS_HEADER = 'weft-missing-peers';
/** The largest export a peer may send (a window of 50,000 series is a few MB). */
const MAX_EXPORT_BYTES = 64 * 1024 * 1024;
/** How long one merge serves every request for the same window (the sidecars flush every 5 s). */
const GATHER_TTL_MS = 1000;

/** The standard place of a pod's ServiceAccount token. */
export const DEFAULT_TOKEN_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/** Options of {@link MetricsPeers}. */
export interface PeerOptions {
  client: KubeClient;
  /** Weft's namespace, where its Service and EndpointSlices are. */
  namespace: string;
  /** Weft's Service (default `weft`): its endpoints are the replicas, its name is in their certificates. */
  service?: string;
  /** The name of the Service port of the aggregated API (default `metrics-api`, as the chart names it). */
  portName?: string;
  /** This replica: its pod name, and the port its aggregated API listens on (0 while unknown). */
  self: { replica: string; port: () => number };
  /** The mesh CA's bundle (PEM), which signs every replica's serving certificate. */
  caPem: () => string;
  /** This replica's ServiceAccount token file (default {@link DEFAULT_TOKEN_FILE}). */
  tokenFile?: string;
  /** How long a peer (and the peer list) may take (default 1 s). */
  timeoutMs?: number;
  /** How long a peer list is reused (default 5 s). */
  listTtlMs?: number;
}

/** Another replica, as its Service endpoint names it. */
export interface Peer {
  /** The pod's name when the endpoint names it, else `address:port`. */
  name: string;
  address: string;
  port: number;
}

/** A merged window: the store, how many peers there were, and those left out. */
export interface Gathered {
  store: MetricsStore;
  peers: number;
  missing: MissingPeer[];
}

/** A replica whose window is not in an answer, and why. */
export interface MissingPeer {
  peer: string;
  reason: string;
}

interface EndpointSlice {
  ports?: { name?: string; port?: number }[] | null;
  endpoints?: {
    addresses?: string[];
    conditions?: { ready?: boolean | null };
    targetRef?: { kind?: string; name?: string };
  }[];
}

/** Every address of this host (in a pod: the pod's), with the downward API's POD_IP. */
function ownAddresses(): Set<string> {
  const out = new Set<string>();
  if (process.env.POD_IP) out.add(process.env.POD_IP);
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) out.add(a.address);
  return out;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** See the module comment. */
export class MetricsPeers {
  /** Peer calls (and peer lists) that failed or timed out: `weft_metrics_peer_failures_total`. */
  failures = 0;
  private readonly service: string;
  private readonly timeoutMs: number;
  private cached: { at: number; peers: Peer[] } | undefined;
  /** The list being read: requests that come meanwhile wait for it rather than list again. */
  private listing: Promise<Peer[]> | undefined;
  /** Recent merges by window: requests and dashboards within a second share one. */
  private readonly recent = new Map<number, { at: number; result: Promise<Gathered> }>();

  constructor(private readonly o: PeerOptions) {
    this.service = o.service ?? 'weft';
    this.timeoutMs = o.timeoutMs ?? 1000;
  }

  /** The other ready replicas, from the Service's EndpointSlices (reused for `listTtlMs`). */
  async peers(now = Date.now()): Promise<Peer[]> {
    if (this.cached && now - this.cached.at < (this.o.listTtlMs ?? 5000)) return this.cached.peers;
    this.listing ??= this.list(now).finally(() => {
      this.listing = undefined;
    });
    return this.listing;
  }

  private async list(now: number): Promise<Peer[]> {
    const selector = encodeURIComponent(`kubernetes.io/service-name=${this.service}`);
    const list = await withTimeout(
      this.o.client.request<{ items?: EndpointSlice[] }>(
        'GET',
        `/apis/discovery.k8s.io/v1/namespaces/${this.o.namespace}/endpointslices?labelSelector=${selector}`,
      ),
      this.timeoutMs,
      `listing the EndpointSlices of Service ${this.o.namespace}/${this.service}`,
    );
    const mine = ownAddresses();
    const selfPort = this.o.self.port();
    const seen = new Map<string, Peer>();
    for (const slice of list.items ?? []) {
      const port = slice.ports?.find((p) => p.name === (this.o.portName ?? 'metrics-api'))?.port;
      if (!port) continue;
      for (const e of slice.endpoints ?? []) {
        // Unset means ready (the EndpointSlice API's rule); a replica not ready is still listing.
        if (e.conditions?.ready === false) continue;
        // An endpoint's addresses are one pod: asking one of them is enough.
        const address = e.addresses?.[0];
        if (!address) continue;
        const pod = e.targetRef?.kind === 'Pod' ? e.targetRef.name : undefined;
        if (pod !== undefined && pod === this.o.self.replica) continue;
        if (mine.has(address) && port === selfPort) continue;
        const name = pod ?? `${address.includes(':') ? `[${address}]` : address}:${port}`;
        seen.set(`${address}|${port}`, { name, address, port });
      }
    }
    const peers = [...seen.values()].sort((a, b) => a.name.localeCompare(b.name));
    this.cached = { at: now, peers };
    return peers;
  }

  /** Asks one peer for its window; rejects naming why not (timeout, refusal, a bad answer). */
  async fetchExport(peer: Peer, windowMs: number, now: number): Promise<StoreExport> {
    const token = (await readFile(this.o.tokenFile ?? DEFAULT_TOKEN_FILE, 'utf8')).trim();
    const host = peer.address.includes(':') ? `[${peer.address}]` : peer.address;
    const url = `https://${host}:${peer.port}${EXPORT_PATH}?windowMs=${windowMs}&now=${now}`;
    const body = await new Promise<string>((resolve, reject) => {
      const req = request(
        url,
        {
          ca: this.o.caPem(),
          // Every replica's certificate is for the Service's name, not for its pod's address.
          servername: `${this.service}.${this.o.namespace}.svc`,
          headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > MAX_EXPORT_BYTES)
              req.destroy(new Error(`its export is over ${MAX_EXPORT_BYTES} bytes`));
            else chunks.push(c);
          });
          res.on('error', reject);
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            if (res.statusCode === 200) return resolve(text);
            let message = text;
            try {
              message = (JSON.parse(text) as { message?: string }).message ?? text;
            } catch {
              // not a Status: keep the raw text
            }
            reject(new Error(`HTTP ${res.statusCode}: ${message}`));
          });
        },
      );
      const timer = setTimeout(
        () => req.destroy(new Error(`no answer within ${this.timeoutMs} ms`)),
        this.timeoutMs,
      );
      req.on('close', () => clearTimeout(timer));
      req.on('error', reject);
      req.end();
    });
    return parseStoreExport(JSON.parse(body));
  }

  /**
   * A store for one request: `own`'s window and every peer's that answered in time, merged. With
   * no peers it is `own` itself (nothing is copied). A merge serves every request for the same
   * window for a second (`GATHER_TTL_MS`), so a burst of requests, or open dashboards, cost the
   * peers one export each.
   */
  gather(own: MetricsStore, windowMs: number, now: number): Promise<Gathered> {
    for (const [w, r] of this.recent) if (now - r.at >= GATHER_TTL_MS || now < r.at) this.recent.delete(w);
    const hit = this.recent.get(windowMs);
    if (hit) return hit.result;
    const result = this.gatherNow(own, windowMs, now);
    this.recent.set(windowMs, { at: now, result });
    return result;
  }

  private async gatherNow(own: MetricsStore, windowMs: number, now: number): Promise<Gathered> {
    let peers: Peer[];
    try {
      peers = await this.peers(now);
    } catch (err) {
      this.failures++;
      const reason = messageOf(err);
      log.warn('TrafficMetrics answered with this replica only: cannot list the other replicas', {
        error: reason,
      });
      return { store: own, peers: 0, missing: [{ peer: 'other replicas', reason }] };
    }
    if (peers.length === 0) return { store: own, peers: 0, missing: [] };
    const results = await Promise.allSettled(peers.map((p) => this.fetchExport(p, windowMs, now)));
    // One request's store: room for every series of every replica, and the same slot width.
    const store = new MetricsStore({
      slotMs: own.slotMs,
      retentionMs: own.retentionMs,
      maxSeries: Number.MAX_SAFE_INTEGER,
    });
    store.merge(own.export(windowMs, now), 'this replica');
    const missing: MissingPeer[] = [];
    results.forEach((r, i) => {
      const peer = peers[i]!;
      let reason: string | undefined;
      if (r.status === 'rejected') reason = messageOf(r.reason);
      else if (!store.merge(r.value, peer.name))
        reason = `its slots are ${r.value.slotMs} ms wide, this replica's ${own.slotMs} ms`;
      if (reason === undefined) return;
      this.failures++;
      missing.push({ peer: peer.name, reason });
      log.warn("TrafficMetrics answered without a replica's window", { peer: peer.name, error: reason });
    });
    return { store, peers: peers.length, missing };
  }
}

/**
 * `peer (reason), ...`, on one line of printable ASCII, at most 1,000 characters: it becomes a
 * header value, and part of a reason is a peer's own error text, which must not make the header
 * invalid (and fail the answer it explains).
 */
export function describeMissing(missing: readonly MissingPeer[]): string {
  const text = missing
    .map((m) => `${m.peer} (${m.reason})`)
    .join(', ')
    .replace(/[^\x20-\x7e]+/g, ' ');
  return text.length > 1000 ? `${text.slice(0, 997)}...` : text;
}

/**
 * Answers a TrafficMetrics request as {@link answer} does, from `peers`' merged windows when
 * given; `missing` names the replicas left out, also written into the body's
 * `metadata.annotations` ({@link MISSING_PEERS_ANNOTATION}).
 */
export async function answerWithPeers(
  path: string,
  query: { window?: string; labelSelector?: string },
  ctx: ApiContext,
  peers: MetricsPeers | undefined,
): Promise<ApiAnswer & { missing: MissingPeer[] }> {
  // Discovery documents hold no figures; a bad window is answered 400 by `answer` itself.
  const figures = path.split('/').filter((s) => s !== '').length >= 2;
  const w = query.window === undefined ? DEFAULT_WINDOW_MS : parseWindow(query.window);
  if (!peers || !figures || w === undefined || w <= 0) return { ...answer(path, query, ctx), missing: [] };
  // A request refused here (bad path, window or selector, no such resource, not visible) is
  // refused without asking any peer. Whether it is depends on the model and the request alone, so
  // an empty store answers it without summing this replica's series twice.
  const checked = answer(path, query, {
    ...ctx,
    store: new MetricsStore({ retentionMs: ctx.store.retentionMs }),
  });
  if (checked.status !== 200) return { ...checked, missing: [] };
  const windowMs = Math.min(w, ctx.store.retentionMs);
  const { store, missing } = await peers.gather(ctx.store, windowMs, ctx.now);
  const a = answer(path, query, { ...ctx, store });
  const body = a.body as { kind?: string; metadata?: { annotations?: Record<string, string> } };
  if (missing.length > 0 && a.status === 200 && body.metadata)
    body.metadata.annotations = {
      ...body.metadata.annotations,
      [MISSING_PEERS_ANNOTATION]: describeMissing(missing),
    };
  return { ...a, missing };
}

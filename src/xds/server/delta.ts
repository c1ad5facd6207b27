/**
 * Incremental (delta) ADS stream. Per type it keeps what the proxy is known to have (name ->
 * version) and sends only the difference to the snapshot: changed resources in `resources`,
 * vanished ones in `removed_resources`. `initial_resource_versions` seeds that knowledge on
 * (re)connect, so a reconnecting proxy that is up to date gets nothing.
 *
 * Memory per stream stays small with a wildcard subscription: once a push has brought the proxy
 * level with the snapshot, its knowledge is a reference to the shared snapshot plus overrides.
 */
import type { ServerDuplexStream } from '@grpc/grpc-js';
import type { EncodedResource, TypeSnapshot } from '../cache/snapshot';
import type { NodeInfo } from '../proxy-state';
import { CLUSTER, ENDPOINT, FULL_STATE_TYPES, type ResourceTypeUrl } from '../resource-types';
import { type DeltaDiscoveryRequest, encodeDeltaDiscoveryResponse } from '../wire';
import { coversAllMemo, diffTypes, internNames } from './intern';
import { AdsStream, type StreamContext } from './stream';

/** Marks a name the proxy was told does not exist. */
const ABSENT = '';

/** What a proxy is known to hold: a shared baseline plus per-name overrides. */
class KnownVersions {
  private base: TypeSnapshot | undefined;
  private readonly overrides = new Map<string, string | undefined>();

  get(name: string): string | undefined {
    if (this.overrides.has(name)) return this.overrides.get(name);
    return this.base?.resources.get(name)?.version;
  }

  set(name: string, version: string | undefined): void {
    if (this.base === undefined && version === undefined) this.overrides.delete(name);
    else this.overrides.set(name, version);
  }

  /** Every name with a known state. */
  names(): Set<string> {
    const out = new Set<string>();
    if (this.base) for (const n of this.base.resources.keys()) out.add(n);
    for (const [n, v] of this.overrides) {
      if (v === undefined) out.delete(n);
      else out.add(n);
    }
    return out;
  }

  /** The shared snapshot the knowledge equals exactly, when there are no overrides. */
  pureBase(): TypeSnapshot | undefined {
    return this.overrides.size === 0 ? this.base : undefined;
  }

  /** The proxy now holds exactly `type`. */
  resetTo(type: TypeSnapshot): void {
    this.base = type;
    this.overrides.clear();
  }
}

interface DeltaTypeState {
  wildcard: boolean;
  /** Interned: streams with equal subscriptions share one set. */
  names: ReadonlySet<string>;
  known: KnownVersions;
  /** Names to resend even if unchanged (endpoints of an updated cluster: warming). */
  forced: Set<string>;
  dirty: boolean;
  /** Responses sent and not yet answered, by nonce (bounded by the transport's window). */
  inflight: Map<string, { version: string; names: string[] }>;
  /** Has this type's subscription had any response yet? */
  answered: boolean;
}

/** Bound on remembered in-flight nonces per type; older ones are treated as stale. */
const MAX_INFLIGHT = 64;

/** One incremental ADS stream. */
export class DeltaStream extends AdsStream<DeltaDiscoveryRequest> {
  private readonly state = new Map<ResourceTypeUrl, DeltaTypeState>();

  constructor(ctx: StreamContext, call: ServerDuplexStream<DeltaDiscoveryRequest, Uint8Array>) {
    super(ctx, call, 'delta');
  }

  protected nodeOf(req: DeltaDiscoveryRequest): NodeInfo | undefined {
    return req.node;
  }

  protected typeOf(req: DeltaDiscoveryRequest): string {
    return req.typeUrl;
  }

  protected handle(req: DeltaDiscoveryRequest): void {
    const typeUrl = req.typeUrl as ResourceTypeUrl;
    let st = this.state.get(typeUrl);
    const ts = this.typeStatus(typeUrl);
    if (!st) {
      const known = new KnownVersions();
      for (const [name, version] of Object.entries(req.initialResourceVersions)) known.set(name, version);
      // Legacy wildcard: a first Listener or Cluster request naming nothing means "everything".
      const wildcard =
        req.subscribe.includes('*') || (req.subscribe.length === 0 && FULL_STATE_TYPES.has(typeUrl));
      st = {
        wildcard,
        names: internNames([]),
        known,
        forced: new Set(),
        dirty: true,
        inflight: new Map(),
        answered: false,
      };
      this.state.set(typeUrl, st);
    }
    if (req.responseNonce !== '') {
      const sent = st.inflight.get(req.responseNonce);
      if (sent) {
        st.inflight.delete(req.responseNonce);
        ts.awaiting = st.inflight.size > 0;
        this.recordReply(
          typeUrl,
          { version: sent.version, nonce: req.responseNonce, names: sent.names },
          req.errorDetail,
        );
      }
    }
    if (req.subscribe.length > 0 || req.unsubscribe.length > 0) {
      const names = new Set(st.names);
      for (const name of req.subscribe) {
        if (name === '*') st.wildcard = true;
        else names.add(name);
      }
      for (const name of req.unsubscribe) {
        if (name === '*') st.wildcard = false;
        else names.delete(name);
        // An unsubscribed resource is forgotten: no update and no removal will be sent for it.
        if (!st.wildcard && name !== '*') st.known.set(name, undefined);
      }
      st.names = internNames(names);
      st.dirty = true;
    }
    ts.subscribed = st.wildcard ? '*' : [...st.names].sort();
  }

  sentResources(): Map<string, ReadonlyMap<string, EncodedResource>> {
    const out = new Map<string, ReadonlyMap<string, EncodedResource>>();
    for (const [typeUrl, st] of this.state) {
      const type = this.snapshot?.of(typeUrl);
      const held = new Map<string, EncodedResource>();
      for (const name of [...st.known.names()].sort()) {
        const r = type?.resources.get(name);
        if (r && r.version === st.known.get(name)) held.set(name, r);
      }
      out.set(typeUrl, held);
    }
    return out;
  }

  protected onSnapshot(): void {
    for (const st of this.state.values()) st.dirty = true;
  }

  protected flushType(typeUrl: ResourceTypeUrl): boolean {
    const st = this.state.get(typeUrl);
    if (!st || !st.dirty || !this.snapshot) return true;
    st.dirty = false;
    const type = this.snapshot.of(typeUrl);
    const covers = st.wildcard || coversAllMemo(st.names, type.resources);
    const base = st.known.pureBase();
    let updates: EncodedResource[];
    let removed: string[];
    if (base && covers) {
      // Fast path: the proxy holds exactly an earlier snapshot; the shared diff is the answer.
      const d = diffTypes(base, type);
      updates = [...d.changed];
      removed = [...d.removed];
      if (st.names.size > type.resources.size) {
        // Subscribed names the snapshot lacks and the proxy was never told about.
        for (const n of st.names) if (!type.resources.has(n) && !removed.includes(n)) removed.push(n);
      }
      if (st.forced.size > 0) {
        const changed = new Set(updates.map((r) => r.name));
        for (const n of [...st.forced].sort()) {
          const r = type.resources.get(n);
          if (r && !changed.has(n)) updates.push(r);
        }
      }
    } else {
      updates = [];
      removed = [];
      const candidates = new Set<string>(st.names);
      if (st.wildcard) {
        for (const n of type.resources.keys()) candidates.add(n);
        for (const n of st.known.names()) candidates.add(n);
      }
      for (const name of [...candidates].sort()) {
        const r = type.resources.get(name);
        const known = st.known.get(name);
        if (r) {
          if (r.version !== known || st.forced.has(name)) updates.push(r);
        } else if (known !== ABSENT && (known !== undefined || st.names.has(name))) {
          // Tell the proxy once that a resource it has, or asked for, does not exist.
          removed.push(name);
        }
      }
    }
    st.forced.clear();
    if (covers) {
      // The proxy will hold exactly the snapshot's resources: share the snapshot's map as its
      // knowledge instead of keeping a per-stream copy.
      st.known.resetTo(type);
      for (const n of st.names) if (!type.resources.has(n)) st.known.set(n, ABSENT);
    }
    if (updates.length === 0 && removed.length === 0) {
      // A wildcard subscriber of an empty type would otherwise hear nothing, and Envoy holds its
      // initialization (listeners and clusters both) until its initial fetch timeout, 15 s by
      // default. An empty response tells it "there is none" at once.
      const emptyFirst = st.wildcard && !st.answered && type.resources.size === 0;
      if (!emptyFirst) return true;
    }
    st.answered = true;
    const nonce = this.nonce();
    const bytes = encodeDeltaDiscoveryResponse(type.version, typeUrl, nonce, updates, removed);
    if (!covers) {
      for (const r of updates) st.known.set(r.name, r.version);
      for (const n of removed) st.known.set(n, ABSENT);
    }
    if (st.inflight.size >= MAX_INFLIGHT) st.inflight.delete(st.inflight.keys().next().value as string);
    st.inflight.set(nonce, { version: type.version, names: [...updates.map((r) => r.name), ...removed] });
    const ts = this.typeStatus(typeUrl);
    ts.sentVersion = type.version;
    ts.sentAt = new Date();
    ts.awaiting = true;
    if (typeUrl === CLUSTER && updates.length > 0) {
      // Warming: an updated cluster waits for its endpoints, so resend them even if unchanged.
      const eds = this.state.get(ENDPOINT);
      if (eds) {
        for (const r of updates) if (eds.known.get(r.name) !== undefined) eds.forced.add(r.name);
        eds.dirty = true;
      }
    }
    return this.write(bytes);
  }
}

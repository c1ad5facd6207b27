/**
 * State-of-the-world ADS stream. Per type it tracks the subscription, the last response (version,
 * nonce, resources) and the ACK state, and follows the protocol's rules:
 * - a request whose `response_nonce` is not the latest one for its type is stale and ignored;
 * - `error_detail` set means NACK: it is recorded, and the rejected version is not sent again
 *   until the snapshot changes, so a bad resource never loops;
 * - a Cluster push is followed by a ClusterLoadAssignment push even when endpoints did not change,
 *   because Envoy keeps an updated cluster warming until it gets one;
 * - with a wildcard Cluster subscription, clusters that vanish are kept in an interim CDS response
 *   until listeners and routes that stopped using them are acknowledged, then removed.
 */
import type { ServerDuplexStream } from '@grpc/grpc-js';
import type { EncodedResource, TypeSnapshot } from '../cache/snapshot';
import type { NodeInfo } from '../proxy-state';
import { CLUSTER, ENDPOINT, FULL_STATE_TYPES, PUSH_ORDER, type ResourceTypeUrl } from '../resource-types';
import { type DiscoveryRequest, encodeDiscoveryResponse } from '../wire';
import { coversAllMemo, internNames, subsetVersionMemo } from './intern';
import { AdsStream, type StreamContext } from './stream';

interface SotwTypeState {
  wildcard: boolean;
  names: ReadonlySet<string>;
  /** Subscription changed since the last response: answer even if the version is unchanged. */
  force: boolean;
  dirty: boolean;
  sentVersion?: string;
  nonce?: string;
  /** Resources in the last response, by name (references into shared snapshots). */
  sent: ReadonlyMap<string, EncodedResource>;
  /** The version the proxy NACKed; not resent until the snapshot yields a different one. */
  rejectedVersion?: string;
  /** CDS only: clusters kept in an interim response until the rest is acknowledged. */
  held?: ReadonlyMap<string, EncodedResource>;
}

/** One state-of-the-world ADS stream. */
export class SotwStream extends AdsStream<DiscoveryRequest> {
  private readonly state = new Map<ResourceTypeUrl, SotwTypeState>();

  constructor(ctx: StreamContext, call: ServerDuplexStream<DiscoveryRequest, Uint8Array>) {
    super(ctx, call, 'sotw');
  }

  protected nodeOf(req: DiscoveryRequest): NodeInfo | undefined {
    return req.node;
  }

  protected typeOf(req: DiscoveryRequest): string {
    return req.typeUrl;
  }

  protected handle(req: DiscoveryRequest): void {
    const typeUrl = req.typeUrl as ResourceTypeUrl;
    let st = this.state.get(typeUrl);
    if (st && req.responseNonce !== '' && req.responseNonce !== st.nonce) {
      // Stale: the proxy is answering a response it has since been sent a newer one of.
      return;
    }
    const ts = this.typeStatus(typeUrl);
    if (st && req.responseNonce !== '' && st.nonce === req.responseNonce) {
      ts.awaiting = false;
      if (req.errorDetail) st.rejectedVersion = st.sentVersion;
      // A NACK's versionInfo is the last version the proxy accepted; the refused one is what it
      // was sent.
      this.recordReply(
        typeUrl,
        {
          version: req.errorDetail ? (st.sentVersion ?? '') : req.versionInfo,
          nonce: req.responseNonce,
          names: [...st.sent.keys()],
        },
        req.errorDetail,
      );
      if (!req.errorDetail) this.maybeReleaseHeldClusters();
    }
    // Legacy wildcard: an empty list means "everything" only on the type's first request (or while
    // the stream is still in that mode). Once a proxy has named resources, an empty list means it
    // wants none: grpc-js-xds sends one between dropping its last cluster and naming the next, and
    // answering it with every cluster would hand the proxy resources it then sees "deleted" by the
    // next, narrower response (grpc-js-xds 1.14 then never takes them back when they reappear).
    const wildcard =
      req.resourceNames.includes('*') ||
      (req.resourceNames.length === 0 && FULL_STATE_TYPES.has(typeUrl) && (!st || st.wildcard));
    const names = internNames(req.resourceNames.filter((n) => n !== '*'));
    if (!st) {
      st = { wildcard, names, force: true, dirty: true, sent: new Map() };
      this.state.set(typeUrl, st);
    } else if (st.wildcard !== wildcard || st.names !== names) {
      st.wildcard = wildcard;
      st.names = names;
      st.force = true;
      st.dirty = true;
    }
    ts.subscribed = wildcard ? '*' : [...names].sort();
  }

  sentResources(): Map<string, ReadonlyMap<string, EncodedResource>> {
    const out = new Map<string, ReadonlyMap<string, EncodedResource>>();
    for (const [typeUrl, st] of this.state) out.set(typeUrl, st.sent);
    return out;
  }

  protected onSnapshot(): void {
    for (const st of this.state.values()) st.dirty = true;
  }

  protected flushType(typeUrl: ResourceTypeUrl): boolean {
    const st = this.state.get(typeUrl);
    if (!st || !st.dirty || !this.snapshot) return true;
    const type = this.snapshot.of(typeUrl);
    let resources = this.select(type, st);
    let version = st.wildcard ? type.version : subsetVersionMemo(type, st.names);
    if (typeUrl === CLUSTER && st.wildcard) {
      const held = this.heldClusters(st, resources);
      if (held.size > 0) {
        st.held = held;
        resources = new Map([...resources, ...held]);
        version = `${version}+${held.size}held`;
      } else {
        st.held = undefined;
      }
    }
    st.dirty = false;
    if (!st.force && (version === st.sentVersion || version === st.rejectedVersion)) return true;
    st.force = false;
    const nonce = this.nonce();
    const bytes = encodeDiscoveryResponse(version, typeUrl, nonce, resources.values());
    st.sentVersion = version;
    st.nonce = nonce;
    st.sent = resources;
    const ts = this.typeStatus(typeUrl);
    ts.sentVersion = version;
    ts.sentAt = new Date();
    ts.awaiting = true;
    if (typeUrl === CLUSTER) {
      // Warming: an updated cluster waits for its endpoints, so always follow with EDS.
      const eds = this.state.get(ENDPOINT);
      if (eds) {
        eds.force = true;
        eds.dirty = true;
      }
    }
    return this.write(bytes);
  }

  private select(type: TypeSnapshot, st: SotwTypeState): ReadonlyMap<string, EncodedResource> {
    // The snapshot's own map is immutable: share it rather than copy it per stream.
    if (st.wildcard || coversAllMemo(st.names, type.resources)) return type.resources;
    const out = new Map<string, EncodedResource>();
    for (const name of [...st.names].sort()) {
      const r = type.resources.get(name);
      if (r) out.set(name, r);
    }
    return out;
  }

  /**
   * Clusters the proxy has but the new snapshot lacks. They stay while any other type still has
   * a response to acknowledge, since an unacknowledged listener or route may still point at them.
   */
  private heldClusters(
    st: SotwTypeState,
    next: ReadonlyMap<string, EncodedResource>,
  ): Map<string, EncodedResource> {
    const held = new Map<string, EncodedResource>();
    if (!this.othersPending()) return held;
    for (const [name, r] of st.sent) if (!next.has(name)) held.set(name, r);
    return held;
  }

  private othersPending(): boolean {
    for (const t of PUSH_ORDER) {
      if (t === CLUSTER || t === ENDPOINT) continue;
      const st = this.state.get(t);
      if (!st) continue;
      if (st.dirty || this.typeStatus(t).awaiting) return true;
      if (this.snapshot) {
        const type = this.snapshot.of(t);
        const v = st.wildcard ? type.version : subsetVersionMemo(type, st.names);
        if (v !== st.sentVersion && v !== st.rejectedVersion) return true;
      }
    }
    return false;
  }

  private maybeReleaseHeldClusters(): void {
    const cds = this.state.get(CLUSTER);
    if (!cds?.held || this.othersPending()) return;
    cds.dirty = true;
  }
}

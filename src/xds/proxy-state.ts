/**
 * What the control plane knows about each connected proxy: who it is, which group serves it, and
 * per resource type what was sent, what it ACKed and what it NACKed. ACKs and NACKs are data
 * here: other stages (status writers, metrics, the CLI) read them and subscribe to their events.
 */
import { EventEmitter } from 'node:events';
import type { JsonObject } from './cache/snapshot';
import { type ResourceTypeUrl, SHORT_NAME } from './resource-types';

/** The parts of an xDS `Node` that Weft uses. */
export interface NodeInfo {
  /** `node.id`; unique per proxy by convention. */
  readonly id: string;
  /** `node.cluster`. */
  readonly cluster: string;
  /** `node.metadata` as plain JSON. */
  readonly metadata: JsonObject;
  /** `node.user_agent_name` (e.g. `envoy`, `grpc-node-js`). */
  readonly userAgent: string;
  /** The proxy's version: `node.user_agent_version`, else `user_agent_build_version` as `x.y.z`; `''` when neither. */
  readonly userAgentVersion?: string;
}

/** A rejected push, as the proxy reported it. */
export interface NackRecord {
  /** The proxy's node id. */
  readonly proxy: string;
  /** The group serving the proxy when it NACKed. */
  readonly group: string;
  /** The resource type. */
  readonly typeUrl: ResourceTypeUrl;
  /** The version that was rejected. */
  readonly version: string;
  /** The nonce of the rejected response. */
  readonly nonce: string;
  /** The names of the resources in the rejected response. */
  readonly resourceNames: readonly string[];
  /** `error_detail.code` (a gRPC status code). */
  readonly code: number;
  /** `error_detail.message`: the proxy's own words. */
  readonly message: string;
  /** When the NACK arrived. */
  readonly at: Date;
}

/** Per-type state of one proxy. */
export interface TypeStatus {
  /** `*` for a wildcard subscription, otherwise the names asked for, sorted. */
  subscribed: '*' | string[];
  /** Version of the last response sent. */
  sentVersion?: string;
  /** When it was sent. */
  sentAt?: Date;
  /** Last version the proxy ACKed. */
  ackedVersion?: string;
  /** When it ACKed it. */
  ackedAt?: Date;
  /** A response is sent and neither ACKed nor NACKed yet. */
  awaiting: boolean;
  /** Count of ACKs on this stream. */
  acks: number;
  /** Count of NACKs on this stream. */
  nacks: number;
  /** The latest NACK for this type on this stream, until a later ACK clears it. */
  lastNack?: NackRecord;
}

/** What `proxies()` reports about one connected proxy. */
export interface ProxyStatus {
  /** Stream id, unique per process. */
  readonly streamId: number;
  /** The node the proxy announced. */
  readonly node: NodeInfo;
  /** The proxy's group, or undefined when the group function gave none (changes on regroup). */
  group: string | undefined;
  /** Identity proven by the peer's certificate, when the stream is mTLS. */
  readonly identity: string | undefined;
  /** State-of-the-world or incremental. */
  readonly mode: 'sotw' | 'delta';
  /** Peer address. */
  readonly peer: string;
  /** When the stream opened. */
  readonly connectedAt: Date;
  /** When the proxy last sent a request (an ACK, a NACK or a subscription change). */
  lastSeen?: Date;
  /** Per short type name (`lds`, `cds`, ...). */
  readonly types: Readonly<Record<string, TypeStatus>>;
}

/** Events: `ack` (ProxyAck), `nack` (NackRecord), `connect`/`disconnect` (ProxyStatus). */
export interface ProxyAck {
  readonly proxy: string;
  readonly group: string | undefined;
  readonly typeUrl: ResourceTypeUrl;
  readonly version: string;
  readonly resourceNames: readonly string[];
}

/** Bounded history of NACKs kept per proxy and type, so a flapping proxy cannot grow memory. */
const NACK_HISTORY = 16;

/**
 * Registry of connected proxies and their ACK/NACK records. NACK history outlives the stream so a
 * proxy that reconnects after rejecting config still shows why.
 */
export class ProxyRegistry extends EventEmitter {
  private readonly live = new Map<number, ProxyStatus>();
  private readonly nackLog = new Map<string, NackRecord[]>();
  private counters = { acks: 0, nacks: 0 };

  /** Registers a stream's status object (mutated in place by the stream). */
  connect(status: ProxyStatus): void {
    this.live.set(status.streamId, status);
    this.emit('connect', status);
  }

  /** Removes a stream. */
  disconnect(streamId: number): void {
    const s = this.live.get(streamId);
    if (!s) return;
    this.live.delete(streamId);
    this.emit('disconnect', s);
  }

  /** Records an ACK. */
  ack(ack: ProxyAck): void {
    this.counters.acks++;
    this.emit('ack', ack);
  }

  /** Records a NACK. */
  nack(record: NackRecord): void {
    this.counters.nacks++;
    const key = `${record.proxy}\0${record.typeUrl}`;
    const list = this.nackLog.get(key) ?? [];
    list.push(record);
    if (list.length > NACK_HISTORY) list.shift();
    this.nackLog.set(key, list);
    this.emit('nack', record);
  }

  /** Connected proxies, by node id then stream id. */
  proxies(): ProxyStatus[] {
    return [...this.live.values()].sort((a, b) =>
      a.node.id === b.node.id ? a.streamId - b.streamId : a.node.id < b.node.id ? -1 : 1,
    );
  }

  /** NACKs recorded for a proxy (all types, or one), oldest first. */
  nacks(proxy?: string, typeUrl?: ResourceTypeUrl): NackRecord[] {
    const out: NackRecord[] = [];
    for (const list of this.nackLog.values()) {
      for (const r of list) {
        if ((proxy === undefined || r.proxy === proxy) && (typeUrl === undefined || r.typeUrl === typeUrl)) {
          out.push(r);
        }
      }
    }
    return out.sort((a, b) => a.at.getTime() - b.at.getTime());
  }

  /** Totals since start, for metrics. */
  totals(): { acks: number; nacks: number; connected: number } {
    return { ...this.counters, connected: this.live.size };
  }
}

/**
 * A proxy's flavor, `envoy` or `grpc`: from its group (`<flavor>/...`, what Weft serves it), else
 * the `FLAVOR` node metadata, else its user agent (`envoy` or a gRPC library).
 */
export function proxyFlavor(p: Pick<ProxyStatus, 'group' | 'node'>): 'envoy' | 'grpc' {
  const fromGroup = p.group?.split('/')[0];
  if (fromGroup === 'envoy' || fromGroup === 'grpc') return fromGroup;
  const meta = p.node.metadata.FLAVOR;
  if (meta === 'envoy' || meta === 'grpc') return meta;
  return p.node.userAgent.toLowerCase() === 'envoy' ? 'envoy' : 'grpc';
}

/** The short name of a type URL, for logs. */
export function shortType(typeUrl: ResourceTypeUrl): string {
  return SHORT_NAME[typeUrl];
}

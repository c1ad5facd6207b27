/**
 * What SotW and delta ADS streams share: learning the node from the first request, resolving its
 * group, watching that group's snapshot, registering status, and writing with backpressure.
 *
 * Backpressure works by coalescing, not queueing: a stream marks types dirty and computes each
 * response from the newest snapshot only when the transport can take it. A slow proxy therefore
 * holds at most one in-flight write and a few flags, never a backlog of stale snapshots.
 */
import { type ServerDuplexStream, status } from '@grpc/grpc-js';
import { type Logger, logger } from '../../log';
import type { SnapshotCache } from '../cache/cache';
import type { EncodedResource, Snapshot } from '../cache/snapshot';
import {
  type NodeInfo,
  type ProxyRegistry,
  type ProxyStatus,
  proxyFlavor,
  type TypeStatus,
} from '../proxy-state';
import { isResourceType, PUSH_ORDER, type ResourceTypeUrl, SHORT_NAME } from '../resource-types';

/** Maps a proxy to its group; undefined means "serve it nothing" (and log why). */
export type GroupFunction = (node: NodeInfo, identity: string | undefined) => string | undefined;

/** Counters of what the server sent. */
export interface XdsStats {
  responses: number;
  bytesSent: number;
}

/** Shared services a stream needs. */
export interface StreamContext {
  readonly cache: SnapshotCache;
  readonly registry: ProxyRegistry;
  readonly groupOf: GroupFunction;
  /** Identity proven by the peer certificate, if any. */
  readonly identityOf: (call: ServerDuplexStream<unknown, unknown>) => string | undefined;
  /** Server-wide counters, for metrics and benchmarks. */
  readonly stats: XdsStats;
  /** Told when a stream closes, so the server can forget it. */
  readonly onClose?: (streamId: number) => void;
}

let nextStreamId = 1;
const log: Logger = logger('xds');

/** Base class of an ADS stream. */
export abstract class AdsStream<Req> {
  readonly id = nextStreamId++;
  protected node: NodeInfo | undefined;
  protected group: string | undefined;
  protected snapshot: Snapshot | undefined;
  protected status: ProxyStatus | undefined;
  private unwatch: (() => void) | undefined;
  private blocked = false;
  private scheduled = false;
  private closed = false;
  private nonceCounter = 0;
  private readonly warnedTypes = new Set<string>();

  constructor(
    protected readonly ctx: StreamContext,
    protected readonly call: ServerDuplexStream<Req, Uint8Array>,
    private readonly mode: 'sotw' | 'delta',
  ) {
    call.on('data', (req: Req) => this.safely(() => this.receive(req)));
    call.on('end', () => this.close());
    call.on('error', (err: Error) => {
      log.debug('stream error', { stream: this.id, node: this.node?.id, error: err.message });
      this.close();
    });
    call.on('cancelled', () => this.close());
    call.on('close', () => this.close());
    call.on('drain', () => {
      this.blocked = false;
      this.schedule();
    });
  }

  /** Handles one decoded request. */
  protected abstract handle(req: Req): void;

  /** Writes whatever responses the current state calls for; returns false if the write blocked. */
  protected abstract flushType(typeUrl: ResourceTypeUrl): boolean;

  /** Node carried by a request, if any. */
  protected abstract nodeOf(req: Req): NodeInfo | undefined;

  /** Type URL of a request. */
  protected abstract typeOf(req: Req): string;

  /** Called when the group's snapshot changes. */
  protected abstract onSnapshot(): void;

  /** What the proxy was last sent, per type and name (for CSDS and debug views). */
  abstract sentResources(): Map<string, ReadonlyMap<string, EncodedResource>>;

  private receive(req: Req): void {
    if (this.closed) return;
    if (this.status) this.status.lastSeen = new Date();
    if (!this.node) {
      const node = this.nodeOf(req);
      if (!node || !node.id) {
        log.warn('first request on stream carries no node id; closing stream', {
          stream: this.id,
          peer: this.call.getPeer(),
        });
        this.fail(status.INVALID_ARGUMENT, 'the first request on a stream must carry node.id');
        return;
      }
      this.start(node);
    }
    const typeUrl = this.typeOf(req);
    if (!isResourceType(typeUrl)) {
      if (!this.warnedTypes.has(typeUrl)) {
        this.warnedTypes.add(typeUrl);
        log.warn('request for an unknown resource type ignored', {
          stream: this.id,
          node: this.node?.id,
          type: typeUrl,
        });
      }
      return;
    }
    this.handle(req);
    this.schedule();
  }

  private start(node: NodeInfo): void {
    this.node = node;
    const identity = this.ctx.identityOf(this.call as ServerDuplexStream<unknown, unknown>);
    this.group = this.ctx.groupOf(node, identity);
    this.status = {
      streamId: this.id,
      node,
      group: this.group,
      identity,
      mode: this.mode,
      peer: this.call.getPeer(),
      connectedAt: new Date(),
      lastSeen: new Date(),
      types: {},
    };
    this.ctx.registry.connect(this.status);
    // One line per connect and disconnect, so an operator can follow proxies coming and going.
    log.info('proxy connected', {
      node: node.id,
      identity: identity ?? 'none (plaintext xDS)',
      flavor: proxyFlavor(this.status),
      version: [node.userAgent, node.userAgentVersion].filter(Boolean).join(' ') || 'unknown',
      mode: this.mode,
      group: this.group ?? 'none',
    });
    if (this.group === undefined) {
      log.warn('proxy matches no group; serving it nothing until it does', {
        stream: this.id,
        node: node.id,
        identity,
      });
      return;
    }
    this.watchGroup(this.group);
  }

  private watchGroup(group: string): void {
    this.unwatch = this.ctx.cache.watch(group, (snap) => {
      this.snapshot = snap;
      this.onSnapshot();
      this.schedule();
    });
  }

  /**
   * Asks the group function again, after the inputs changed: a proxy that connected before its
   * pod was known starts receiving config, and one whose workload changed moves to its new group
   * (served like a snapshot change: same nonces, ACK/NACK rules). Returns true if the group changed.
   */
  regroup(): boolean {
    if (this.closed || !this.node || !this.status) return false;
    const group = this.ctx.groupOf(this.node, this.status.identity);
    if (group === this.group) return false;
    log.info('proxy moved to another group', {
      stream: this.id,
      node: this.node.id,
      from: this.group,
      to: group,
    });
    this.unwatch?.();
    this.unwatch = undefined;
    this.group = group;
    this.status.group = group;
    if (group === undefined) {
      // Keep what the proxy has: an empty snapshot would tear down every listener it serves.
      return true;
    }
    this.watchGroup(group);
    return true;
  }

  /** Status record of a type, created on first use. */
  protected typeStatus(typeUrl: ResourceTypeUrl): TypeStatus {
    const types = this.status!.types as Record<string, TypeStatus>;
    const key = SHORT_NAME[typeUrl];
    let t = types[key];
    if (!t) {
      t = { subscribed: [], awaiting: false, acks: 0, nacks: 0 };
      types[key] = t;
    }
    return t;
  }

  /** Schedules a flush on the next tick so a burst of requests or snapshots yields one pass. */
  protected schedule(): void {
    if (this.scheduled || this.closed) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.safely(() => this.flush());
    });
  }

  private flush(): void {
    if (this.closed || this.blocked || !this.snapshot) return;
    for (const typeUrl of PUSH_ORDER) {
      if (!this.flushType(typeUrl)) return;
    }
  }

  /** Next nonce; unique within the stream. */
  protected nonce(): string {
    this.nonceCounter++;
    return `${this.id}-${this.nonceCounter}`;
  }

  /** Writes a response; returns false when the transport asks us to wait for `drain`. */
  protected write(bytes: Uint8Array): boolean {
    this.ctx.stats.responses++;
    this.ctx.stats.bytesSent += bytes.length;
    const ok = this.call.write(bytes);
    if (!ok) this.blocked = true;
    return ok;
  }

  /** The proxy's node id, for logs and records. */
  /**
   * Records the proxy's answer to a response of `typeUrl` (NACK with `error`, else ACK) in its
   * status and the registry, and logs a NACK: both protocols answer the same way.
   */
  protected recordReply(
    typeUrl: ResourceTypeUrl,
    sent: { readonly version: string; readonly nonce: string; readonly names: string[] },
    error: { readonly code: number; readonly message: string } | null | undefined,
  ): void {
    const ts = this.typeStatus(typeUrl);
    if (error) {
      ts.nacks++;
      const record = {
        proxy: this.proxyId,
        group: this.group ?? '',
        typeUrl,
        version: sent.version,
        nonce: sent.nonce,
        resourceNames: sent.names,
        code: error.code,
        message: error.message,
        at: new Date(),
      };
      ts.lastNack = record;
      this.ctx.registry.nack(record);
      log.warn('proxy rejected config (NACK); it keeps its last good config', {
        node: this.proxyId,
        type: SHORT_NAME[typeUrl],
        version: sent.version,
        error: error.message,
      });
      return;
    }
    ts.acks++;
    ts.ackedVersion = sent.version;
    ts.ackedAt = new Date();
    ts.lastNack = undefined;
    this.ctx.registry.ack({
      proxy: this.proxyId,
      group: this.group,
      typeUrl,
      version: sent.version,
      resourceNames: sent.names,
    });
  }

  protected get proxyId(): string {
    return this.node?.id ?? '';
  }

  private safely(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      // A bug or bad input on one stream must not take down the server or other streams.
      log.error('closing stream after internal error', {
        stream: this.id,
        node: this.node?.id,
        error: err instanceof Error ? err.message : String(err),
      });
      this.fail(status.INTERNAL, 'internal error in the control plane; reconnect');
    }
  }

  /** Ends the stream with a non-OK gRPC status. */
  protected fail(code: status, details: string): void {
    if (this.closed) return;
    // grpc-js turns an 'error' event carrying {code, details} into the call's final status.
    this.call.emit('error', { code, details });
    this.close();
  }

  /** Ends the stream from the server side (shutdown). */
  end(): void {
    if (!this.closed) this.call.end();
    this.close();
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unwatch?.();
    if (this.status) this.ctx.registry.disconnect(this.id);
    this.ctx.onClose?.(this.id);
    if (this.status) {
      log.info('proxy disconnected', {
        node: this.status.node.id,
        identity: this.status.identity ?? 'none (plaintext xDS)',
        flavor: proxyFlavor(this.status),
      });
    }
  }

  /** Is the stream closed? */
  get isClosed(): boolean {
    return this.closed;
  }
}
